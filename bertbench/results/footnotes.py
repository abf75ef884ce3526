"""The statistical footnotes of a table: what a cell shows, how each interval and each Δ test was
computed (per column, or per cell where a column mixes methods), and which comparisons stay
significant after the Holm correction across the whole table. A pure function of the built frame.
"""

import math

from bertbench.results.comparisons import ALPHA, TEST_TEXT, verdict
from bertbench.results.formats import format_p
from bertbench.results.intervals import METHOD_TEXT, SEEDS


def _columns(frame):
    return list(dict.fromkeys(c for c, _ in frame.columns))


def grouped(frame, field, texts):
    """'A, B: text; C: text1 for row1; text2 for row2': the values of `field` per column, columns
    with the same description together ('' and the reference are left out)."""
    by_description = {}
    for col in _columns(frame):
        rows = {}
        for label, method in frame[(col, field)].items():
            if method in texts:
                rows.setdefault(method, []).append(label)
        if not rows:
            continue
        if len(rows) == 1:
            description = texts[next(iter(rows))]
        else:
            description = "; ".join(f"{texts[m]} for {', '.join(labels)}" for m, labels in rows.items())
        by_description.setdefault(description, []).append(col)
    return "; ".join(f"{', '.join(cols)}: {d}" for d, cols in by_description.items())


def _holm_note(frame, experiment):
    directions = {c.name: c.higher_is_better for c in experiment.columns}
    decimals = frame.attrs.get("decimals", {})
    tested = [(label, col, row) for label, row in frame.iterrows() for col in _columns(frame)
              if not math.isnan(row[(col, "p")])]
    if not tested:
        return ("No Δ has a test (fewer than 3 paired seeds and no per-example rows): each Δ is a plain "
                "difference and says nothing about noise.")
    raw = sum(row[(col, "p")] < ALPHA for _, col, row in tested)
    kept = [f"{label} / {col} {row[(col, 'delta')]:+.{decimals.get(col, 1)}f} "
            f"({verdict(row[(col, 'delta')], directions.get(col, True))}, {format_p(row[(col, 'p')])}, "
            f"Holm {row[(col, 'p_holm')]:.3f})"
            for label, col, row in tested if row[(col, "p_holm")] < ALPHA]
    head = (f"Holm correction over the table's {len(tested)} tested comparisons ({raw} with p < {ALPHA} "
            f"before correction): ")
    few = sorted({int(row[(col, "pairs")]) for _, col, row in tested
                  if row[(col, "test")] == SEEDS and 2.0 / 2 ** row[(col, "pairs")] >= ALPHA})
    caveat = (f" With {' or '.join(map(str, few))} paired seeds the exact sign-flip test cannot reach p < {ALPHA} "
              f"(its smallest p is 2/2^n): a * there (t interval excluding 0) says the difference is likely, "
              f"not that it survives the table's multiple comparisons; more seeds (`table --power`) would." if few else "")
    if not kept:
        return head + f"none remains significant at {ALPHA}." + caveat
    return head + f"significant at {ALPHA} after correction (†): " + "; ".join(kept) + "." + caveat


def statistics_notes(frame, experiment):
    """Footnotes on the cells, intervals, Δ tests, Holm and the majority row of a built frame."""
    columns = _columns(frame)
    if not any(frame[(col, "n")].sum() for col in columns):
        return []
    statistic = frame.attrs.get("statistic", "mean")
    notes = [f"Cells: {statistic} [95% interval] (n runs)"
             + ("; ⊘k: k of the runs collapsed (a single predicted class, or at or below the majority baseline), "
                "kept in the cell" if any(frame[(col, "collapsed")].sum() for col in columns) else "")
             + ". Intervals: " + grouped(frame, "method", METHOD_TEXT) + "."]
    reference = frame.attrs.get("reference")
    if reference is not None:
        notes.append(f"Δ: ours − {reference}, the mean of paired differences over the runs both rows have "
                     f"(matched on pretraining seed and fine-tuning seed), with its 95% interval and p-value; "
                     f"* the interval excludes 0. Tests: "
                     + (grouped(frame, "test", TEST_TEXT)
                        or "none (no matched runs)") + ".")
        notes.append(_holm_note(frame, experiment))
    if any(not math.isnan(v) for col in columns for v in frame[(col, "majority")]):
        notes.append("Majority class (constant prediction): the column's metric of predicting the majority class "
                     "(the mean, for regression) for every dev example, on the same dev examples as the runs.")
    return notes


def sweep_notes(frame, experiment):
    """For a sweep with a reference row (ablation_steps: k steps against none): per column and objective,
    the smallest k from which every measured k's Δ interval excludes 0 on the better side, i.e. the budget
    at which the gain is real at this table's seeds, or that no k up to the largest is."""
    sweep, reference = frame.attrs.get("sweep") or {}, frame.attrs.get("reference")
    if not sweep or reference is None:
        return []
    directions, decimals = {c.name: c.higher_is_better for c in experiment.columns}, frame.attrs.get("decimals", {})
    parts = []
    for col in _columns(frame):
        lines = {}
        for label, (base, step) in sweep.items():
            row = frame.loc[label]
            if label != reference and row[(col, "n")] and not math.isnan(row[(col, "delta_low")]):
                better = row[(col, "delta_low")] > 0 if directions.get(col, True) else row[(col, "delta_high")] < 0
                lines.setdefault(base, []).append((step, better, label))
        for base, points in lines.items():
            points.sort()
            first = next((i for i in range(len(points)) if all(b for _, b, _ in points[i:])), None)
            if first is None:
                parts.append(f"{col}, {base}: no k up to {points[-1][0]:,}")
                continue
            row, d = frame.loc[points[first][2]], decimals.get(col, 1)
            parts.append(f"{col}, {base}: {points[first][0]:,} ({row[(col, 'delta')]:+.{d}f} "
                         f"[{row[(col, 'delta_low')]:+.{d}f}, {row[(col, 'delta_high')]:+.{d}f}], "
                         f"{format_p(row[(col, 'p')])})")
    if not parts:
        return []
    return [f"Budget: the smallest k from which every measured k's Δ over {reference} has its 95% interval on "
            f"the better side of 0 (with its p-value: with few seeds the exact test may not agree): "
            + "; ".join(parts) + "."]
