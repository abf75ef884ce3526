"""Precision per device (bertbench.model.precision): what "auto" picks where, the ci scale pinned to
float32, and the mixed_float16 code path on a CPU (dynamic loss scaling active, finite gradients, no NaN)."""

import argparse
import math

import pytest

from bertbench.commands.pretrain import configs
from bertbench.config import PretrainConfig, model_preset
from bertbench.errors import ConfigError
from bertbench.experiments.schema import load_scales
from bertbench.model.precision import choose_precision, cpu_flags, resolve_precision

TINY = model_preset("tiny", num_layers=1, hidden_dim=32, num_heads=2, intermediate_dim=64)


@pytest.fixture(autouse=True)
def shared_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("BERTBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "bertbench-cache"))


def small_cfg(**overrides):
    fields = dict(num_steps=10, warmup_steps=2, batch_size=8, max_seq_length=32, log_every=5,
                  checkpoint_every=10, heldout_fraction=0.05, learning_rate=1e-3)
    return PretrainConfig(**{**fields, **overrides})


@pytest.mark.parametrize("tpu, gpus, flags, expected", [
    (True, [], set(), "mixed_bfloat16"),  # TPUs compute in bf16
    (False, [(8, 0)], set(), "mixed_bfloat16"),  # A100 and later
    (False, [(9, 0), (8, 6)], set(), "mixed_bfloat16"),
    (False, [(7, 0)], {"avx512_bf16"}, "mixed_float16"),  # V100: fp16 with loss scaling; the GPU decides
    (False, [(8, 0), (7, 5)], set(), "mixed_float16"),  # one old GPU: all in fp16
    (False, [], {"avx2", "avx512_bf16"}, "mixed_bfloat16"),
    (False, [], {"amx_bf16"}, "mixed_bfloat16"),
    (False, [], {"avx2", "avx512f"}, "float32"),
    (False, [], set(), "float32"),
])
def test_auto_picks_per_device(tpu, gpus, flags, expected):
    assert choose_precision(tpu, gpus, flags) == expected


def test_cpu_flags_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: x\nflags\t\t: fpu avx2 avx512_bf16 amx_tile\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"fpu", "avx2", "avx512_bf16", "amx_tile"}
    assert cpu_flags(tmp_path / "missing") == set()


def test_explicit_precisions_are_kept_and_others_refused():
    for name in ("float32", "mixed_bfloat16", "mixed_float16"):
        assert resolve_precision(name) == name
    assert PretrainConfig().precision == "auto"
    with pytest.raises(ConfigError, match="pretrain.precision"):
        PretrainConfig(precision="fp16")


def test_auto_on_this_machine_follows_its_cpu_flags():
    expected = "mixed_bfloat16" if {"avx512_bf16", "amx_bf16"} & cpu_flags() else "float32"
    assert resolve_precision("auto") == expected  # (no GPU or TPU in the test environment)


def test_ci_scale_is_pinned_to_float32():
    """A regression baseline must give the same numbers on every machine: not "auto"."""
    assert load_scales()["ci"].set["pretrain.precision"] == "float32"
    args = argparse.Namespace(model=None, objective=None, steps=None, corpus=None, vocab=None, out="x",
                              strategy="default", config=None, overrides=[], scale="ci", data_dir=None, quiet=True)
    assert configs(args)[1].precision == "float32"


@pytest.mark.slow
def test_mixed_float16_scales_the_loss_and_skips_overflowing_steps():
    """The Trainer wraps AdamW in a LossScaleOptimizer under mixed_float16: the loss is multiplied by
    the dynamic scale; an overflowing step (scale 2^40: fp16 gradients become inf) is skipped and
    halves the scale; ordinary steps move the weights with finite gradients and losses."""
    import keras
    import numpy as np

    from bertbench.model.strategy import get_strategy
    from bertbench.pretraining.dataset import pretraining_input, train_dataset
    from bertbench.pretraining.loop import Trainer, resolve_model_config
    from bertbench.text.tokenizer import load_tokenizer

    cfg = small_cfg(precision="mixed_float16")
    tokenizer = load_tokenizer(cfg.vocab, cfg.lowercase)
    corpus, cfg = pretraining_input(cfg, tokenizer)
    model_cfg = resolve_model_config(TINY, cfg, tokenizer.vocabulary_size)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        trainer = Trainer(model_cfg, cfg, get_strategy("default"))
        batches = iter(train_dataset(corpus, cfg, 32, 8))
        trainer.build(next(batches))
        optimizer = trainer.optimizer
        assert isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)
        assert trainer.encoder.compute_dtype == "float16"
        optimizer.dynamic_scale.assign(2.0**40)
        before = [np.array(v) for v in trainer.model.trainable_variables]
        trainer.train_step(next(batches))
        assert float(optimizer.dynamic_scale) == 2.0**39  # overflow: halved, step skipped
        assert all((np.array(v) == b).all() for v, b in zip(trainer.model.trainable_variables, before))
        optimizer.dynamic_scale.assign(2.0**10)
        losses = [trainer.train_step(next(batches)) for _ in range(5)]
    finally:
        keras.config.set_dtype_policy(previous)
    assert float(optimizer.dynamic_scale) == 2.0**10  # no overflow at this scale
    assert all(math.isfinite(s["lm_loss_sum"]) and math.isfinite(s.get("nsp_loss_sum", 0.0)) for s in losses)
    moved = [not (np.array(v) == b).all() for v, b in zip(trainer.model.trainable_variables, before)]
    assert sum(moved) > len(moved) // 2
    assert all(np.isfinite(np.array(v)).all() for v in trainer.model.trainable_variables)


@pytest.mark.slow
def test_mixed_float16_pretraining_run_records_its_precision(tmp_path):
    from bertbench.pretraining.loop import pretrain

    summary = pretrain(TINY, small_cfg(precision="mixed_float16"), tmp_path / "fp16", verbose=False)
    assert summary["precision"] == "mixed_float16" and summary["pretrain"]["precision"] == "mixed_float16"
    assert all(math.isfinite(v) for v in summary["heldout"].values())
    auto = pretrain(TINY, small_cfg(num_steps=2, log_every=1), tmp_path / "auto", verbose=False)
    assert auto["pretrain"]["precision"] == "auto" and auto["precision"] == resolve_precision("auto")


@pytest.mark.slow
def test_mixed_float16_resume_counts_skipped_steps(tmp_path, monkeypatch):
    """Overflowing steps are skipped without advancing optimizer.iterations; a resume must still start
    at the checkpoint's step (the data stream is there), not at the optimizer's count."""
    import json
    import shutil

    import keras

    from bertbench.pretraining import loop
    from bertbench.pretraining.loop import pretrain

    # scale 2^40: every step of this short run overflows and is skipped
    monkeypatch.setattr(loop, "wrap_optimizer", lambda optimizer, name: keras.mixed_precision.LossScaleOptimizer(
        optimizer, initial_scale=2.0**40))
    cfg = small_cfg(precision="mixed_float16", num_steps=10, checkpoint_every=5, keep_checkpoints=3)
    straight = pretrain(TINY, cfg, tmp_path / "run", verbose=False)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text()
    for name in ("summary.json", "encoder", "ckpt/ckpt-10.index", "ckpt/ckpt-10.data-00000-of-00001"):
        target = tmp_path / "run" / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    resumed = pretrain(TINY, cfg, tmp_path / "run", verbose=False)
    assert straight["steps"] == 10 and resumed["resumed_from_step"] == 5 and resumed["steps"] == 10
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == lines
    assert json.dumps(resumed["heldout"]) == json.dumps(straight["heldout"])


@pytest.mark.slow
def test_a_resumed_run_keeps_the_precision_it_began_with(tmp_path, monkeypatch, capsys):
    """An "auto" run paused (a staged sweep) or cut off on a CPU with avx512_bf16 and resumed on one
    without trains on in bf16, the precision it began with, and ends exactly where an uninterrupted bf16
    run ends; the resume says so in one line. (Seen here: the machine under a staged run changed, and
    "auto" resolved anew would have finished a bf16 run in float32 under the same run id.)"""
    import dataclasses
    import json

    from bertbench.errors import BertbenchError
    from bertbench.pretraining import loop
    from bertbench.pretraining.checkpoints import run_precision

    cfg = small_cfg(precision="auto", checkpoint_every=5)
    straight = loop.pretrain(TINY, dataclasses.replace(cfg, precision="mixed_bfloat16"), tmp_path / "straight",
                             verbose=False)
    monkeypatch.setattr(loop, "resolve_precision", lambda name, strategy=None: "mixed_bfloat16")
    paused = loop.pretrain(TINY, cfg, tmp_path / "run", verbose=False, stop_at=5)
    assert paused["status"] == "paused" and paused["precision"] == "mixed_bfloat16"
    stored = json.loads((tmp_path / "run" / "run_config.json").read_text())
    assert stored["precision"] == "mixed_bfloat16" and stored["config"]["pretrain.precision"] == "auto"
    monkeypatch.setattr(loop, "resolve_precision", lambda name, strategy=None: "float32")
    capsys.readouterr()
    resumed = loop.pretrain(TINY, cfg, tmp_path / "run", verbose=False)
    err = capsys.readouterr().err
    assert "resuming in mixed_bfloat16, the precision this run began with" in err and "float32 on this machine" in err
    assert resumed["precision"] == "mixed_bfloat16" and resumed["resumed_from_step"] == 5
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == (tmp_path / "straight" / "metrics.jsonl").read_text()
    assert json.dumps(resumed["heldout"]) == json.dumps(straight["heldout"])
    # The other workers of a multi-worker run keep it in silence: the chief alone says so.
    assert run_precision(tmp_path / "run", None, "float32", "auto", say=False)[0] == "mixed_bfloat16"
    assert capsys.readouterr().err == ""
    # A new run in a fresh folder takes this machine's "auto"; a damaged stored precision is one line.
    assert loop.pretrain(TINY, small_cfg(precision="auto", num_steps=2, log_every=1), tmp_path / "new",
                         verbose=False)["precision"] == "float32"
    (tmp_path / "run" / "summary.json").unlink()
    (tmp_path / "run" / "run_config.json").write_text(json.dumps({**stored, "precision": "bf16"}))
    with pytest.raises(BertbenchError, match="precision 'bf16' is not one of float32, mixed_bfloat16, mixed_float16"):
        loop.pretrain(TINY, cfg, tmp_path / "run", verbose=False)


def test_pretrain_lets_only_the_chief_say_a_kept_precision(tmp_path, monkeypatch):
    """`pretrain` passes its worker role to run_precision's `say` (the line above is the chief's alone);
    stopped right there, before any model is built."""
    from bertbench.pretraining import loop
    from bertbench.pretraining.workers import Role

    class Stop(Exception):
        pass

    said = []

    def spy(*args, say=True):
        said.append(say)
        raise Stop

    monkeypatch.setattr(loop, "run_precision", spy)
    for role in (Role(), Role(is_chief=False, index=1, count=2)):
        monkeypatch.setattr(loop, "worker_role", lambda strategy, role=role: role)
        with pytest.raises(Stop):
            loop.pretrain(TINY, small_cfg(), tmp_path / "run", verbose=False)
    assert said == [True, False]
    assert not (tmp_path / "run").exists()
