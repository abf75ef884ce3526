"""Instances (NSP pairs, packing), TFRecords, the corpus reader, the tf.data contract and the
`pretrain-data` command, checked on real Wikipedia text against google-research/bert's definitions."""

import gzip
import json
import random

import numpy as np
import pytest
from helpers import P_MIN, real_documents, real_tokenizer
from scipy import stats

from bertbench.config import PretrainConfig
from bertbench.pretraining.dataset import pretraining_dataset
from bertbench.pretraining.inputs import PretrainingCorpus
from bertbench.pretraining.instances import create_instances, tokenize_documents, truncate_seq_pair
from bertbench.pretraining.tfrecords import feature_spec, mask_instances, masking_spec_for, write_tfrecords

SEQ = 128


@pytest.fixture(scope="module")
def real():
    tokenizer = real_tokenizer()
    return tokenizer, tokenize_documents(tokenizer, real_documents(6))


def _instances(tokenizer, docs, **kw):
    dupe, seed = kw.pop("dupe_factor", 1), kw.pop("seed", 0)
    cfg = PretrainConfig(max_seq_length=kw.pop("seq", SEQ), **kw)
    return create_instances(docs, cfg, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id,
                            dupe_factor=dupe, seed=seed)


def _segments(row, length, sep_id):
    seps = np.flatnonzero(row[:length] == sep_id)
    return row[1:seps[0]], row[seps[0] + 1:seps[1]] if len(seps) > 1 else None


def _find(hay, needle):
    """Start offsets of `needle` inside `hay` (both 1-D int arrays)."""
    starts = np.flatnonzero(hay[:len(hay) - len(needle) + 1] == needle[0])
    return [s for s in starts if np.array_equal(hay[s:s + len(needle)], needle)]


def test_layout_and_truncation(real):
    tokenizer, docs = real
    inst = _instances(tokenizer, docs)
    assert np.all(inst.token_ids[:, 0] == tokenizer.cls_id) and np.all(inst.lengths <= SEQ)
    for row, seg, n in zip(inst.token_ids, inst.segment_ids, inst.lengths, strict=True):
        a, b = _segments(row, n, tokenizer.sep_id)
        assert len(a) >= 1 and len(b) >= 1 and row[n - 1] == tokenizer.sep_id
        assert np.array_equal(seg[:n], [0] * (len(a) + 2) + [1] * (len(b) + 1))
        assert np.all(row[n:] == tokenizer.pad_id) and np.all(seg[n:] == 0)
    # short_seq_prob draws one target length per document and pass, uniform in [2, 125] (original)
    full = _instances(tokenizer, docs, short_seq_prob=0.0, dupe_factor=8)
    short = _instances(tokenizer, docs, short_seq_prob=1.0, dupe_factor=8)
    assert np.mean(full.lengths <= 64) < 0.1 and np.mean(short.lengths <= 64) > 0.2


def test_truncate_seq_pair_is_longest_first_with_random_ends():
    class Fixed(random.Random):
        def __init__(self, values):
            super().__init__(0)
            self.values = list(values)

        def random(self):
            return self.values.pop(0)

    a, b = truncate_seq_pair(np.arange(1, 11), np.arange(11, 14), 8, Fixed([0.1, 0.9, 0.1, 0.9, 0.9]))
    assert a.tolist() == [3, 4, 5, 6, 7] and b.tolist() == [11, 12, 13]  # front, back, front, back, back
    a, b = truncate_seq_pair(np.arange(3), np.arange(3, 6), 5, Fixed([0.9]))
    assert a.tolist() == [0, 1, 2] and b.tolist() == [3, 4]  # ties truncate B, as the original


def test_next_sentence_labels_are_fifty_fifty(real):
    tokenizer, docs = real
    inst = _instances(tokenizer, docs, dupe_factor=4)
    forced = inst.sources[:, 6] == 1
    labels = inst.next_sentence_labels
    assert np.all(labels[forced] == 1)  # one-sentence chunks always take a random B (original)
    free = labels[~forced]
    assert len(free) > 1500
    assert stats.binomtest(int((free == 0).sum()), len(free), 0.5).pvalue > P_MIN
    assert 0.4 < (labels == 0).mean() <= 0.5


def test_isnext_is_the_continuation_and_notnext_another_document(real):
    tokenizer, docs = real
    inst = _instances(tokenizer, docs, dupe_factor=2)
    flat = [np.concatenate(doc) for doc in docs]
    gaps = []
    for row, n, label, src in zip(inst.token_ids, inst.lengths, inst.next_sentence_labels, inst.sources,
                                  strict=True):
        a, b = _segments(row, n, tokenizer.sep_id)
        a_at = _find(flat[src[0]], a)
        assert a_at, "segment A is not contiguous text of its document"
        if label == 0:
            assert src[3] == src[0]
            b_at = _find(flat[src[0]], b)
            follows = [bs - (s + len(a)) for s in a_at for bs in b_at if bs >= s + len(a)]
            # between them only what truncation removed (A's tail, B's head)
            removed = sum(len(docs[src[0]][k]) for k in range(src[1], src[5])) - len(a) - len(b)
            assert follows and 0 <= min(follows) <= removed, "IsNext B does not follow A in the document"
            gaps.append(min(follows))
        else:
            assert src[3] != src[0], "NotNext B taken from A's own document"
            assert _find(flat[src[3]], b), "NotNext B is not contiguous text of another document"
    assert len(gaps) > 100


def test_no_nsp_packs_whole_documents_in_order(real):
    tokenizer, docs = real
    inst = _instances(tokenizer, docs, objective="mlm")
    assert np.all(inst.segment_ids == 0) and np.all(inst.next_sentence_labels == 0)
    for d, doc in enumerate(docs):
        rows = np.flatnonzero(inst.sources[:, 0] == d)
        pieces = [inst.token_ids[r, 1:inst.lengths[r] - 1] for r in rows]
        assert np.array_equal(np.concatenate(pieces), np.concatenate(doc))  # nothing lost, no overlap
        assert all(len(p) <= SEQ - 2 for p in pieces)
        for r, nxt in zip(rows[:-1], rows[1:]):  # full packing: the next sentence would not fit
            first = doc[inst.sources[nxt, 1]]
            if inst.sources[nxt, 1] >= inst.sources[r, 2]:  # next instance starts with a whole sentence
                assert inst.lengths[r] - 2 + len(first) > SEQ - 2


def test_instances_are_seeded(real):
    tokenizer, docs = real
    first, again = _instances(tokenizer, docs, seed=1), _instances(tokenizer, docs, seed=1)
    other = _instances(tokenizer, docs, seed=2)
    assert np.array_equal(first.token_ids, again.token_ids)
    assert np.array_equal(first.next_sentence_labels, again.next_sentence_labels)
    assert not np.array_equal(first.next_sentence_labels[:50], other.next_sentence_labels[:50])


GOOGLE_FEATURES = {  # google-research/bert run_pretraining.py input_fn_builder, for max_seq 128 / P 20
    "input_ids": ("int64", SEQ), "input_mask": ("int64", SEQ), "segment_ids": ("int64", SEQ),
    "masked_lm_positions": ("int64", 20), "masked_lm_ids": ("int64", 20),
    "masked_lm_weights": ("float32", 20), "next_sentence_labels": ("int64", 1)}


def test_tfrecords_round_trip_with_parse_single_example(real, tmp_path):
    import tensorflow as tf

    tokenizer, docs = real
    inst = _instances(tokenizer, docs[:2])
    arrays = mask_instances(inst, masking_spec_for(tokenizer, PretrainConfig()), seed=0)
    paths = write_tfrecords(arrays, tmp_path, num_shards=2, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temp files
    spec = {k: tf.io.FixedLenFeature([n], getattr(tf, t)) for k, (t, n) in GOOGLE_FEATURES.items()}
    parsed = [tf.io.parse_single_example(r, spec) for r in tf.data.TFRecordDataset([str(p) for p in paths])]
    assert len(parsed) == len(inst) and all(v.dtype.name == GOOGLE_FEATURES[k][0] for k, v in parsed[0].items())
    key = lambda d: tuple(np.concatenate([np.ravel(np.asarray(d[k], np.float64)) for k in GOOGLE_FEATURES]))  # noqa: E731
    written = sorted(key({k: v.numpy() for k, v in p.items()}) for p in parsed)
    expected = sorted(key({k: arrays[k][i] for k in GOOGLE_FEATURES}) for i in range(len(inst)))
    assert written == expected


def _restore(features, labels):
    """Unmasked token ids of a batch: masked slots get their original ids back."""
    ids = features["token_ids"].numpy().copy()
    pos, orig, w = (features["masked_lm_positions"].numpy(), labels["masked_lm_ids"].numpy(),
                    labels["masked_lm_weights"].numpy())
    r, s = np.nonzero(w)
    ids[r, pos[r, s]] = orig[r, s]
    return ids


@pytest.mark.parametrize("objective", ["mlm+nsp", "mlm", "ltr"])
def test_dataset_contract(real, objective):
    tokenizer, docs = real
    cfg = PretrainConfig(objective=objective, batch_size=16, seed=3)
    features, labels = next(iter(pretraining_dataset(cfg, tokenizer, documents=docs[:3])))
    assert {k: (v.shape.as_list(), v.dtype.name) for k, v in features.items()} == {
        "token_ids": ([16, SEQ], "int32"), "segment_ids": ([16, SEQ], "int32"),
        "padding_mask": ([16, SEQ], "int32"),
        **({} if objective == "ltr" else {"masked_lm_positions": ([16, 20], "int32")})}
    shapes = {k: (v.shape.as_list(), v.dtype.name) for k, v in labels.items()}
    if objective == "ltr":
        assert shapes == {"next_token_ids": ([16, SEQ], "int32"), "next_token_weights": ([16, SEQ], "float32")}
        ids, mask = features["token_ids"].numpy(), features["padding_mask"].numpy()
        assert np.array_equal(labels["next_token_ids"].numpy()[:, :-1], ids[:, 1:])
        assert np.all(labels["next_token_ids"].numpy()[:, -1] == tokenizer.pad_id)
        assert np.array_equal(labels["next_token_weights"].numpy()[:, :-1], mask[:, 1:])
        return
    expected = {"masked_lm_ids": ([16, 20], "int32"), "masked_lm_weights": ([16, 20], "float32")}
    if objective == "mlm+nsp":
        expected["next_sentence_labels"] = ([16], "int32")
    assert shapes == expected
    ids, mask = _restore(features, labels), features["padding_mask"].numpy()
    assert np.all(ids[:, 0] == tokenizer.cls_id) and np.all((ids == tokenizer.pad_id) == (mask == 0))


def test_dynamic_masks_change_every_epoch_deterministically(real):
    tokenizer, docs = real
    cfg = PretrainConfig(objective="mlm", batch_size=8, seed=5)
    n = len(_instances(tokenizer, docs[:1], objective="mlm"))

    def rows(seed, count):
        out = {"ids": [], "pos": []}
        for features, labels in pretraining_dataset(cfg, tokenizer, documents=docs[:1], seed=seed,
                                                    shuffle=False).take(count):
            out["ids"].append(_restore(features, labels))
            out["pos"].append(features["masked_lm_positions"].numpy())
        return {k: np.concatenate(v) for k, v in out.items()}

    count = (2 * n) // 8 + 1
    a, again, b = rows(5, count), rows(5, count), rows(6, count)
    assert all(np.array_equal(a[k], again[k]) for k in a)  # same seed, same batches and masks
    assert not np.array_equal(a["pos"], b["pos"])
    assert np.array_equal(a["ids"][:n], a["ids"][n:2 * n])  # the same instances in epoch 2 ...
    assert np.mean(np.any(a["pos"][:n] != a["pos"][n:2 * n], axis=1)) > 0.9  # ... with fresh masks


def test_heldout_pass_covers_every_instance_once_with_fixed_masks(real):
    tokenizer, docs = real
    inst = _instances(tokenizer, docs[:2], seed=1)
    cfg = PretrainConfig(batch_size=32, seed=1)

    def one_pass():
        batches = list(pretraining_dataset(cfg, tokenizer, documents=docs[:2], repeat=False, shuffle=False,
                                           drop_remainder=False))
        return (np.concatenate([_restore(f, l) for f, l in batches]),
                np.concatenate([f["masked_lm_positions"].numpy() for f, _ in batches]))

    (ids, pos), (ids2, pos2) = one_pass(), one_pass()
    assert len(inst) % 32 and np.array_equal(ids, inst.token_ids)  # all, in order, last batch partial
    assert np.array_equal(pos, pos2) and np.array_equal(ids, ids2)


def test_static_masking_from_tfrecords_and_dynamic_remasking(real, tmp_path):
    tokenizer, docs = real
    inst = _instances(tokenizer, docs[:2])
    arrays = mask_instances(inst, masking_spec_for(tokenizer, PretrainConfig()), seed=0)
    paths = write_tfrecords(arrays, tmp_path, num_shards=1, seed=0)
    originals = {tuple(r) for r in inst.token_ids}
    for dynamic in (False, True):
        cfg = PretrainConfig(batch_size=8, dynamic_masking=dynamic)
        features, labels = next(iter(pretraining_dataset(cfg, tokenizer, tfrecord_paths=paths, shuffle=False)))
        assert {tuple(r) for r in _restore(features, labels)} <= originals
        stored = {tuple(r) for r in arrays["input_ids"]}
        assert ({tuple(r) for r in features["token_ids"].numpy()} <= stored) == (not dynamic)


def test_masking_spec_for_translates_the_config(real):
    tokenizer, _ = real
    cfg = PretrainConfig(masked_lm_prob=0.2, masking=(0.5, 0.3, 0.2), whole_word_masking=True,
                         max_seq_length=64, max_predictions_per_seq=9)
    spec = masking_spec_for(tokenizer, cfg)
    assert (spec.masked_lm_prob, spec.max_predictions, spec.fractions, spec.whole_word) == \
        (0.2, 9, (0.5, 0.3, 0.2), True)
    assert masking_spec_for(tokenizer, cfg, 128).max_predictions == 26  # ceil(0.2 * 128) at phase 2
    assert spec.mask_id == tokenizer.mask_id and set(spec.special_ids) == set(tokenizer.special_ids)


def test_corpus_reader_splits_caches_and_streams(real, tmp_path):
    """PretrainingCorpus is the one reader (loop, benchmarks, pretrain-data): a seeded document split,
    the same documents from its cache, and without a split every document in corpus order."""
    tokenizer, _ = real
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join("\n".join(doc) for doc in real_documents(4)), encoding="utf-8")
    expected = tokenize_documents(tokenizer, real_documents(4))
    whole = PretrainingCorpus(str(corpus), tokenizer, cache_dir=tmp_path / "cache")
    assert whole.heldout_docs == [] and len(whole.train_docs) == len(expected)
    for got, want in zip(whole.train_docs, expected, strict=True):
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
    assert whole.reading["documents"] == 4 and whole.tokenization["skipped_documents"] == 0
    split = PretrainingCorpus(str(corpus), tokenizer, heldout_fraction=0.25, seed=1, cache_dir=tmp_path / "cache")
    cached = PretrainingCorpus(str(corpus), tokenizer, heldout_fraction=0.25, seed=1, cache_dir=tmp_path / "cache")
    assert (len(split.train_docs), len(split.heldout_docs)) == (3, 1)
    assert cached.cache_path == split.cache_path != whole.cache_path
    assert cached.stats() == split.stats() and split.stats()["train_documents"] == 3
    for a, b in zip(cached.train_docs + cached.heldout_docs, split.train_docs + split.heldout_docs, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert len(PretrainingCorpus(str(corpus), tokenizer, max_documents=2, cache_dir=tmp_path / "c").train_docs) == 2


def test_pretrain_data_command(real, tmp_path, monkeypatch):
    import tensorflow as tf

    monkeypatch.setenv("BERTBENCH_CACHE", str(tmp_path / "cache"))

    from bertbench.cli import main
    tokenizer, _ = real
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join("\n".join(doc) for doc in real_documents(3)), encoding="utf-8")
    args = ["pretrain-data", "--corpus", str(corpus), "--vocab", tokenizer.vocab_path, "--out",
            str(tmp_path / "out"), "--dupe-factor", "2", "--num-shards", "3", "--seed", "4",
            "--masking", "0.8,0.1,0.1"]
    assert main(args) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["documents"] == 3 and summary["config"]["dupe_factor"] == 2
    assert abs(summary["selection_rate"] - 0.15) < 0.01 and abs(summary["mask_fraction"] - 0.8) < 0.03
    assert 0.35 < summary["is_next_fraction"] < 0.6  # ~540 instances only
    records = tf.data.TFRecordDataset([str(tmp_path / "out" / s) for s in summary["shards"]])
    assert sum(1 for _ in records.map(lambda r: tf.io.parse_single_example(r, feature_spec(SEQ, 20)))) \
        == summary["instances"]
    assert main(args[:-1] + ["0.5,0.5"]) == 2  # ConfigError: one line, exit code 2


def test_bundled_sample_corpus(real):
    from bertbench.resources import SAMPLE_DIR

    assert (SAMPLE_DIR / "corpus").is_dir(), "the bundled sample corpus ships with the package"
    from bertbench.text.corpus import read_documents

    tokenizer, _ = real
    reader = read_documents("sample")
    docs = tokenize_documents(tokenizer, reader)
    doc_lines = 0
    for path in sorted((SAMPLE_DIR / "corpus").rglob("*.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            doc_lines += sum(line.startswith("<doc ") for line in handle)
    assert len(docs) == reader.stats.documents == doc_lines > 2
    inst = _instances(tokenizer, docs)
    free = inst.next_sentence_labels[inst.sources[:, 6] == 0]
    assert stats.binomtest(int((free == 0).sum()), len(free), 0.5).pvalue > P_MIN


def test_no_heldout_documents_give_an_empty_heldout_pass(real, tmp_path):
    """pretrain.heldout_fraction=0 (and TFRecord input) evaluate nothing: the held-out metrics are {}."""
    from bertbench.pretraining.dataset import heldout_dataset, train_dataset
    from bertbench.pretraining.objectives import summarize

    tokenizer, _ = real
    corpus_file = tmp_path / "corpus.txt"
    corpus_file.write_text("\n\n".join("\n".join(doc) for doc in real_documents(3)), encoding="utf-8")
    corpus = PretrainingCorpus(str(corpus_file), tokenizer, heldout_fraction=0.0, cache_dir=tmp_path / "cache")
    cfg = PretrainConfig(batch_size=4, max_seq_length=32, heldout_fraction=0.0)
    assert list(heldout_dataset(corpus, cfg, 32, 4)) == [] and summarize({}) == {}
    features, _ = next(iter(train_dataset(corpus, cfg, 32, 4)))
    assert features["token_ids"].shape == (4, 32)
