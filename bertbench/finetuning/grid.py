"""The paper's fine-tuning grid: every point x seed, and the best point on dev.

The best point is the one with the best MEAN main metric over seeds (ties: the first point), the
rule of bertbench.evaluation.selection.best_point, which the tables use too.
"""

import dataclasses
import itertools
from pathlib import Path

import numpy as np

from bertbench.config import FinetuneConfig
from bertbench.errors import ConfigError
from bertbench.evaluation.selection import best_point
from bertbench.files import write_json_atomic
from bertbench.finetuning import loop
from bertbench.tasks import get_task

DEFAULT_GRID = {"batch_size": [16, 32], "learning_rate": [5e-5, 3e-5, 2e-5], "epochs": [2, 3, 4]}


def point_name(point):
    """A grid point's folder name, e.g. batch_size16_epochs3_learning_rate2e-05."""
    return "_".join(f"{k}{point[k]:g}" if isinstance(point[k], (int, float)) else f"{k}{point[k]}"
                    for k in sorted(point))


def finetune_grid(finetune_cfg, init, out_dir, grid=None, seeds=(0,), **kwargs):
    """Every grid point x seed; the best point on dev by the task's main metric (mean over seeds).

    kwargs go to bertbench.finetuning.loop.finetune. Returns {"task", "main_metric",
    "higher_is_better", "best": {"point", "mean", "std", "values", "metrics_mean"}, "points": [...]};
    `std` is the sample std over seeds (0 for one).
    """
    spec = get_task(finetune_cfg.task)
    grid = DEFAULT_GRID if grid is None else grid
    names = [f.name for f in dataclasses.fields(FinetuneConfig)]
    for key in grid:
        if key not in names or key in ("seed", "task"):
            raise ConfigError(f"grid key '{key}' is not a finetune setting to search over")
    out_dir = Path(out_dir)
    keys = sorted(grid)
    points = []
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values, strict=True))
        folder = out_dir / point_name(point)
        records = [loop.finetune(dataclasses.replace(finetune_cfg, **point, seed=int(seed)), init,
                                 folder / f"seed{seed}", **kwargs) for seed in seeds]
        points.append(_summarize(point, seeds, records, folder))
    best = points[best_point([p["values"] for p in points], spec.higher_is_better)]
    summary = {"task": spec.name, "main_metric": spec.main_metric,
               "higher_is_better": spec.higher_is_better, "best": best, "points": points}
    write_json_atomic(out_dir / "grid.json", summary)
    return summary


def _summarize(point, seeds, records, folder):
    """One grid point: its main values per seed, their mean and std, and every metric's mean."""
    mains = np.asarray([r["main_value"] for r in records], float)
    common = set.intersection(*(set(r["metrics"]) for r in records))
    metrics_mean = {k: float(np.mean([r["metrics"][k] for r in records])) for k in sorted(common)
                    if all(isinstance(r["metrics"][k], (int, float)) for r in records)}
    return {"point": point, "seeds": list(seeds), "values": mains.tolist(),
            "mean": float(mains.mean()), "std": float(mains.std(ddof=1)) if len(mains) > 1 else 0.0,
            "metrics_mean": metrics_mean,
            "records": [str(folder / f"seed{s}" / "record.json") for s in seeds]}
