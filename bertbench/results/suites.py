"""The regression check's suites: what `check --scale S` reruns, as data (one suite per scale).

- ci (CI runs it): ablation_nsp's `bert` and `no_nsp_full_sentences` at ci scale, on MRPC and SST-2.
- small (not in CI; for users with a budget): ablation_nsp's `bert` and `no_pretraining` (random init)
  on SST-2 and the QNLI proxy, cells where pretraining carries signal, each cell at the fine-tuning rate
  the experiment's grid selection chose for it (`grid = "selected"`: the baseline stores the rates as
  `points`; `check` reruns seed 0 at them). Its baseline is calibrated from the records of `run
  ablation_nsp --scale small` (check_records.py), or by running the suite as the experiment does
  (`check --calibrate K`: selection runs first), so a suite's runs are always its experiment's own runs
  (same ids).
"""

import dataclasses
from pathlib import Path

from bertbench.errors import BertbenchError, unknown_name
from bertbench.results.runner import chosen_points, make_plan


class BaselineError(BertbenchError):
    """A missing or malformed baseline file: nothing runs (exit 2, like every user error)."""

RESULTS = Path(__file__).resolve().parents[2] / "results"  # the committed records: the estimate's history
BASELINE = RESULTS / "baselines" / "ci.json"
SUITES = {  # the check of each scale; a scale without one has no check
    "ci": {"experiment": "ablation_nsp", "scale": "ci", "only": ["bert", "no_nsp_full_sentences"],
           "columns": ["MRPC", "SST-2"]},  # no_nsp_full_sentences: the row named "No NSP" before input_format
    # pretrained against random init on SST-2 and the QNLI proxy (balanced dev sets that move with
    # pretraining; MRPC and RTE sit near the majority class), each cell at the rate the experiment's grid
    # selection chose for it (stored in the baseline as `points`; "selected")
    "small": {"experiment": "ablation_nsp", "scale": "small", "only": ["bert", "no_pretraining"],
              "columns": ["SST-2", "QNLI"], "grid": "selected"},
}
SELECTED = "selected"  # a suite's `grid`: each cell's point as the experiment's selection runs chose it
SUITE = SUITES["ci"]
SUITE_KEYS = ("experiment", "scale", "only", "columns", "grid")
CHECK_SEEDS = 1  # `check` fine-tunes with seed 0 only


def suite_of(scale):
    """The check suite of a scale (SUITES); a one-line error for a scale without one."""
    if scale not in SUITES:
        raise unknown_name("check scale", scale, SUITES)
    return SUITES[scale]


def baseline_path(scale):
    """results/baselines/<scale>.json: the committed baseline of a scale's suite."""
    return BASELINE.parent / f"{suite_of(scale)['scale']}.json"


def suite_plan(suite, seeds=CHECK_SEEDS, data_dir=None, points=None):
    """The resolved runs of a suite with fine-tuning seeds 0..seeds-1: the experiment's own runs (same ids),
    at the suite's point of the scale's grid (`grid`: {key: value}) when it has one. With `grid` "selected",
    each cell at its point in `points` ({"variant/column": point}, a baseline's); without `points`, the
    experiment's selection runs and candidates (calibrating: they choose the points). A fixed point's
    runs are plain runs (no selection)."""
    plan = make_plan(suite["experiment"], suite["scale"], seeds=seeds, only=suite.get("only"),
                     columns=suite.get("columns"), data_dir=data_dir)
    grid = suite.get("grid") or {}
    if grid == SELECTED and points is None:
        return plan
    if grid == SELECTED:
        missing = sorted({cell_name(f) for f in plan.finetunes} - set(points))
        if missing:
            raise BaselineError(f"the baseline has no chosen grid point for {missing[0]}; recalibrate it")
        keep = [f for f in plan.finetunes if f.role != "selection" and points[cell_name(f)] == f.grid]
    else:
        keep = [f for f in plan.finetunes if f.role != "selection" and all(f.grid.get(k) == v for k, v in grid.items())]
    return dataclasses.replace(plan, finetunes=tuple(dataclasses.replace(f, role="") for f in keep))


def cell_name(ft):
    """A suite cell's name in a baseline's `points`: "variant/column"."""
    return f"{ft.variant}/{ft.column}"


def selected_points(plan, folder):
    """{"variant/column": point} the selection runs of `plan` (a "selected" suite's, pretraining seed 0)
    chose, from the records in `folder`; None while a cell's selection runs have no records yet."""
    chosen = chosen_points(plan, folder)
    points = {f"{variant}/{column}": point for (pid, variant, column), point in chosen.items()
              if pid in {p.id for p in plan.pretrains if not p.pretrain_seed}}
    return None if not points or any(point is None for point in points.values()) else points


def seed0_ids(plan):
    """The ids a baseline stores: its pretrainings and seed-0 fine-tunings (what `check` reruns)."""
    return sorted([p.id for p in plan.pretrains] + [f.id for f in plan.finetunes if f.seed == 0])
