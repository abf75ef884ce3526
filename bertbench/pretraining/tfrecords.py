"""Pretraining instances as TFRecords: the feature spec, static masking into the record layout, the
writer and reader of shards, and the `pretrain-data` writer (corpus -> shards + summary.json).

TFRecords use google-research/bert's feature names and types, so its `run_pretraining.py` input
function (plain `tf.io.parse_single_example`) reads them. The pieces before: the corpus
(`bertbench.pretraining.inputs`), instances (`bertbench.pretraining.instances`), masks
(`bertbench.pretraining.masking`); the training loop's reader of shards is
`bertbench.pretraining.dataset`.
"""

import os
from pathlib import Path

import numpy as np

from bertbench.config import to_dict
from bertbench.errors import BertbenchError
from bertbench.files import write_json_atomic
from bertbench.pretraining.inputs import PretrainingCorpus
from bertbench.pretraining.instances import create_instances
from bertbench.pretraining.masking import mask_tokens, spec_from_tokenizer

SUMMARY_FILE = "summary.json"
_MASK_CHUNK = 32768  # rows masked at once: bounds the [N, S] temporaries of static masking


def masking_spec_for(tokenizer, cfg, seq_length=None):
    """The MaskingSpec of a PretrainConfig at a sequence length: where config fields become the
    plain masking arguments (the masking module knows no config)."""
    return spec_from_tokenizer(tokenizer, masked_lm_prob=cfg.masked_lm_prob,
                               max_predictions=cfg.predictions_per_seq(seq_length), fractions=cfg.masking,
                               whole_word=cfg.whole_word_masking)


def mask_instances(instances, spec, seed, objective="mlm+nsp", chunk=_MASK_CHUNK):
    """Static masking of all instances -> dict of numpy arrays under the TFRecord feature names.

    input_ids/input_mask/segment_ids [N, S], masked_lm_positions/ids/weights [N, P],
    next_sentence_labels [N]. For "ltr" nothing is masked (masked_lm_* are zeros, weight 0).
    """
    n, seq = instances.token_ids.shape
    out = {"input_ids": instances.token_ids.copy(),
           "input_mask": (np.arange(seq)[None, :] < instances.lengths[:, None]).astype(np.int8),
           "segment_ids": instances.segment_ids,
           "masked_lm_positions": np.zeros((n, spec.max_predictions), np.int32),
           "masked_lm_ids": np.zeros((n, spec.max_predictions), np.int32),
           "masked_lm_weights": np.zeros((n, spec.max_predictions), np.float32),
           "next_sentence_labels": instances.next_sentence_labels}
    if objective == "ltr":
        return out
    rng = np.random.default_rng(seed)
    for lo in range(0, n, chunk):
        part = mask_tokens(instances.token_ids[lo:lo + chunk], instances.lengths[lo:lo + chunk], spec, rng)
        for key, value in part.items():
            out[key][lo:lo + chunk] = value
    return out


def masking_summary(arrays, instances, spec):
    """Achieved rates of statically masked arrays (what the JSON summary reports)."""
    weights = arrays["masked_lm_weights"] > 0
    chosen = int(weights.sum())
    candidates = int((~spec.special_mask[instances.token_ids]
                      & (arrays["input_mask"] > 0)).sum())
    rows, slots = np.nonzero(weights)
    now = arrays["input_ids"][rows, arrays["masked_lm_positions"][rows, slots]]
    before = arrays["masked_lm_ids"][rows, slots]
    n_mask = int((now == spec.mask_id).sum())
    n_same = int((now == before).sum())
    labels = instances.next_sentence_labels
    return {"selected_positions": chosen, "candidate_positions": candidates,
            "selection_rate": chosen / max(candidates, 1),
            "selection_rate_with_specials": chosen / max(int(instances.lengths.sum()), 1),
            "mask_fraction": n_mask / max(chosen, 1), "same_fraction": n_same / max(chosen, 1),
            "random_fraction": (chosen - n_mask - n_same) / max(chosen, 1),
            "is_next_fraction": float((labels == 0).mean()) if len(labels) else 0.0}


def feature_spec(seq_length, max_predictions):
    """google-research/bert's `name_to_features` for tf.io.parse_single_example."""
    import tensorflow as tf

    ints = lambda size: tf.io.FixedLenFeature([size], tf.int64)  # noqa: E731
    return {"input_ids": ints(seq_length), "input_mask": ints(seq_length), "segment_ids": ints(seq_length),
            "masked_lm_positions": ints(max_predictions), "masked_lm_ids": ints(max_predictions),
            "masked_lm_weights": tf.io.FixedLenFeature([max_predictions], tf.float32),
            "next_sentence_labels": ints(1)}


def write_tfrecords(arrays, out_dir, num_shards=1, seed=0, prefix="instances"):
    """Write instances (dict of arrays, `mask_instances` layout) as shuffled, round-robin shards.

    Each shard is written to a temporary name and renamed when complete. Returns the shard paths.
    """
    import tensorflow as tf

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if num_shards < 1:
        raise BertbenchError(f"--num-shards must be at least 1, got {num_shards}")
    paths = [out_dir / f"{prefix}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
    temps = [p.with_name(p.name + ".tmp") for p in paths]
    writers = [tf.io.TFRecordWriter(str(t)) for t in temps]
    order = np.random.default_rng(seed).permutation(len(arrays["input_ids"]))
    int_list = lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=v))  # noqa: E731
    try:
        for k, row in enumerate(order):
            feature = {key: int_list(arrays[key][row].tolist()) for key in
                       ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids")}
            feature["masked_lm_weights"] = tf.train.Feature(
                float_list=tf.train.FloatList(value=arrays["masked_lm_weights"][row].tolist()))
            feature["next_sentence_labels"] = int_list([int(arrays["next_sentence_labels"][row])])
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writers[k % num_shards].write(example.SerializeToString())
    finally:
        for writer in writers:
            writer.close()
    for temp, path in zip(temps, paths):
        os.replace(temp, path)
    return paths


def read_tfrecords(paths, seq_length, max_predictions):
    """tf.data.Dataset of parsed examples (dicts under the TFRecord names), in file order."""
    import tensorflow as tf

    paths = [str(p) for p in paths]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise BertbenchError(f"TFRecord file not found: {missing[0]}; run `bertbench pretrain-data` first")
    spec = feature_spec(seq_length, max_predictions)
    return tf.data.TFRecordDataset(paths).map(lambda r: tf.io.parse_single_example(r, spec))


def write_pretraining_data(cfg, tokenizer, out_dir, num_shards=1, max_documents=None):
    """Corpus -> TFRecord shards + summary.json in out_dir (static masks, dupe_factor copies).

    Every document of `cfg.corpus` (up to max_documents) is used: no held-out split here.
    """
    corpus = PretrainingCorpus(cfg.corpus, tokenizer, heldout_fraction=0.0, seed=cfg.seed,
                               max_documents=max_documents)
    documents = corpus.train_docs
    inst = create_instances(documents, cfg, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id,
                            dupe_factor=cfg.dupe_factor)
    spec = masking_spec_for(tokenizer, cfg)
    arrays = mask_instances(inst, spec, cfg.seed, cfg.objective)
    paths = write_tfrecords(arrays, out_dir, num_shards, seed=cfg.seed)
    summary = {"instances": len(inst), "tokens": int(inst.lengths.sum()), "documents": len(documents),
               "corpus": corpus.reading, "tokenization": corpus.tokenization,
               "seq_length": cfg.max_seq_length, "max_predictions_per_seq": spec.max_predictions,
               "shards": [p.name for p in paths], "config": to_dict(cfg)}
    summary.update(masking_summary(arrays, inst, spec) if cfg.objective != "ltr"
                   else {"is_next_fraction": 0.0})
    if cfg.nsp:  # one-sentence chunks always get a random B (the original's rule)
        free = inst.sources[:, 6] == 0
        summary["forced_not_next_fraction"] = float(1 - free.mean())
        summary["is_next_fraction_unforced"] = float((inst.next_sentence_labels[free] == 0).mean())
    write_json_atomic(Path(out_dir) / SUMMARY_FILE, summary)
    return summary
