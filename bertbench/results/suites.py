"""The regression check's suites: what `check --scale S` reruns, as data (one suite per scale).

- ci (CI runs it): ablation_nsp's `bert` and `no_nsp_full_sentences` at ci scale, on MRPC and SST-2.
- small (not in CI; for users with a budget): ablation_nsp's `bert` and `no_pretraining` (random init)
  on SST-2 and the QNLI proxy, cells where pretraining carries signal, at one point of the scale's
  fine-tuning rate grid. Its baseline is calibrated from the records of `run ablation_nsp --scale small`
  (check_records.py), so a suite's runs are always its experiment's own runs (same ids).
"""

import dataclasses
from pathlib import Path

from bertbench.errors import unknown_name
from bertbench.results.runner import make_plan

RESULTS = Path(__file__).resolve().parents[2] / "results"  # the committed records: the estimate's history
BASELINE = RESULTS / "baselines" / "ci.json"
SUITES = {  # the check of each scale; a scale without one has no check
    "ci": {"experiment": "ablation_nsp", "scale": "ci", "only": ["bert", "no_nsp_full_sentences"],
           "columns": ["MRPC", "SST-2"]},  # no_nsp_full_sentences: the row named "No NSP" before input_format
    # pretrained against random init on SST-2 and the QNLI proxy (balanced dev sets that move with
    # pretraining; MRPC and RTE sit near the majority class), at one point of the scale's rate grid
    "small": {"experiment": "ablation_nsp", "scale": "small", "only": ["bert", "no_pretraining"],
              "columns": ["SST-2", "QNLI"], "grid": {"finetune.learning_rate": 3e-4}},
}
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


def suite_plan(suite, seeds=CHECK_SEEDS, data_dir=None):
    """The resolved runs of a suite with fine-tuning seeds 0..seeds-1: the experiment's own runs (same ids),
    at the suite's point of the scale's grid (`grid`: {key: value}) when it has one. That point is fixed:
    the experiment's grid-selection runs are not the suite's, and its candidates there are plain runs."""
    plan = make_plan(suite["experiment"], suite["scale"], seeds=seeds, only=suite.get("only"),
                     columns=suite.get("columns"), data_dir=data_dir)
    point = suite.get("grid") or {}
    return dataclasses.replace(plan, finetunes=tuple(dataclasses.replace(f, role="") for f in plan.finetunes if all(
        f.grid.get(k) == v for k, v in point.items()) and f.role != "selection"))


def seed0_ids(plan):
    """The ids a baseline stores: its pretrainings and seed-0 fine-tunings (what `check` reruns)."""
    return sorted([p.id for p in plan.pretrains] + [f.id for f in plan.finetunes if f.seed == 0])
