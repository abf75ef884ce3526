"""Plots rebuilt from run records (never edited by hand): the pretraining-steps sweep (Figure 5)."""

import math
from pathlib import Path

from bertbench.results.cells import cell_stats, cell_values


def sweep_points(records, experiment):
    """{column: {base variant: [(sweep value, mean, std, n)]}} from ok fine-tuning records, in the
    tables' display units and with their grid-point rule (`cells.py`)."""
    ok = [r for r in records if r.get("status") == "ok" and r.get("kind") == "finetune"
          and r.get("experiment") == experiment.name and r.get("base_variant")]
    points = {}
    for col in experiment.columns:
        if col.source != "finetune":
            continue
        for base in dict.fromkeys(r["base_variant"] for r in ok):
            values = sorted({r["sweep_value"] for r in ok if r["base_variant"] == base and r["column"] == col.name})
            line = []
            for value in values:
                variant = next(r["variant"] for r in ok if r["base_variant"] == base and r["sweep_value"] == value)
                mean, std, n = cell_stats(cell_values(ok, variant, col))
                if n:
                    line.append((value, mean, std, n))
            if line:
                points.setdefault(col.name, {})[base] = line
    return points


def plot_sweep(records, experiment, path):
    """Accuracy against the sweep value (pretraining steps), one line per objective, error bars = std
    over seeds; one panel per column. Writes a PNG; returns its path (None when there is nothing)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    points = sweep_points(records, experiment)
    if not points:
        return None
    labels = {v.name: v.row for v in experiment.variants}
    fig, axes = plt.subplots(1, len(points), figsize=(5 * len(points), 3.6), squeeze=False)
    for ax, (column, lines) in zip(axes[0], points.items(), strict=True):
        for base, line in lines.items():
            xs, means, stds, _ = zip(*line)
            errors = [0.0 if math.isnan(s) else s for s in stds]
            ax.errorbar(xs, means, yerr=errors, marker="o", capsize=3, label=labels.get(base, base))
        ax.set_xlabel(experiment.sweep.get("key", "pretraining steps"))
        ax.set_ylabel(f"{column} dev")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(experiment.title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
