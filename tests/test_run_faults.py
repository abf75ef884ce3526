"""`bertbench run` survives SIGKILL anywhere: the real backend at a minute scale, killed at six points
(pretraining, exporting the encoder, writing a run's run.json and its record, fine-tuning, writing the
tables); each rerun
exits 0 with every record equal to one uninterrupted run's, no duplicate, nothing half-written left.

One uninterrupted reference run (a child process, once per module); each test kills a child of its
own (tests/faults.py) in a fresh results folder, then reruns it to the end.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bertbench.results.runner import make_plan
from faults import KillAt, leftovers, run_cli, run_killed, was_killed

REPO = Path(__file__).resolve().parents[1]
# The ci scale shrunk to seconds: a one-layer H16 encoder, 6 pretraining steps (checkpoints at 2, 4, 6),
# one fine-tuning run on 32 MRPC examples.
SCALE = """
[ci]
description = "fault tests: seconds"
data = "sample"
seeds = 1
[ci.set]
model.preset = "tiny"
model.num_layers = 1
model.hidden_dim = 16
model.num_heads = 2
model.intermediate_dim = 32
pretrain.corpus = "sample"
pretrain.vocab = "sample"
pretrain.num_steps = 6
pretrain.batch_size = 4
pretrain.max_seq_length = 32
pretrain.warmup_steps = 1
pretrain.learning_rate = 1e-3
pretrain.checkpoint_every = 2
pretrain.log_every = 2
pretrain.heldout_fraction = 0.05
finetune.learning_rate = 1e-3
finetune.batch_size = 8
finetune.epochs = 1.0
finetune.max_train_examples = 32
finetune.max_eval_examples = 32
finetune.max_seq_length = 32
"""
PLAN = ["ablation_nsp", "--only", "bert", "--column", "MRPC", "--seeds", "1"]
VOLATILE = {"started", "finished", "wall_time_s", "train_wall_time_s", "wall_time_total_s", "tokens_per_s",
            "resumed_from_step", "git",
            "hardware"}  # when and where it ran; a resumed pretraining's own share of the steps


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("run_faults")
    experiments = root / "experiments"
    experiments.mkdir()
    shutil.copy(REPO / "experiments" / "ablation_nsp.toml", experiments)
    (experiments / "_scales.toml").write_text(SCALE)
    env = {"BERTBENCH_CACHE": str(root / "cache"), "PYTHONUNBUFFERED": "1"}
    proc = run_cli(argv(root / "reference", experiments), env=env)
    assert proc.returncode == 0, proc.stderr
    plan = make_plan(*PLAN[:1], only=["bert"], columns=["MRPC"], seeds=1, experiments=experiments)
    return experiments, env, root / "reference", plan


def argv(results, experiments):
    return ["run", *PLAN, "--experiments", experiments, "--results", results, "--quiet"]


def normalized(value, root):
    """A record without VOLATILE keys, its paths relative to its results folder."""
    if isinstance(value, dict):
        return {k: normalized(v, root) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [normalized(v, root) for v in value]
    return value.replace(str(root), "<results>") if isinstance(value, str) else value


def records(results):
    folder = results / "ablation_nsp" / "ci" / "records"
    return {p.name: normalized(json.loads(p.read_text()), results) for p in sorted(folder.iterdir())}


def weights(results, plan):
    import h5py

    arrays = {}
    with h5py.File(results / "runs" / "pretrain" / plan.pretrains[0].id / "encoder" / "encoder.weights.h5") as f:
        f.visititems(lambda name, obj: arrays.update({name: obj[()]}) if isinstance(obj, h5py.Dataset) else None)
    return arrays


def points(plan):
    """Where to kill `run` (the function as the caller looks it up; os.replace: a file's atomic rename)."""
    pre, ft = plan.pretrains[0].id, plan.finetunes[0].id
    return {
        "pretraining, between checkpoints": KillAt("bertbench.pretraining.loop", "save_checkpoint", call=2),
        "exporting the encoder (staged, not renamed)": KillAt("bertbench.model.checkpoint", "_replace_dir"),
        "writing the pretraining's run.json": KillAt("os", "replace", match=f"pretrain/{pre}/run.json"),
        "fine-tuning (trained, not scored)": KillAt("bertbench.finetuning.loop", "evaluate_split"),
        "writing the fine-tuning record": KillAt("os", "replace", match=f"records/{ft}.json"),
        "writing the tables": KillAt("os", "replace", match="table.md"),
    }


HALF_WRITTEN = ("exporting the encoder (staged, not renamed)", "writing the pretraining's run.json",
                "writing the fine-tuning record", "writing the tables")  # a kill leaves a temporary behind


def run_json(results, kind, run_id):
    path = results / "runs" / kind / run_id / "run.json"
    return json.loads(path.read_text()) if path.exists() else None


@pytest.mark.slow
@pytest.mark.parametrize("point", ["pretraining, between checkpoints", *HALF_WRITTEN[:2],
                                   "fine-tuning (trained, not scored)", *HALF_WRITTEN[2:]])
def test_a_run_killed_anywhere_reruns_to_the_uninterrupted_result(setup, tmp_path, point):
    experiments, env, reference, plan = setup
    results, ft = tmp_path / "results", plan.finetunes[0]
    killed = run_killed(argv(results, experiments), points(plan)[point], env=env)
    assert was_killed(killed), (point, killed.returncode, killed.stderr[-2000:])
    if point in HALF_WRITTEN:
        assert leftovers(results), point  # the kill really was mid-write
    if point == "fine-tuning (trained, not scored)":
        assert run_json(results, "pretrain", plan.pretrains[0].id) and not run_json(results, "finetune", ft.id)
    rerun = run_cli(argv(results, experiments), env=env)
    assert rerun.returncode == 0, rerun.stderr
    if point == "pretraining, between checkpoints":  # resumed from the step-2 checkpoint, not restarted
        assert run_json(results, "pretrain", plan.pretrains[0].id)["output"]["resumed_from_step"] == 2
    assert records(results) == records(reference)  # the same records (so no duplicate), the same numbers
    ours, theirs = weights(results, plan), weights(reference, plan)
    assert ours.keys() == theirs.keys()
    for name in ours:  # bit-identical encoders
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    predictions = Path("runs") / "finetune" / ft.id / "predictions.tsv"
    assert (results / predictions).read_bytes() == (reference / predictions).read_bytes()
    assert leftovers(results) == []
    assert not list((results / "runs").rglob("*.lock")) and not list(results.rglob(".runner-*"))
