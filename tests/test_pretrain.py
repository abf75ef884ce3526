"""The pretraining loop: it learns, it is deterministic, it resumes, it stops on non-finite losses,
and MirroredStrategy over two logical CPUs follows the one-device loss curve."""

import argparse
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from bertbench.commands.pretrain import configs
from bertbench.config import PretrainConfig, model_preset, to_dict
from bertbench.errors import BertbenchError, ConfigError
from bertbench.model.checkpoint import load_encoder
from bertbench.pretraining.accounting import estimate_flops, phase_tokens, phases, pretrain_tokens
from bertbench.pretraining.loop import pretrain, resolve_model_config
from bertbench.text.tokenizer import load_tokenizer

TINY = model_preset("tiny", num_layers=1, hidden_dim=32, num_heads=2)


@pytest.fixture(autouse=True)
def shared_cache(tmp_path_factory, monkeypatch):
    """Tokenize the sample corpus once for the whole module."""
    monkeypatch.setenv("BERTBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "bertbench-cache"))


def small_cfg(**overrides):
    fields = dict(num_steps=20, warmup_steps=2, batch_size=8, max_seq_length=32, log_every=5,
                  checkpoint_every=10, heldout_fraction=0.05, learning_rate=1e-3)
    fields.update(overrides)
    return PretrainConfig(**fields)


def history(out_dir):
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def test_phases_and_flops():
    assert phases(PretrainConfig(num_steps=1000, warmup_steps=10)) == [(128, 0, 1000)]
    assert phases(PretrainConfig(num_steps=1000, warmup_steps=10, phase2_fraction=0.1)) == \
        [(128, 0, 900), (512, 900, 1000)]
    base = model_preset("base")
    # 6 * N * tokens is the usual rule of thumb; our count adds attention and the MLM head.
    cfg = PretrainConfig(num_steps=1, warmup_steps=0, batch_size=1)
    non_embedding = 12 * (4 * 768 * 768 + 2 * 768 * 3072)
    assert estimate_flops(base, cfg) > 6 * non_embedding * 128
    assert estimate_flops(base, cfg) < 1.5 * 6 * non_embedding * 128


def test_token_counts_follow_the_phases():
    plan = phases(PretrainConfig(num_steps=100, warmup_steps=10, max_seq_length=64, phase2_max_seq_length=128,
                                 phase2_fraction=0.1))
    assert phase_tokens(plan, 2, 0) == 90 * 2 * 64 + 10 * 2 * 128
    assert phase_tokens(plan, 2, 95) == 5 * 2 * 128  # resumed inside phase 2
    assert pretrain_tokens(PretrainConfig(num_steps=100, warmup_steps=10, batch_size=2, max_seq_length=64,
                                          phase2_max_seq_length=128, phase2_fraction=0.1)) == 90 * 2 * 64 + 10 * 2 * 128


def test_ltr_gets_causal_attention():
    resolved = resolve_model_config(TINY, PretrainConfig(objective="ltr"), 100)
    assert resolved.attention == "causal" and resolved.vocabulary_size == 100
    assert resolve_model_config(TINY, PretrainConfig(), 100).attention == "bidirectional"


def pretrain_args(**fields):
    values = dict(model="tiny", objective=None, steps=None, corpus=None, vocab=None, out="x", strategy="default",
                  config=None, overrides=[])
    return argparse.Namespace(**{**values, **fields})


def test_command_configs_preset_file_flags_and_overrides(tmp_path):
    model_cfg, cfg = configs(pretrain_args())
    assert model_cfg == model_preset("tiny") and cfg == PretrainConfig()
    _, cfg = configs(pretrain_args(steps=500, objective="mlm"))
    assert (cfg.num_steps, cfg.warmup_steps, cfg.objective) == (500, 50, "mlm")  # --steps lowers the warmup
    toml = tmp_path / "c.toml"
    toml.write_text('[model]\npreset = "mini"\n[pretrain]\nobjective = "ltr"\nwarmup_steps = 7\n')
    model_cfg, cfg = configs(pretrain_args(steps=500, config=str(toml), overrides=["model.dropout=0"]))
    assert (model_cfg.hidden_dim, model_cfg.dropout) == (256, 0.0)
    assert (cfg.objective, cfg.num_steps, cfg.warmup_steps) == ("ltr", 500, 7)  # the file's warmup wins
    with pytest.raises(ConfigError, match="pretrain.learning_rat"):
        configs(pretrain_args(overrides=["pretrain.learning_rat=1"]))


@pytest.mark.slow
def test_same_seed_same_loss_curve(tmp_path):
    a = pretrain(TINY, small_cfg(), tmp_path / "a", verbose=False, export_at=(10,))
    b = pretrain(TINY, small_cfg(), tmp_path / "b", verbose=False)
    pretrain(TINY, small_cfg(seed=1), tmp_path / "c", verbose=False)
    assert history(tmp_path / "a") == history(tmp_path / "b")
    assert a["heldout"] == b["heldout"]
    assert history(tmp_path / "a") != history(tmp_path / "c")
    assert (tmp_path / "a" / "encoder" / "encoder.weights.h5").exists()
    # An encoder exported mid-run (App. C.1's checkpoints) loads, and differs from the final one.
    mid, final = load_encoder(tmp_path / "a" / "encoder_step10"), load_encoder(tmp_path / "a" / "encoder")
    assert mid.model_cfg == final.model_cfg
    assert any((x != y).any() for x, y in zip(mid.encoder.get_weights(), final.encoder.get_weights(), strict=True))
    assert pretrain(TINY, small_cfg(), tmp_path / "a", verbose=False) == a  # finished: returns the summary
    # The summary carries the model the run trained (the tokenizer's vocabulary), not the one asked for.
    resolved = resolve_model_config(TINY, small_cfg(), load_tokenizer().vocabulary_size)
    assert a["model"] == to_dict(resolved) == to_dict(final.model_cfg)
    assert a["model"]["vocabulary_size"] != TINY.vocabulary_size


@pytest.mark.slow
def test_learns_beyond_step_zero_and_unigram(tmp_path):
    """A tiny BERT pretrained 300 steps on real Wikipedia text beats both step 0 and a unigram model."""
    cfg = small_cfg(num_steps=300, warmup_steps=30, batch_size=32, max_seq_length=64, checkpoint_every=300,
                    log_every=100, learning_rate=2e-3)
    summary = pretrain(model_preset("tiny"), cfg, tmp_path / "run", verbose=False)
    start, end, unigram = summary["initial_heldout"], summary["heldout"], summary["unigram_baseline"]
    assert end["lm_accuracy"] > start["lm_accuracy"] + 0.05
    assert end["lm_accuracy"] > unigram["accuracy"] + 0.01  # measured: 0.083 vs 0.062
    assert end["lm_perplexity"] < unigram["perplexity"]  # measured: 954 vs 1045


@pytest.mark.slow
def test_ltr_objective_learns(tmp_path):
    summary = pretrain(TINY, small_cfg(objective="ltr", num_steps=60, warmup_steps=6), tmp_path / "run",
                       verbose=False)
    assert "nsp_loss" not in summary["heldout"]
    assert summary["model"]["attention"] == "causal" and TINY.attention == "bidirectional"  # as trained
    assert summary["heldout"]["lm_loss"] < summary["initial_heldout"]["lm_loss"] - 0.5  # measured: 9.01 -> 8.27


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path):
    cfg = small_cfg(learning_rate=1e30, warmup_steps=0, clip_norm=0.0, num_steps=40, checkpoint_every=1)
    with pytest.raises(BertbenchError, match="non-finite loss .* at step \\d+; stopped. Last good checkpoint"):
        pretrain(TINY, cfg, tmp_path / "run", verbose=False)
    assert not (tmp_path / "run" / "summary.json").exists()


RUN_SCRIPT = textwrap.dedent("""
    import sys
    from bertbench.config import PretrainConfig, model_preset
    from bertbench.pretraining.loop import pretrain
    cfg = PretrainConfig(num_steps=60, warmup_steps=6, batch_size=8, max_seq_length=32, log_every=5,
                         checkpoint_every=10, heldout_fraction=0.05, learning_rate=1e-3)
    pretrain(model_preset("tiny", num_layers=1, hidden_dim=32, num_heads=2), cfg, sys.argv[1], verbose=False)
""")


@pytest.mark.slow
def test_resume_after_kill_ends_where_an_uninterrupted_run_would(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    run = lambda out: [sys.executable, "-c", RUN_SCRIPT, str(out)]  # noqa: E731
    proc = subprocess.Popen(run(tmp_path / "killed"), env=env)
    marker = tmp_path / "killed" / "ckpt" / "checkpoint"
    deadline = time.time() + 240
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "summary.json").exists(), "the run finished before it could be killed"
    subprocess.run(run(tmp_path / "killed"), env=env, check=True)
    subprocess.run(run(tmp_path / "straight"), env=env, check=True)
    resumed = json.loads((tmp_path / "killed" / "summary.json").read_text())
    straight = json.loads((tmp_path / "straight" / "summary.json").read_text())
    assert resumed["resumed_from_step"] > 0
    # Same data, same masks and dropout after the restore; float reductions may differ in the last bits.
    for a, b in zip(history(tmp_path / "killed"), history(tmp_path / "straight"), strict=True):
        assert a == pytest.approx(b, rel=1e-4)
    assert resumed["heldout"] == pytest.approx(straight["heldout"], rel=1e-5)


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    from bertbench.model.strategy import split_cpu
    split_cpu(2)
    from bertbench.config import PretrainConfig, model_preset
    from bertbench.pretraining.loop import pretrain
    model = model_preset("tiny", num_layers=1, hidden_dim=32, num_heads=2, dropout=0.0)
    cfg = PretrainConfig(num_steps=20, warmup_steps=2, batch_size=8, max_seq_length=32, log_every=5,
                         checkpoint_every=20, heldout_fraction=0.05, learning_rate=1e-3)
    out = {}
    for strategy in ("default", "mirrored"):
        out[strategy] = pretrain(model, cfg, f"{sys.argv[1]}/{strategy}", strategy=strategy, verbose=False)
    print(json.dumps({k: [v["num_replicas"], v["heldout"]] for k, v in out.items()}))
""")


@pytest.mark.slow
def test_mirrored_two_cpus_follows_one_device(tmp_path):
    proc = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["default"][0] == 1 and result["mirrored"][0] == 2
    one, two = history(tmp_path / "default"), history(tmp_path / "mirrored")
    for a, b in zip(one, two, strict=True):
        assert a["lm_loss"] == pytest.approx(b["lm_loss"], rel=2e-3)
        assert a["nsp_loss"] == pytest.approx(b["nsp_loss"], rel=2e-3)
