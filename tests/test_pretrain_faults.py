"""A pretraining run's folder survives kills, a diverging loss, damaged files, a full disk and reruns with
another config: each rerun ends bit-identical to one uninterrupted run, or stops with one line.

One uninterrupted reference run (a child process, once per module); the kill tests run children that
SIGKILL themselves (tests/faults.py); the others call the CLI in this process on a copy of the reference.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from bertbench.cli import main as cli
from bertbench.errors import BertbenchError
from bertbench.pretraining.checkpoints import CheckpointPolicy, read_history
from faults import KillAt, leftovers, run_cli, run_killed, was_killed
from helpers import pretrain_outcome

# 12 steps, checkpoints at 4, 8 and 12; one phase and 2 held-out documents (a second phase retraces:
# +6 s a run).
SETTINGS = {"model.num_layers": 1, "model.hidden_dim": 32, "model.num_heads": 2, "model.intermediate_dim": 64,
            "pretrain.num_steps": 12, "pretrain.batch_size": 8, "pretrain.max_seq_length": 32,
            "pretrain.phase2_fraction": 0, "pretrain.heldout_fraction": 0.02, "pretrain.warmup_steps": 2,
            "pretrain.checkpoint_every": 4, "pretrain.log_every": 4}


def argv(out, **changes):
    sets = [a for k, v in {**SETTINGS, **changes}.items() for a in ("--set", f"{k}={v}")]
    return ["pretrain", "--scale", "ci", *sets, "--quiet", "--out", str(out)]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return {"BERTBENCH_CACHE": str(tmp_path_factory.getbasetemp() / "bertbench-cache"), "PYTHONUNBUFFERED": "1"}


@pytest.fixture(autouse=True)
def shared_cache(env, monkeypatch):
    monkeypatch.setenv("BERTBENCH_CACHE", env["BERTBENCH_CACHE"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory, env):
    """One uninterrupted run (a child process, as the killed ones)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    proc = run_cli(argv(out), env=env)
    assert proc.returncode == 0, proc.stderr
    return out


def unfinished_copy(reference, tmp_path):
    """The reference run as it stands before its encoder export: checkpoints 4, 8 and 12."""
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    (out / "summary.json").unlink()
    shutil.rmtree(out / "encoder")
    return out


def one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# ------------------------------------------------------------------------------------------
# kills


KILLS = [  # in the order a run reaches them, each with what it leaves; each rerun gets further
    # inside the TF checkpoint write of ckpt-4: its shards in ckpt-4_temp/, metrics.jsonl past the checkpoint
    (KillAt("tensorflow.python.ops.gen_io_ops", "merge_v2_checkpoints", when="before", call=1), "ckpt-4_temp"),
    # inside the append of step 8's line to metrics.jsonl (the file open, nothing written)
    (KillAt("json", "dumps", when="before", call=1, match="'step': 8,"), None),
    # right after a checkpoint: ckpt-8 written, steps 5-8 only there
    (KillAt("bertbench.pretraining.loop", "save_checkpoint", when="after", call=1), None),
    # the final encoder export between its weights write and its rename
    (KillAt("bertbench.model.checkpoint", "_replace_dir", when="before", call=1), ".encoder.tmp-"),
    # all trained and exported, summary.json not written
    (KillAt("bertbench.pretraining.loop", "write_json_atomic", when="before", call=1, match="summary.json"), None),
]


@pytest.mark.slow
def test_killed_at_five_points_then_rerun_ends_as_an_uninterrupted_run(reference, tmp_path, env):
    out = tmp_path / "run"
    for at, left in KILLS:
        proc = run_killed(argv(out), at=at, env=env)
        assert was_killed(proc), (at, proc.returncode, proc.stderr[-2000:])
        assert not (out / "summary.json").exists()
        assert left is None or any(left in name for name in leftovers(out)), (at, leftovers(out))
    proc = run_cli(argv(out), env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "summary.json").read_text())["resumed_from_step"] == 12
    assert pretrain_outcome(out) == pretrain_outcome(reference)
    assert leftovers(out) == []


# ------------------------------------------------------------------------------------------
# a non-finite loss


def restores_finite(out, name):
    """Whether checkpoint `name` (a path inside out/ckpt) holds only finite values."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(name)
    values = [reader.get_tensor(k) for k, dtype in reader.get_variable_to_dtype_map().items() if dtype.is_floating]
    return bool(values) and all(np.isfinite(v).all() for v in values)


@pytest.mark.slow
def test_nan_weights_condemn_their_checkpoint_and_a_rerun_resumes_from_the_last_good_one(
        reference, tmp_path, capsys, monkeypatch):
    from bertbench.pretraining.loop import Trainer

    original = Trainer.train_step

    def poisoned(self, batch):  # the update of step 8 leaves NaN weights: ckpt-8 is saved with them
        sums = original(self, batch)
        if int(self.optimizer.iterations.numpy()) == 8:
            weight = self.model.trainable_variables[0]
            weight.assign(weight * np.nan)
        return sums

    out = tmp_path / "run"
    monkeypatch.setattr(Trainer, "train_step", poisoned)
    assert cli(argv(out)) == 2
    err = one_line_error(capsys)
    assert "non-finite loss (nan) at step 9" in err and "--set pretrain.learning_rate=" in err
    named = err.split("Last good checkpoint: ")[1].split(". ")[0]
    assert named == str(out / "ckpt" / "ckpt-4") and restores_finite(out, named)
    assert not list((out / "ckpt").glob("ckpt-8*"))
    monkeypatch.setattr(Trainer, "train_step", original)
    assert cli(argv(out)) == 0
    assert json.loads((out / "summary.json").read_text())["resumed_from_step"] == 4
    assert pretrain_outcome(out) == pretrain_outcome(reference)


@pytest.mark.slow
def test_diverged_run_resumes_with_a_lower_rate_only(reference, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(argv(out, **{"pretrain.learning_rate": 1e30})) == 2
    assert "non-finite loss" in one_line_error(capsys)
    assert cli(argv(out, **{"pretrain.learning_rate": 1e30, "pretrain.seed": 1})) == 2  # not a rate: refused
    assert "use a new --out or pass --overwrite" in one_line_error(capsys)
    assert cli(argv(out)) == 0  # the ci scale's rate: accepted, recorded, and from there as the reference
    changes = json.loads((out / "run_config.json").read_text())["changes"]
    assert [c["pretrain.learning_rate"] for c in changes] == [[1e30, 1e-3]]
    assert pretrain_outcome(out) == pretrain_outcome(reference)


# ------------------------------------------------------------------------------------------
# damaged files, a full disk


def flip_bytes(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(b ^ 0xFF for b in data[len(data) // 2: len(data) // 2 + 64])
    path.write_bytes(bytes(data))


def drop_ckpt_12(out):
    for f in (out / "ckpt").glob("ckpt-12.*"):
        f.unlink()


def cut_last_metrics_line(out):
    lines = (out / "metrics.jsonl").read_text().splitlines()
    (out / "metrics.jsonl").write_text("".join(l + "\n" for l in lines[:-1]) + lines[-1][:len(lines[-1]) // 2])


DAMAGE = {  # name: (damage, the step the rerun resumes from)
    # ckpt-12 fails its checksum, ckpt-8 lost its data shard: two fallbacks
    "checksum, missing shard": (lambda out: (flip_bytes(out / "ckpt" / "ckpt-12.data-00000-of-00001"),
                                             (out / "ckpt" / "ckpt-8.data-00000-of-00001").unlink()), 4),
    # a garbage `checkpoint` state file, and step 12's line cut by a kill before ckpt-12 was written
    "state file, cut metrics line": (lambda out: ((out / "ckpt" / "checkpoint").write_bytes(b"\x00garbage{{"),
                                                  drop_ckpt_12(out), cut_last_metrics_line(out)), 8),
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_state_falls_back_to_an_intact_checkpoint(reference, tmp_path, damage):
    out = unfinished_copy(reference, tmp_path)
    damage_fn, resumed = DAMAGE[damage]
    damage_fn(out)
    assert cli(argv(out)) == 0
    assert json.loads((out / "summary.json").read_text())["resumed_from_step"] == resumed
    assert pretrain_outcome(out) == pretrain_outcome(reference)
    assert leftovers(out) == []


def test_all_checkpoints_damaged_is_one_line_naming_the_file(reference, tmp_path, capsys):
    out = unfinished_copy(reference, tmp_path)
    for index in (out / "ckpt").glob("ckpt-*.index"):
        index.write_bytes(b"not a checkpoint index")
    assert cli(argv(out)) == 2
    err = one_line_error(capsys)
    assert f"{out / 'ckpt' / 'ckpt-12'} is damaged" in err and "pass --overwrite" in err


@pytest.mark.slow
def test_full_disk_while_checkpointing_is_one_line_and_keeps_earlier_checkpoints(
        reference, tmp_path, capsys, monkeypatch):
    import tensorflow as tf
    from tensorflow.python.ops import gen_io_ops

    out = unfinished_copy(reference, tmp_path)
    drop_ckpt_12(out)
    before = {f.name: f.read_bytes() for f in (out / "ckpt").glob("ckpt-[48].*")}
    merge = gen_io_ops.merge_v2_checkpoints

    def no_space(*args, **kwargs):  # the shards are in ckpt-12_temp/ when the disk fills up
        assert list((out / "ckpt").glob("ckpt-12_temp*"))
        raise tf.errors.ResourceExhaustedError(None, None, "ckpt-12_temp/part-00000; No space left on device")

    monkeypatch.setattr(gen_io_ops, "merge_v2_checkpoints", no_space)
    assert cli(argv(out)) == 2
    err = one_line_error(capsys)
    assert "could not write checkpoint" in err and "No space left on device" in err
    assert {f.name: f.read_bytes() for f in (out / "ckpt").glob("ckpt-[48].*")} == before
    assert not list((out / "ckpt").glob("ckpt-12*")) and leftovers(out) == []
    monkeypatch.setattr(gen_io_ops, "merge_v2_checkpoints", merge)  # space freed: the rerun resumes
    assert cli(argv(out)) == 0
    assert pretrain_outcome(out) == pretrain_outcome(reference)


# ------------------------------------------------------------------------------------------
# reruns with another config


def test_rerun_with_another_config_is_refused_even_without_summary(reference, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    summary = (out / "summary.json").read_text()
    for _ in range(2):
        assert cli(argv(out, **{"model.num_layers": 2})) == 2
        err = one_line_error(capsys)
        assert "another config (model.num_layers: 1 -> 2)" in err and "use a new --out or pass --overwrite" in err
        if (out / "summary.json").exists():
            assert (out / "summary.json").read_text() == summary
            (out / "summary.json").unlink()  # the second time: an unfinished run, still refused


@pytest.mark.slow
def test_overwrite_clears_a_pretraining_folder_only(reference, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    (out / "notes.txt").write_text("mine")
    assert cli([*argv(out, **{"pretrain.num_steps": 4}), "--overwrite"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["resumed_from_step"] == 0
    assert sorted(p.name for p in (out / "ckpt").glob("*.index")) == ["ckpt-4.index"]
    assert (out / "notes.txt").read_text() == "mine"  # not ours: kept
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert cli([*argv(other), "--overwrite"]) == 2
    assert "does not look like a bertbench pretraining folder" in one_line_error(capsys)
    assert (other / "notes.txt").read_text() == "mine"


# ------------------------------------------------------------------------------------------
# the policy alone, on a stand-in for tf.train.Checkpoint


class FakeCheckpoint:
    """Writes ckpt-N.index / .data files as tf.train.Checkpoint.write does; `fail` raises instead."""

    save_counter = None

    def __init__(self, fail=None):
        self.fail = fail

    def write(self, prefix):
        if self.fail is not None:
            Path(prefix + "_temp").mkdir()
            (Path(prefix + "_temp") / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"half")
            raise self.fail
        Path(prefix + ".index").write_bytes(b"i")
        Path(prefix + ".data-00000-of-00001").write_bytes(b"d")
        return prefix


def test_retention_keeps_the_newest_good_checkpoint_until_the_next_is_confirmed(tmp_path):
    policy = CheckpointPolicy(FakeCheckpoint(), tmp_path / "ckpt", keep=1, variables=[])
    for step in (1, 2, 3):
        policy.save(checkpoint_number=step)
    assert policy.steps() == [2, 3]  # keep=1, but ckpt-3 is unconfirmed: ckpt-2 stays
    err = policy.non_finite(float("nan"), 4, tmp_path, 1e-3)  # the loss of step 4 condemns ckpt-3
    assert policy.steps() == [2] and f"Last good checkpoint: {tmp_path / 'ckpt' / 'ckpt-2'}." in str(err)
    assert "--set pretrain.learning_rate=0.0001" in str(err)
    assert (tmp_path / "ckpt" / "checkpoint").read_text() == ('model_checkpoint_path: "ckpt-2"\n'
                                                              'all_model_checkpoint_paths: "ckpt-2"\n')
    policy = CheckpointPolicy(FakeCheckpoint(), tmp_path / "ckpt3", keep=3, variables=[])
    for step in range(1, 6):
        policy.save(checkpoint_number=step)
    assert policy.steps() == [3, 4, 5]


def test_a_failed_write_removes_its_temp_folder_and_keeps_the_others(tmp_path):
    import errno

    policy = CheckpointPolicy(FakeCheckpoint(), tmp_path, keep=3, variables=[])
    policy.save(checkpoint_number=1)
    policy.ckpt = FakeCheckpoint(fail=OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(BertbenchError, match=r"could not write checkpoint .*ckpt-2 \(OSError: .*No space left "
                                             r"on device\); the earlier checkpoints are intact \(latest: .*ckpt-1\)"):
        policy.save(checkpoint_number=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index"]
    (tmp_path / "ckpt-7_temp").mkdir()  # a write killed midway: gone when the next run starts
    CheckpointPolicy(FakeCheckpoint(), tmp_path, keep=3, variables=[])
    assert not (tmp_path / "ckpt-7_temp").exists()


def test_history_drops_a_cut_last_line_only(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 4}\n{"step": 8}\n{"step": 1')
    assert read_history(path) == [{"step": 4}, {"step": 8}]
    path.write_text('{"step": 4}\n{"ste\n{"step": 8}\n')
    with pytest.raises(BertbenchError, match="metrics.jsonl line 2 is not JSON"):
        read_history(path)


def test_a_failed_encoder_rename_keeps_the_previous_encoder(tmp_path, monkeypatch):
    from bertbench.model import checkpoint

    (tmp_path / "encoder").mkdir()
    (tmp_path / "encoder" / "w").write_text("old")
    (tmp_path / "new").mkdir()
    real = os.replace

    def failing(src, dst):
        if Path(src).name == "new":
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", failing)
    with pytest.raises(OSError, match="No space left"):
        checkpoint._replace_dir(tmp_path / "new", tmp_path / "encoder")
    assert (tmp_path / "encoder" / "w").read_text() == "old"


def test_a_run_that_stopped_before_any_result_takes_another_config(tmp_path):
    from bertbench.config import PretrainConfig, model_preset
    from bertbench.pretraining.checkpoints import check_run_config, store_run_config

    tiny, cfg = model_preset("tiny"), PretrainConfig(num_steps=10, warmup_steps=1)
    store_run_config(tmp_path, check_run_config(tmp_path, tiny, cfg))  # then, say, the corpus was refused
    assert check_run_config(tmp_path, tiny, cfg) is None
    other = PretrainConfig(num_steps=20, warmup_steps=1)
    assert check_run_config(tmp_path, tiny, other)["config"]["pretrain.num_steps"] == 20  # nothing computed yet
    (tmp_path / "metrics.jsonl").write_text('{"step": 5}\n')
    with pytest.raises(BertbenchError, match=r"another config \(pretrain.num_steps: 10 -> 20\); use a new --out"):
        check_run_config(tmp_path, tiny, other)
