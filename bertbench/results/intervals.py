"""A cell's 95% interval, and the per-example rows that give one-seed cells an honest one.

    n >= 3 units     percentile bootstrap over the units (seeds) of the mean (or median)
    n = 1 or 2       bootstrap over dev examples: the runs' `example_rows` (the same dev examples in
                     the same order in every run of a column) are resampled with the SAME indices
                     for every run; a resample's value is the mean over the runs of the metric
                     recomputed from its rows (`bertbench.evaluation.per_example.value`)
    otherwise        no interval (method "none"), and the table's footnote says so

The statistics themselves are `bertbench.evaluation.stats`; this module only picks the method and
feeds it a cell's numbers. Every bootstrap takes a seed (the tables pass a fixed one, so a table is
rebuilt bit-identically from the same records).
"""

import math

import numpy as np

from bertbench.evaluation import per_example, stats

MIN_UNITS = 3  # a bootstrap over fewer seeds than this says nothing; use the dev examples instead
SEEDS, EXAMPLES, NONE = "seeds", "examples", "none"
METHOD_TEXT = {SEEDS: "bootstrap over seeds (n ≥ 3)",
               EXAMPLES: "bootstrap over dev examples (n < 3; the same resampled examples for every run)",
               NONE: "no interval (n < 3 and no per-example rows)"}


def stacked_rows(records):
    """((form, metric), rows [examples, runs, k]) of runs that all carry compatible `example_rows`;
    None when one lacks them or they differ in form, metric or shape."""
    found = [r.get("example_rows") for r in records]
    if not found or any(not x or not x.get("rows") for x in found):
        return None
    kinds = {(x.get("form"), x.get("metric")) for x in found}
    arrays = [np.asarray(x["rows"], float) for x in found]
    if len(kinds) != 1 or len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 2:
        return None
    form, metric = kinds.pop()
    if not per_example.has_rows(form, metric):
        return None
    return (form, metric), np.stack(arrays, axis=1)


def runs_metric(form, metric, scale=1.0):
    """fn(rows [examples, runs, k]) -> the mean over the runs of their metric, in display units."""

    def value(rows):
        return scale * float(np.mean([per_example.value(form, metric, rows[:, r]) for r in range(rows.shape[1])]))

    return value


def cell_interval(cell, statistic="mean", seed=0):
    """(low, high, method) of a Cell's 95% interval of its `statistic` ("mean" or "median")."""
    if cell.n >= MIN_UNITS:
        stat = np.median if statistic == "median" else np.mean
        low, high = stats.bootstrap_interval(cell.values, seed=seed, stat=stat)
        return low, high, SEEDS
    stacked = stacked_rows(cell.records) if cell.n else None
    if stacked is None:
        return math.nan, math.nan, NONE
    (form, metric), rows = stacked
    if len(rows) < 2:
        return math.nan, math.nan, NONE
    # the median of one or two runs is their mean: the same interval serves both statistics
    low, high = stats.example_bootstrap(runs_metric(form, metric, cell.scale), rows, seed=seed)
    return low, high, EXAMPLES
