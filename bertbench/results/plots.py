"""Plots of a built table (`tables.build_table`, itself a pure function of the records), never edited
by hand: every experiment's cells with their 95% intervals (`cells.png`), and the pretraining-steps
sweep with interval bands and the held-out LM accuracy of its pretraining runs (`steps.png`, the paper's
Figure 5). matplotlib, Agg backend (files only).
"""

import math
import textwrap
from pathlib import Path

import numpy as np

from bertbench.results.formats import column_names, majority_values

REFERENCE_COLOR, ROW_COLOR, BASELINE_COLOR = "tab:red", "tab:blue", "0.45"
LABEL_WIDTH = 40  # characters per line of a row label in cells.png (longer ones wrap)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path):
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, metadata={"Software": None})  # no version stamp: same records, same bytes
    plt.close(fig)
    return path


def _fields(frame):
    statistic = frame.attrs.get("statistic", "mean")
    return (statistic, "low", "high") if statistic == "mean" else (statistic, "median_low", "median_high")


def _panel(ax, frame, col, fields):
    """One column: each row's value with its interval bar (top row first), the baseline dashed."""
    value_f, low_f, high_f = fields
    reference = frame.attrs.get("reference")
    for y, (label, row) in enumerate(frame.iterrows()):
        if not row[(col, "n")]:
            continue
        value, low, high = row[(col, value_f)], row[(col, low_f)], row[(col, high_f)]
        xerr = None if math.isnan(low) else [[max(0.0, value - low)], [max(0.0, high - value)]]
        ax.errorbar([value], [-y], xerr=xerr, fmt="o", capsize=3,
                    color=REFERENCE_COLOR if label == reference else ROW_COLOR)
    baseline = majority_values(frame).get(col)
    if baseline is not None:
        ax.axvline(baseline, linestyle="--", color=BASELINE_COLOR, label="majority class")
        ax.legend(fontsize=7, loc="best")
    ax.set_title(col, fontsize=9)
    ax.grid(axis="x", alpha=0.3)


def plot_cells(frame, experiment, path):
    """One panel per column: each row's mean (or median) with its 95% interval bar, the reference row
    in red, the majority-class baseline as a dashed line. Writes a PNG; returns its path (None when
    no cell has a run)."""
    columns = [c for c in column_names(frame) if frame[(c, "n")].sum()]
    if not columns:
        return None
    plt = _pyplot()
    labels = list(frame.index)
    wrapped = [textwrap.fill(label, LABEL_WIDTH) for label in labels]  # a reference row's label can be long
    lines = max(label.count("\n") + 1 for label in wrapped)
    label_inches = 0.065 * max(len(line) for label in wrapped for line in label.split("\n"))
    width = 2.8 * len(columns) + label_inches + 0.6
    fig, axes = plt.subplots(1, len(columns), figsize=(width, (0.25 + 0.15 * lines) * len(labels) + 1.6),
                             squeeze=False, sharey=True)
    for ax, col in zip(axes[0], columns, strict=True):
        _panel(ax, frame, col, _fields(frame))
    axes[0][0].set_yticks([-y for y in range(len(labels))], wrapped, fontsize=8)
    for tick, label in zip(axes[0][0].get_yticklabels(), labels, strict=True):
        if label == frame.attrs.get("reference"):
            tick.set_color(REFERENCE_COLOR)
    title = (f"{experiment.title}: {frame.attrs.get('statistic', 'mean')} with 95% interval "
             f"(red: the reference row)")
    fig.suptitle(textwrap.fill(title, int(width * 13)), fontsize=10)
    return _save(plt, fig, path)


def sweep_lines(frame):
    """{column: {base variant: [(sweep value, value, low, high)]}} of a sweep table's rows with runs."""
    value_f, low_f, high_f = _fields(frame)
    sweep = frame.attrs.get("sweep") or {}
    lines = {}
    for col in column_names(frame):
        for label, row in frame.iterrows():
            if label in sweep and row[(col, "n")]:
                base, step = sweep[label]
                lines.setdefault(col, {}).setdefault(base, []).append(
                    (step, row[(col, value_f)], row[(col, low_f)], row[(col, high_f)]))
    return {col: {base: sorted(points) for base, points in bases.items()} for col, bases in lines.items()}


def heldout_curves(records, experiment):
    """{base variant: [(step, held-out LM accuracy in %)]} from the pretraining records: step 0, every
    export (`heldout_at_exports`) and the last step; the curve the small scale is designed from."""
    bases = [v.name for v in experiment.variants]
    curves = {}
    for record in records:
        metrics, names = record.get("metrics") or {}, record.get("variants") or []
        base = next((b for b in bases if any(n == b or n.startswith(f"{b}@") for n in names)), None)
        if record.get("kind") != "pretrain" or base is None or "heldout.lm_accuracy" not in metrics:
            continue
        points = {0: metrics.get("initial_heldout.lm_accuracy"), int(metrics["steps"]): metrics["heldout.lm_accuracy"]}
        for key, value in metrics.items():
            parts = key.split(".")
            if parts[0] == "heldout_at_exports" and parts[-1] == "lm_accuracy":
                points[int(parts[1])] = value
        curves[base] = sorted((k, 100.0 * v) for k, v in points.items() if v is not None)
    return curves


def _flat_rows(ax, frame, column, sweep):
    """Rows outside the sweep (the no-pretraining row) as a horizontal line with its interval band."""
    value_f, low_f, high_f = _fields(frame)
    for label, row in frame.iterrows():
        if label in sweep or not row[(column, "n")]:
            continue
        line = ax.axhline(row[(column, value_f)], linestyle="--", color=BASELINE_COLOR, label=label)
        if not (math.isnan(row[(column, low_f)]) or math.isnan(row[(column, high_f)])):
            ax.axhspan(row[(column, low_f)], row[(column, high_f)], alpha=0.15, color=line.get_color(), linewidth=0)


def _sweep_axis(ax, xs):
    """A log x axis when the sweep spans 10x or more (log-spaced exports such as small's 1k..20k, which a
    linear axis crowds into its left edge); symlog when step 0 (the initial held-out point) is plotted."""
    positive = [x for x in xs if x > 0]
    if len(positive) < 2 or max(positive) < 10 * min(positive):
        return
    if len(positive) < len(xs):
        ax.set_xscale("symlog", linthresh=min(positive))
    else:
        ax.set_xscale("log")
    ax.set_xticks(sorted(set(xs)))
    ax.set_xticklabels([f"{x:,.0f}" for x in sorted(set(xs))], rotation=30, fontsize=7)
    ax.minorticks_off()


def plot_sweep(frame, experiment, path, records=()):
    """Accuracy against the sweep value (pretraining steps), one line per objective with its 95%
    interval as a band, the no-pretraining row as a dashed line with its band; one panel per column,
    plus the held-out LM accuracy of the pretraining runs against steps when their records are given.
    Writes a PNG; returns its path (None when empty)."""
    lines, curves = sweep_lines(frame), heldout_curves(records, experiment)
    if not lines:
        return None
    plt = _pyplot()
    names = {v.name: v.row for v in experiment.variants}
    panels = len(lines) + bool(curves)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.6), squeeze=False)
    for ax, (column, bases) in zip(axes[0], lines.items(), strict=False):  # (+ the held-out panel)
        for base, points in bases.items():
            xs, values, lows, highs = (np.asarray(v, float) for v in zip(*points, strict=True))
            (line,) = ax.plot(xs, values, marker="o", label=names.get(base, base))
            known = ~(np.isnan(lows) | np.isnan(highs))
            ax.fill_between(xs, lows, highs, where=known, alpha=0.2, color=line.get_color(), linewidth=0)
        _flat_rows(ax, frame, column, frame.attrs.get("sweep") or {})
        _sweep_axis(ax, [x for points in bases.values() for x, *_ in points])
        ax.set_xlabel(experiment.sweep.get("key", "pretraining steps"))
        ax.set_ylabel(f"{column} dev ({frame.attrs.get('statistic', 'mean')}, 95% band)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if curves:
        ax = axes[0][-1]
        for base, points in curves.items():
            ax.plot(*zip(*points, strict=True), marker="o", label=names.get(base, base))
        _sweep_axis(ax, [x for points in curves.values() for x, _ in points])
        ax.set_xlabel("pretraining steps")
        ax.set_ylabel("held-out LM accuracy (%, one run)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(experiment.title, fontsize=10)
    return _save(plt, fig, path)
