"""Choosing a fine-tuning grid point on dev: the one rule, used by `finetune --grid` and by tables.

The paper picks the best learning rate (batch size, epochs) on dev. With several seeds per point
the point is chosen by its MEAN over seeds, and every seed of that point is reported: choosing the
best point per seed and averaging those maxima would select on noise and bias the mean upwards.

    index = best_point([[80.1, 79.5], [81.0, 77.0]], higher_is_better=True)   # -> 0 (79.8 > 79.0)
"""

import json
import math


def point_mean(values):
    """Mean of a grid point's per-seed values, ignoring missing ones (None/NaN); NaN if none."""
    kept = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return sum(kept) / len(kept) if kept else math.nan


def best_point(values_by_point, higher_is_better=True):
    """Index of the grid point with the best mean over seeds; ties go to the first (grid order).

    values_by_point: one list of per-seed values per grid point. Points with no value are never
    chosen unless no point has one (then 0).
    """
    sign = 1.0 if higher_is_better else -1.0
    best, best_value = 0, -math.inf
    for i, values in enumerate(values_by_point):
        mean = point_mean(values)
        if not math.isnan(mean) and sign * mean > best_value:
            best, best_value = i, sign * mean
    return best


def point_key(point):
    """A grid point ({dotted key: value}) as text: the canonical key selections are made over."""
    return json.dumps(point or {}, sort_keys=True)


def selected_point(values_by_key, higher_is_better=True):
    """The point_key chosen by selection runs ({point_key: [per-seed values]}): best_point over the keys
    in sorted order, so the runner (which runs the chosen point) and the tables (which report it) agree
    on ties."""
    keys = sorted(values_by_key)
    return keys[best_point([values_by_key[k] for k in keys], higher_is_better)]
