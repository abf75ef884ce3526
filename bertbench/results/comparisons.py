"""Paired differences to the reference row, and the Holm correction across a table's comparisons.

A row's Δ in a column is the mean over matched units of (ours - reference): units are matched on
`(pretrain_seed, seed)` and only units present in both rows count. Its interval and p-value:

    >= 3 pairs       paired sign-flip test and paired Student-t interval (`stats.paired_difference`)
    1 or 2 pairs     paired bootstrap over dev examples (`stats.paired_example_bootstrap`) of the
                     pairs' `example_rows`: both rows resampled with the same example indices, a
                     resample's value the mean over the runs of the recomputed metric
    otherwise        the plain Δ, no test

Δ is always ours minus the reference; the metric's direction only decides the words "better" and
"worse". `holm_adjust` applies Holm-Bonferroni to every comparison of a table that has a p-value.
"""

import math

import numpy as np

from bertbench.evaluation import stats
from bertbench.results.intervals import EXAMPLES, MIN_UNITS, NONE, SEEDS, runs_metric, stacked_rows

REFERENCE = "reference"
ALPHA = 0.05
TEST_TEXT = {SEEDS: "paired sign-flip test and paired t interval over matched seeds (≥ 3 pairs)",
             EXAMPLES: "paired bootstrap over dev examples (< 3 pairs)",
             NONE: "no test (< 3 pairs and no per-example rows)"}


def _empty(n=0, method=NONE, delta=math.nan):
    return {"delta": delta, "low": math.nan, "high": math.nan, "p": math.nan, "n": n, "method": method}


def paired(ours, reference, seed=0):
    """{delta, low, high, p, n, method} of Cell `ours` minus Cell `reference` over their matched units."""
    a_units, b_units = ours.by_unit(), reference.by_unit()
    common = sorted(set(a_units) & set(b_units))
    if not common:
        return _empty()
    a = np.array([a_units[u] for u in common])
    b = np.array([b_units[u] for u in common])
    if len(common) >= MIN_UNITS:
        return {**stats.paired_difference(a, b, seed=seed), "method": SEEDS}
    delta = float(np.mean(a - b))
    a_records, b_records = ours.records_by_unit(), reference.records_by_unit()
    a_rows = stacked_rows([a_records[u] for u in common])
    b_rows = stacked_rows([b_records[u] for u in common])
    if a_rows is None or b_rows is None or a_rows[0] != b_rows[0] or a_rows[1].shape != b_rows[1].shape \
            or len(a_rows[1]) < 2:
        return _empty(len(common), NONE, delta)
    (form, metric), rows_a = a_rows
    test = stats.paired_example_bootstrap(runs_metric(form, metric, ours.scale), rows_a, b_rows[1], seed=seed)
    # Δ is the mean of the paired value differences (the rows recompute each run's value exactly)
    return {**test, "delta": delta, "n": len(common), "method": EXAMPLES}


def excludes_zero(comparison):
    """True when the comparison's 95% interval lies entirely above or below 0."""
    low, high = comparison.get("low", math.nan), comparison.get("high", math.nan)
    return not (math.isnan(low) or math.isnan(high)) and (low > 0 or high < 0)


def holm_adjust(comparisons):
    """Set 'p_holm' on each comparison dict: Holm over all of those with a p-value (others NaN)."""
    tested = [c for c in comparisons if not math.isnan(c.get("p", math.nan))]
    for c, adjusted in zip(tested, stats.holm([c["p"] for c in tested]), strict=True):
        c["p_holm"] = adjusted
    for c in comparisons:
        c.setdefault("p_holm", math.nan)
    return comparisons


def verdict(delta, higher_is_better):
    """'better' or 'worse' than the reference, by the metric's direction ('same' for 0)."""
    if delta == 0 or math.isnan(delta):
        return "same"
    return "better" if (delta > 0) == bool(higher_is_better) else "worse"
