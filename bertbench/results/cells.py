"""One cell of a results table (a row variant x a column): its runs, their values and pairing units.

Shared by the tables, the comparisons, the power lines and the plots. A fine-tuning cell's records
are grouped by their grid point; the point is chosen by `bertbench.evaluation.selection.best_point`
(the best MEAN over units, the rule `finetune --grid` uses; ties to the first point in record order)
and every run of that point is reported; when the cell has grid-selection runs (record role "selection",
experiments/plan.py), they choose the point (`selected_point`; per pretraining seed, as the runner
does: `results.states.chosen_points`) and only the other runs at it are reported. A pretraining cell (e.g. held-out perplexity) reads the
pretraining summary, one value per pretraining run. The direction of a metric comes from the metric
registry, through `Column.higher_is_better`.

A run's pairing unit is `(pretrain_seed, seed)`: the same fine-tuning seed gives the same data order
and head initialisation across variants, so two rows' runs with the same unit are a pair. A
pretraining run's unit is `(pretrain_seed, 0)`. Records written before pretraining seeds existed
lack `pretrain_seed` (read as 0), `collapsed` (false) and `baselines` (none).
"""

import dataclasses
import math

from bertbench.evaluation.selection import best_point, point_key, selected_point
from bertbench.experiments.schema import BASELINE


@dataclasses.dataclass(frozen=True)
class Cell:
    """The chosen grid point's runs of one cell, sorted by unit; values in display units."""

    units: tuple = ()  # ((pretrain_seed, seed), ...)
    values: tuple = ()  # one per unit, x100 for `times100` columns
    records: tuple = ()  # the run records, same order
    scale: float = 1.0  # display units per metric unit

    @property
    def n(self):
        return len(self.values)

    @property
    def collapsed(self):
        """How many of the runs their record flags as collapsed (they stay in the values)."""
        return sum(bool(r.get("collapsed")) for r in self.records)

    def by_unit(self):
        return dict(zip(self.units, self.values, strict=True))

    def records_by_unit(self):
        return dict(zip(self.units, self.records, strict=True))


def ok_records(records, experiment):
    """The records a table of `experiment` reads: status ok, this experiment."""
    return [r for r in records if r.get("status") == "ok" and r.get("experiment") == experiment.name]


def unit_of(record):
    """The pairing unit (pretrain_seed, seed) of a record (a pretraining record's seed is 0)."""
    seed = 0 if record.get("kind") in ("pretrain", "random_init") else record.get("seed", 0)
    return (int(record.get("pretrain_seed") or 0), int(seed or 0))


def _points(records, variant, col):
    """[[(unit, value, record)]] of one cell's records, one list per grid point, in record order."""
    points = {}
    for r in records:
        if col.source == "pretrain":
            if r.get("kind") in ("pretrain", "random_init") and variant in r.get("variants", ()):
                # the pretraining runs of a variant (one per pretraining seed) form one point
                points.setdefault("pretrain", []).append((unit_of(r), (r.get("metrics") or {}).get(col.metric), r))
        elif r.get("kind") == "finetune" and r.get("variant") == variant and r.get("column") == col.name:
            key = (r.get("role") == "selection", point_key(r.get("grid")))
            points.setdefault(key, []).append((unit_of(r), (r.get("main_metric") or {}).get("value"), r))
    return list(points.values())


def cell(records, variant, col):
    """The Cell of `variant` x `col` (records already filtered to ok ones of the experiment)."""
    points = _points(records, variant, col)
    scale = 100.0 if col.times100 else 1.0
    selection = {}  # pretraining seed -> {point key: values}: each pretraining's point, as the runner chose it
    for point in points:
        for unit, value, record in point if point[0][2].get("role") == "selection" else ():
            selection.setdefault(unit[0], {}).setdefault(point_key(record.get("grid")), []).append(value)
    points = [point for point in points if point[0][2].get("role") != "selection"]
    if not points:
        return Cell(scale=scale)
    if selection:  # chosen on separate seeds (plan.py's grid selection); its reported runs only
        chosen = {seed: selected_point(values, col.higher_is_better) for seed, values in selection.items()}
        best = [run for point in points for run in point if chosen.get(run[0][0]) == point_key(run[2].get("grid"))]
    else:  # chosen on the reported runs themselves
        best = points[best_point([[v for _, v, _ in point] for point in points], col.higher_is_better)]
    runs = {}
    for unit, value, record in best:  # a unit run twice (should not happen) counts once: the first
        if value is not None and not math.isnan(float(value)):
            runs.setdefault(unit, (value * scale, record))
    units = tuple(sorted(runs))
    return Cell(units, tuple(runs[u][0] for u in units), tuple(runs[u][1] for u in units), scale)


def cell_values(records, variant, col):
    """Our numbers for one cell, one per unit of the chosen grid point (sorted by unit)."""
    return list(cell(records, variant, col).values)


def majority(records, col):
    """The column's majority-class (constant-prediction) baseline in display units: the mean of its
    fine-tuning records' `baselines.majority` (equal across runs of a column); NaN when none has one."""
    if col.source != "finetune":
        return math.nan
    values = [(r.get("baselines") or {}).get("majority") for r in records
              if r.get("kind") == "finetune" and r.get("column") == col.name]
    values = [float(v) for v in values if v is not None]
    return (100.0 if col.times100 else 1.0) * sum(values) / len(values) if values else math.nan


def table_variants(records, experiment):
    """The table's rows: the experiment's variants in file order (a sweep: one row per point that has
    records, in step order), the no-pretraining baseline last when it has records."""
    variants = list(experiment.variants)
    seen = {v for r in records for v in [r.get("variant"), *r.get("variants", ())] if v}
    if experiment.sweep:
        variants = _sweep_variants(experiment, [r for r in records if r.get("kind") == "finetune"])
    if BASELINE.name in seen and BASELINE.name not in [v.name for v in variants]:
        variants.append(BASELINE)
    return variants


def _sweep_variants(experiment, finetunes):
    """Sweep-expanded variants that have records: each base variant's points in increasing order."""
    points = {(r.get("base_variant"), r.get("sweep_value")) for r in finetunes}
    return [dataclasses.replace(v, name=f"{v.name}@{k}", row=f"{v.row} @ {k:,}", base=v.name, sweep_value=k)
            for v in experiment.variants for k in sorted(k for b, k in points if b == v.name and k is not None)]


def table_cells(records, experiment):
    """(rows, {column name: {variant name: Cell}}) of a table, from any records (filtered here)."""
    ok = ok_records(records, experiment)
    variants = table_variants(ok, experiment)
    return variants, {col.name: {v.name: cell(ok, v.name, col) for v in variants} for col in experiment.columns}


def cell_stats(values):
    """(mean, sample std, n) of a cell's values; NaN where undefined (std needs two values)."""
    n = len(values)
    if not n:
        return math.nan, math.nan, 0
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return mean, std, n
