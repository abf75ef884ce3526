"""One cell of a results table (a row variant x a column): its values and their statistics.

Shared by the tables and the plots. A fine-tuning cell's records are grouped by their grid point;
the point is chosen by `bertbench.evaluation.selection.best_point` (the best MEAN over seeds, the
rule `finetune --grid` uses; ties to the first point in record order) and every seed of that point
is reported. A pretraining cell (e.g. held-out perplexity) reads the pretraining summary. The
direction of a metric comes from the metric registry, through `Column.higher_is_better`.
"""

import json
import math

from bertbench.evaluation.selection import best_point


def _points(records, variant, col):
    """{grid point key: [(seed, value)]} of one cell's ok records, points in record order."""
    points = {}
    for r in records:
        if col.source == "pretrain":
            if r.get("kind") in ("pretrain", "random_init") and variant in r.get("variants", ()):
                # each pretraining run is its own point (one value; its "seed" is 0)
                points.setdefault(r.get("pretrain_id"), []).append((0, (r.get("metrics") or {}).get(col.metric)))
        elif r.get("kind") == "finetune" and r.get("variant") == variant and r.get("column") == col.name:
            key = json.dumps(r.get("grid") or {}, sort_keys=True)
            points.setdefault(key, []).append((r.get("seed", 0), (r.get("main_metric") or {}).get("value")))
    return list(points.values())


def cell_values(records, variant, col):
    """Our numbers for one cell, one per seed of the chosen grid point (sorted by seed), in display
    units (fractions x100 for `times100` columns); missing values are left out."""
    points = _points(records, variant, col)
    if not points:
        return []
    best = points[best_point([[v for _, v in point] for point in points], col.higher_is_better)]
    scale = 100.0 if col.times100 else 1.0
    return [v * scale for _, v in sorted(best, key=lambda sv: sv[0]) if v is not None]


def cell_stats(values):
    """(mean, sample std, n) of a cell's values; NaN where undefined (std needs two values)."""
    n = len(values)
    if not n:
        return math.nan, math.nan, 0
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return mean, std, n
