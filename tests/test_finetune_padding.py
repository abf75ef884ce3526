"""Dynamic padding and the encoding cache of fine-tuning (bertbench.finetuning.data): batches keep
their rows and order, prediction in length order comes back in the original order, and a tiny
model's logits with and without dynamic padding agree (trained with dropout 0, where the padded shape
draws no random numbers) for the kinds that declare PADDING_INVARIANT."""

import dataclasses

import numpy as np
import pytest

from bertbench.config import FinetuneConfig, ModelConfig
from bertbench.errors import ConfigError
from bertbench.finetuning import data, loop
from bertbench.finetuning.data import PAD_MULTIPLE, Encoded, encode_cached, length_batches, restore_order
from bertbench.finetuning.init import prepare_init
from bertbench.finetuning.kinds import KINDS, kind_of
from bertbench.model.strategy import get_strategy
from bertbench.tasks import get_task
from conftest import TEST_DATA

TINY = ModelConfig(num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32, max_sequence_length=128)
RTOL = 1e-4  # of the largest logit: float rounding of another summation order after a few steps is ~1e-6,
# one real token cut off moves a tiny model's logits by ~1e-3 of it


def fake_encoded(lengths, full, choices=None, seed=0):
    """Right-padded rows of the given real lengths; token ids are random, padding is 0."""
    rng = np.random.default_rng(seed)
    shape = (len(lengths), full) if choices is None else (len(lengths), choices, full)
    positions = np.arange(full)
    real = np.asarray(lengths).reshape((-1,) + (1,) * (len(shape) - 1)) > positions  # [n, (c,) full]
    ids = np.where(real, rng.integers(5, 100, shape), 0).astype(np.int32)
    inputs = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": real.astype(np.int32)}
    return Encoded(inputs, np.arange(len(lengths), dtype=np.int32), {})


def test_prediction_in_length_order_comes_back_in_the_original_order():
    lengths = np.random.default_rng(1).integers(1, 60, 50)  # shuffled lengths in
    encoded = fake_encoded(lengths, 64)
    groups = length_batches(encoded, batch_size=8)
    for rows, inputs in groups:
        cut = inputs["token_ids"].shape[-1]
        assert cut % PAD_MULTIPLE == 0 and cut >= lengths[rows].max()  # no real token is cut
        assert np.array_equal(inputs["token_ids"], encoded.inputs["token_ids"][rows][:, :cut])
    assert sum(len(rows) for rows, _ in groups) == 50 and all(len(rows) <= 8 for rows, _ in groups)
    assert any(g[1]["token_ids"].shape[-1] < 64 for g in groups)  # some batches are shorter
    # A "model": per-row sums [m] and per-token values [m, cut, 2]; original order out.
    sums = [inputs["token_ids"].sum(-1) for _, inputs in groups]
    tokens = [np.stack([inputs["token_ids"]] * 2, -1) for _, inputs in groups]
    rows = [r for r, _ in groups]
    assert np.array_equal(restore_order(rows, sums, 50, 64), encoded.inputs["token_ids"].sum(-1))
    assert np.array_equal(restore_order(rows, tokens, 50, 64), np.stack([encoded.inputs["token_ids"]] * 2, -1))


def test_dynamic_training_batches_keep_their_rows_and_order():
    lengths = np.random.default_rng(2).integers(3, 40, 40)
    encoded = fake_encoded(lengths, 48, choices=3)
    full = data.make_dataset(encoded, 8, training=True, seed=5).take(10)
    cut = data.make_dataset(encoded, 8, training=True, seed=5, padding="dynamic").take(10)
    seen = set()
    for (f_in, f_y), (c_in, c_y) in zip(full, cut, strict=True):
        width = c_in["token_ids"].shape[-1]
        seen.add(width)
        assert np.array_equal(c_y, f_y)  # same rows, same order
        assert width % PAD_MULTIPLE == 0 or width == 48
        assert np.array_equal(c_in["token_ids"], f_in["token_ids"][..., :width])
        assert not np.asarray(f_in["padding_mask"])[..., width:].any()  # only padding was dropped
    assert len(seen) > 1 and max(seen) < 48


def test_bucketed_batches_hold_the_same_rows_in_shorter_batches():
    lengths = np.random.default_rng(3).integers(3, 64, 64)
    encoded = fake_encoded(lengths, 64)
    count = data.BUCKET_BATCHES  # one chunk of the shuffled stream
    full = list(data.make_dataset(encoded, 4, training=True, seed=7).take(count))
    cut = list(data.make_dataset(encoded, 4, training=True, seed=7, padding="bucketed").take(count))
    assert sorted(np.concatenate([y for _, y in cut])) == sorted(np.concatenate([y for _, y in full]))
    widths = [x["token_ids"].shape[-1] for x, _ in cut]
    dynamic = [data.padded_length(lengths[np.asarray(y)].max(), 64) for _, y in full]
    assert sum(widths) < sum(dynamic)  # similar lengths batched together
    for x, y in cut:
        assert np.array_equal(x["token_ids"], encoded.inputs["token_ids"][np.asarray(y)][:, :x["token_ids"].shape[-1]])


def test_the_encoding_cache_keys_on_content(monkeypatch):
    spec, kind = get_task("sst2"), kind_of(get_task("sst2"))
    examples, _ = data.load_split(spec, "dev", None, 20)
    tokenizer = prepare_init(None, TINY, "sample", True).tokenizer
    calls = []
    monkeypatch.setattr(kind, "encode", lambda *a: calls.append(a[3].max_seq_length) or Encoded(
        {"token_ids": np.zeros((1, 1), np.int32)}, np.zeros(1), {}))
    cfg = FinetuneConfig(task="sst2", max_seq_length=32)
    first = encode_cached(kind, spec, examples, tokenizer, cfg)
    assert encode_cached(kind, spec, examples, tokenizer, dataclasses.replace(cfg, seed=3, learning_rate=1e-3)) is first
    encode_cached(kind, spec, examples, tokenizer, dataclasses.replace(cfg, max_seq_length=64))
    encode_cached(kind, spec, examples[1:], tokenizer, cfg)
    assert calls == [32, 64, 32]  # a seed or a rate reuses it; the length or the examples do not


def test_every_kind_says_whether_dynamic_padding_keeps_its_numbers():
    assert {name: m.PADDING_INVARIANT for name, m in KINDS.items()} == {
        "classification": True, "regression": True, "span": False, "tagging": True, "multiple_choice": True}
    assert loop._training_padding("dynamic", KINDS["span"]) == "full"
    with pytest.raises(ConfigError, match="padding='short' is not one of full, dynamic, bucketed"):
        loop._training_padding("short", KINDS["classification"])


CASES = {  # task, data dir, extra settings, train / dev caps
    "classification": ("sst2", None, {}, 64, 48),
    "feature-based tagging": ("conll2003", None, {"feature_layers": "sum_all", "lowercase": False}, 32, 24),
    "multiple choice": ("swag", TEST_DATA / "tasks", {}, 24, 16),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_fine_tuning_with_dynamic_padding_agrees_with_full_padding(tmp_path, case):
    """Same init, same batches, dropout 0: after training, logits at real positions agree within
    RTOL of the largest and the predictions are the same, whichever padding trained and predicted."""
    import keras

    task, data_dir, extra, n_train, n_dev = CASES[case]
    spec, kind = get_task(task), kind_of(get_task(task))
    cfg = FinetuneConfig(task=task, batch_size=8, max_seq_length=64, dropout=0.0, learning_rate=1e-3,
                         max_train_examples=n_train, max_eval_examples=n_dev, **extra)
    setup = prepare_init(None, TINY, "sample", cfg.lowercase)
    train = kind.encode(spec, data.load_split(spec, "train", data_dir, n_train)[0], setup.tokenizer, cfg)
    dev_split = spec.eval_splits[0] if task != "swag" else "train"
    dev = kind.encode(spec, data.load_split(spec, dev_split, data_dir, n_dev)[0], setup.tokenizer, cfg)
    assert min(inputs["token_ids"].shape[-1] for _, inputs in length_batches(dev, 16)) < 64  # something to cut
    logits = {}
    for dynamic in (False, True):
        keras.utils.set_random_seed(0)
        model = loop.build_model(spec, kind, setup, cfg, 4, get_strategy("default"))
        loop._train(model, train, cfg, 4, tmp_path / f"logs{dynamic}", False, "dynamic" if dynamic else "full")
        logits[dynamic] = np.asarray(loop.predict(model, dev, cfg, "predict", False, dynamic))
    full, cut = logits[False], logits[True]
    assert full.shape == cut.shape
    real = (dev.targets != -1) if full.ndim == 3 else np.ones(full.shape[:1], bool)  # tagging: labelled pieces
    np.testing.assert_allclose(cut[real], full[real], rtol=0, atol=RTOL * np.abs(full[real]).max())
    assert np.array_equal(cut[real].argmax(-1), full[real].argmax(-1))


@pytest.mark.slow
def test_a_run_reusing_a_traced_model_gives_the_numbers_of_a_fresh_one(tmp_path, monkeypatch):
    """Seeds 0 then 1 in one process (the second reuses the first's compiled model, its variables
    reset from a fresh build), against seed 1 alone: the same loss, logits and predictions."""
    monkeypatch.setattr(loop, "_TRACED", type(loop._TRACED)())
    cfg = FinetuneConfig(task="sst2", batch_size=8, epochs=1.0, max_seq_length=32, learning_rate=1e-3,
                         max_train_examples=48, max_eval_examples=24)

    def run(seed, name):
        record = loop.finetune(dataclasses.replace(cfg, seed=seed), None, tmp_path / name, model_cfg=TINY)
        return record["final_train_loss"], record["example_rows"], (tmp_path / name / "predictions.tsv").read_text()

    first = run(0, "first")
    traced = list(loop._TRACED.values())
    reused = run(1, "reused")
    assert list(loop._TRACED.values()) == traced  # the second run trained the first run's model
    loop._TRACED.clear()
    alone = run(1, "alone")
    assert reused == alone and first[0] != alone[0]  # the seed matters, and was carried over
