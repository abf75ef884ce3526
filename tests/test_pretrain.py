"""The pretraining loop: it learns, it is deterministic, it resumes, it stops on non-finite losses,
and MirroredStrategy over two logical CPUs follows the one-device loss curve."""

import argparse
import json
import math
import random
import subprocess
import sys
import textwrap
import warnings

import pytest
from helpers import real_documents

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
                  checkpoint_every=10, heldout_fraction=0.05, learning_rate=1e-3,
                  precision="float32")  # "auto" would pick bf16 on CPUs that have it: same test everywhere
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
    values = dict(model=None, objective=None, steps=None, corpus=None, vocab=None, out="x", strategy="default",
                  config=None, overrides=[], scale=None, data_dir=None, quiet=False)
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
    assert a["heldout"] == b["heldout"]  # the held-out evaluation at an export leaves training untouched
    assert list(a["heldout_at_exports"]) == ["10"] and b["heldout_at_exports"] == {}
    assert a["heldout_at_exports"]["10"].keys() == a["heldout"].keys() != set()
    assert a["heldout_at_exports"]["10"] != a["heldout"]  # measured at step 10, not at the end
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
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = pretrain(TINY, small_cfg(objective="ltr", num_steps=60, warmup_steps=6), tmp_path / "run",
                           verbose=False)
    # the pooler has no loss without NSP: its weights are left out, not warned about at every trace
    assert not [w for w in caught if "Gradients do not exist" in str(w.message)]
    assert "nsp_loss" not in summary["heldout"]
    assert summary["model"]["attention"] == "causal" and TINY.attention == "bidirectional"  # as trained
    assert summary["heldout"]["lm_loss"] < summary["initial_heldout"]["lm_loss"] - 0.5  # measured: 9.01 -> 8.27


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path):
    cfg = small_cfg(learning_rate=1e30, warmup_steps=0, clip_norm=0.0, num_steps=40, checkpoint_every=1)
    with pytest.raises(BertbenchError, match="non-finite loss .* at step \\d+; stopped. Last good checkpoint"):
        pretrain(TINY, cfg, tmp_path / "run", verbose=False)
    assert not (tmp_path / "run" / "summary.json").exists()


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    from bertbench.model.strategy import split_cpu
    split_cpu(2)
    from bertbench.config import PretrainConfig, model_preset
    from bertbench.pretraining.loop import pretrain
    model = model_preset("tiny", num_layers=1, hidden_dim=32, num_heads=2, dropout=0.0)
    cfg = PretrainConfig(num_steps=20, warmup_steps=2, batch_size=8, max_seq_length=32, log_every=5,
                         checkpoint_every=20, heldout_fraction=0.05, learning_rate=1e-3,
                         precision="float32")
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


# ---- `pretrain --scale`, held-out documents, TFRecord input ------------------------------------


def test_scale_ci_gives_the_settings_that_learn_in_minutes(tmp_path):
    model_cfg, cfg = configs(pretrain_args(model=None, scale="ci"))
    assert model_cfg == model_preset("tiny")
    assert (cfg.batch_size, cfg.learning_rate, cfg.max_seq_length, cfg.num_steps, cfg.heldout_fraction) == \
        (32, 1e-3, 64, 600, 0.05)
    _, cfg = configs(pretrain_args(model=None, scale="ci", steps=20, overrides=["pretrain.batch_size=8"]))
    assert (cfg.num_steps, cfg.warmup_steps, cfg.batch_size, cfg.learning_rate) == (20, 2, 8, 1e-3)
    model_cfg, _ = configs(pretrain_args(model="mini", scale="ci"))
    assert model_cfg.hidden_dim == 256  # --model wins over the scale's preset
    with pytest.raises(BertbenchError, match="scale 'small' runs on real data: pass --data-dir"):
        configs(pretrain_args(model=None, scale="small"))
    _, cfg = configs(pretrain_args(model=None, scale="small", data_dir=str(tmp_path)))
    assert cfg.corpus == f"{tmp_path}/corpus/enwiki_wikiextractor_2015"
    with pytest.raises(BertbenchError, match="unknown scale 'cj'"):
        configs(pretrain_args(model=None, scale="cj"))


@pytest.mark.slow
def test_one_heldout_document_with_nsp_names_the_fraction(tmp_path, capsys):
    """The sample's 91 documents x 0.01 leave 1 held-out document, too few for NotNext pairs: the
    message names pretrain.heldout_fraction (it blamed the corpus), before any model is built."""
    from bertbench.cli import main

    assert main(["pretrain", "--steps", "2", "--out", str(tmp_path / "run")]) == BertbenchError.exit_code
    err = capsys.readouterr().err.strip()
    assert "pretrain.heldout_fraction=0.01" in err and "--set pretrain.heldout_fraction=0.05" in err
    assert "\n" not in err and not (tmp_path / "run" / "ckpt").exists()


def _write_original_records(path, rows, seq, predictions, drop=()):
    """TFRecords as google-research/bert's create_pretraining_data.py writes them
    (write_instance_to_example_files: int64 lists, float masked_lm_weights, next_sentence_labels [1])."""
    import tensorflow as tf

    ints = lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=v))  # noqa: E731
    with tf.io.TFRecordWriter(str(path)) as writer:
        for ids, positions, label in rows:
            n = len(ids)
            masked = [ids[p] for p in positions]
            features = {"input_ids": ints(ids + [0] * (seq - n)), "input_mask": ints([1] * n + [0] * (seq - n)),
                        "segment_ids": ints([0] * seq),
                        "masked_lm_positions": ints(positions + [0] * (predictions - len(positions))),
                        "masked_lm_ids": ints(masked + [0] * (predictions - len(positions))),
                        "masked_lm_weights": tf.train.Feature(float_list=tf.train.FloatList(
                            value=[1.0] * len(positions) + [0.0] * (predictions - len(positions)))),
                        "next_sentence_labels": ints([label])}
            for name in drop:
                del features[name]
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())


def _original_rows(count, seq=24, seed=0):
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        n = rng.randint(8, seq)
        ids = [2] + [rng.randint(5, 999) for _ in range(n - 2)] + [3]
        rows.append((ids, sorted(rng.sample(range(1, n - 1), 3)), rng.randint(0, 1)))
    return rows


PRETRAIN_TINY = ["--model", "tiny", "--set", "model.num_layers=1", "--set", "model.hidden_dim=32",
                 "--set", "pretrain.batch_size=8", "--set", "pretrain.log_every=5", "--quiet"]


@pytest.mark.slow
def test_pretrain_trains_from_pretrain_data_tfrecords_found_by_content(tmp_path):
    """pretrain-data's shards, renamed without a suffix, are read as TFRecords (not as text): the run
    takes their sequence length and reports the records it trained from."""
    from bertbench.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join("\n".join(doc) for doc in real_documents(4)), encoding="utf-8")
    data = tmp_path / "data"
    assert main(["pretrain-data", "--corpus", str(corpus), "--out", str(data), "--max-seq-length", "32",
                 "--dupe-factor", "1", "--num-shards", "2"]) == 0
    written = json.loads((data / "summary.json").read_text())
    for i, shard in enumerate(written["shards"]):
        (data / shard).rename(data / f"part-{i}")
    assert main(["pretrain", "--corpus", str(data), "--steps", "10", "--out", str(tmp_path / "run"),
                 *PRETRAIN_TINY]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["corpus"]["format"] == "tfrecord" and summary["corpus"]["records"] == written["instances"]
    assert summary["pretrain"]["max_seq_length"] == 32 and summary["steps"] == 10
    assert summary["heldout"] == {} and summary["unigram_baseline"] == {}
    assert all(math.isfinite(line["lm_loss"]) and line["nsp_loss"] > 0 for line in history(tmp_path / "run"))
    assert main(["pretrain-data", "--corpus", str(data), "--out", str(tmp_path / "again")]) == 2  # not text


@pytest.mark.slow
def test_pretrain_trains_from_original_google_research_records(tmp_path):
    """Records of the original layout with other lengths (seq 24, 5 predictions) and a file name of
    its own: the run follows the records; mlm and ltr read them too (ltr unmasks them)."""
    from bertbench.cli import main

    _write_original_records(tmp_path / "tf_examples.tfrecord", _original_rows(40), seq=24, predictions=5)
    for objective in ("mlm+nsp", "ltr"):
        out = tmp_path / objective.replace("+", "_")
        assert main(["pretrain", "--corpus", str(tmp_path / "tf_examples.tfrecord"), "--objective", objective,
                     "--steps", "5", "--out", str(out), *PRETRAIN_TINY]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert (summary["corpus"]["records"], summary["corpus"]["seq_length"]) == (40, 24)
        assert summary["pretrain"]["max_predictions_per_seq"] == 5


def test_files_that_are_not_what_they_claim_are_refused(tmp_path, capsys):
    """One line and exit 2, before a model is built: text named .tfrecord, binary junk, TFRecords mixed
    with text, a corrupt record, a feature the objective needs, ids outside the vocabulary."""
    from bertbench.cli import main

    def refused(corpus, *extra):
        code = main(["pretrain", "--corpus", str(corpus), "--steps", "2", "--out", str(tmp_path / "run"),
                     *extra, *PRETRAIN_TINY])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "\n" not in err and not (tmp_path / "run").exists(), err  # no --out left behind
        return err

    fake = tmp_path / "fake" / "shard-00000.tfrecord"
    fake.parent.mkdir()
    fake.write_text("just some text\n")
    assert "named like a TFRecord file" in refused(fake.parent)
    junk = tmp_path / "junk" / "blob.bin"
    junk.parent.mkdir()
    junk.write_bytes(bytes(range(256)) * 4)
    assert "neither text nor a TFRecord" in refused(junk.parent)
    good = tmp_path / "mixed" / "a.tfrecord"
    good.parent.mkdir()
    _write_original_records(good, _original_rows(4), seq=24, predictions=5)
    (good.parent / "notes.txt").write_text("a text file\n")
    assert "not both" in refused(good.parent)
    corrupt = tmp_path / "corrupt.tfrecord"
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    assert "unreadable" in refused(corrupt)
    no_nsp = tmp_path / "no_nsp.tfrecord"
    _write_original_records(no_nsp, _original_rows(4), seq=24, predictions=5, drop=("next_sentence_labels",))
    assert "no int64_list feature 'next_sentence_labels'" in refused(no_nsp)
    assert "outside the 200-token vocabulary" in refused(good, "--vocab", str(_small_vocab(tmp_path)))


def _small_vocab(tmp_path):
    path = tmp_path / "vocab200.txt"
    path.write_text("\n".join(load_tokenizer().vocab[:200]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_fine_tuning_starts_from_the_trained_encoder(tmp_path, precision):
    """The exports fine-tuning restores (Keras save/load_weights, by layer name) hold the trained encoder's
    weights as the training checkpoints (tf.train.Checkpoint, by object graph) have them, at a mid-run
    export and at the end, in both precisions pretraining uses. Two independent paths: a skipped, swapped
    or stale layer in an export would show here, and a flat 'pretraining vs none' curve could not come
    from the hand-over itself."""
    import keras
    import numpy as np
    import tensorflow as tf

    from bertbench.finetuning.init import prepare_init, restore_encoder
    from bertbench.model.strategy import get_strategy
    from bertbench.pretraining.loop import Trainer

    cfg = small_cfg(precision=precision)
    summary = pretrain(TINY, cfg, tmp_path / "run", verbose=False, export_at=(10,))
    assert summary["precision"] == precision
    model_cfg = resolve_model_config(TINY, cfg, load_tokenizer().vocabulary_size)
    for step, export in ((10, "encoder_step10"), (20, "encoder")):
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(precision)
        try:
            trainer = Trainer(model_cfg, cfg, get_strategy("default"))
            untrained = [v.numpy().copy() for v in trainer.encoder.weights]
            ckpt = tf.train.Checkpoint(model=trainer.model)
            ckpt.restore(str(tmp_path / "run" / "ckpt" / f"ckpt-{step}")).expect_partial()
            trained = {v.path: v.numpy() for v in trainer.encoder.weights}
        finally:
            keras.config.set_dtype_policy(previous)
        assert all((a != b).any() for a, b in zip(untrained, trained.values(), strict=True))  # restored, all of it
        setup = prepare_init(str(tmp_path / "run" / export))
        # the fine-tuning record's init says what the encoder was pretrained as, precision included
        assert setup.record["pretraining"] == {"objective": cfg.objective, "steps": step, "precision": precision}
        restored = restore_encoder(setup, dropout=0.1, seed=0)
        assert sorted(v.path for v in restored.weights) == sorted(trained)
        for v in restored.weights:
            np.testing.assert_array_equal(v.numpy(), trained[v.path], err_msg=f"{export}: {v.path}")
