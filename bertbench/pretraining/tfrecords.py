"""Pretraining data: corpus -> instances -> masks -> TFRecords / tf.data, and `pretrain-data`.

The pieces: `bertbench.text.corpus` (documents), `bertbench.pretraining.instances` (NSP pairs or packed segments, as
google-research/bert `create_pretraining_data.py`), `bertbench.pretraining.masking` (MLM masks, numpy and TF).
TFRecords use google-research/bert's feature names and types, so its `run_pretraining.py` input
function (plain `tf.io.parse_single_example`) reads them.
"""

import os
from pathlib import Path

import numpy as np

from bertbench.config import PretrainConfig, to_dict
from bertbench.text.corpus import read_documents
from bertbench.errors import BertbenchError, ConfigError
from bertbench.pretraining.instances import create_instances, tokenize_documents
from bertbench.pretraining.masking import mask_tokens, spec_from_tokenizer, tf_mask_tokens
from bertbench.files import write_json_atomic

dynamic_mask = tf_mask_tokens  # the name docs/ARCHITECTURE.md gives the tf.data masking step
__all__ = ["create_instances", "tokenize_documents", "mask_tokens", "dynamic_mask", "mask_instances",
           "write_tfrecords", "read_tfrecords", "feature_spec", "pretraining_dataset",
           "write_pretraining_data", "add_arguments", "main"]
SUMMARY_FILE = "summary.json"
_MASK_CHUNK = 32768  # rows masked at once: bounds the [N, S] temporaries of static masking


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


# ---------------------------------------------------------------------------------------------
# TFRecords


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


# ---------------------------------------------------------------------------------------------
# tf.data for the training loop


def pretraining_dataset(pretrain_cfg, tokenizer, documents=None, tfrecord_paths=None, batch_size=None,
                        seq_length=None, seed=None, repeat=True, shuffle=True, drop_remainder=True):
    """Batches of (features, labels) for the pretraining loop.

    Source: `tfrecord_paths` (shards of `pretrain-data`), else `documents` (text documents: lists of
    sentence strings, or already tokenized: lists of id sequences), else `pretrain_cfg.corpus`.
    batch_size / seq_length / seed default to the config's batch_size / max_seq_length / seed.

    Contract (all int32 unless stated; b = batch_size, s = seq_length, P = predictions_per_seq(s)):
    - "mlm+nsp" / "mlm": features {token_ids [b,s] (masked), segment_ids [b,s], padding_mask [b,s]
      (1 on real tokens), masked_lm_positions [b,P]}; labels {masked_lm_ids [b,P] (original ids),
      masked_lm_weights [b,P] float32 (1.0 real prediction, 0.0 padding slot), and for "mlm+nsp"
      next_sentence_labels [b] (0 IsNext, 1 NotNext)}.
    - "ltr": features {token_ids, segment_ids (zeros), padding_mask}; labels {next_token_ids [b,s]
      (token_ids shifted left, [PAD] at the end), next_token_weights [b,s] float32 (1.0 where the
      target is a real token, the final [SEP] included)}.
    Dynamic masking (pretrain_cfg.dynamic_masking) draws fresh masks for every batch of every epoch
    from the stateless seed (seed, batch counter): deterministic given the seed, and the instances
    are built once (dupe_factor applies to static masking only). Static masking fixes dupe_factor
    masked copies up front. With repeat=True the stream is endless; batches drop the remainder
    unless drop_remainder=False (for one full held-out pass: repeat=False, shuffle=False, a fixed
    seed gives the same masks on every call).
    """
    import tensorflow as tf

    cfg = pretrain_cfg
    seq_length = seq_length or cfg.max_seq_length
    batch_size = batch_size or cfg.batch_size
    seed = cfg.seed if seed is None else seed
    spec = spec_from_tokenizer(tokenizer, cfg, seq_length)
    dynamic = cfg.dynamic_masking and cfg.objective != "ltr"
    if tfrecord_paths is not None:
        ds = read_tfrecords(tfrecord_paths, seq_length, spec.max_predictions).map(_from_record)
        if shuffle:
            ds = ds.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
        ds = ds.repeat() if repeat else ds
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    else:
        arrays = _instance_arrays(cfg, tokenizer, documents, spec, seq_length, seed, dynamic)
        tensors = {k: tf.constant(v) for k, v in arrays.items()}
        ds = tf.data.Dataset.range(len(arrays["token_ids"]))
        if shuffle:
            ds = ds.shuffle(len(arrays["token_ids"]), seed=seed, reshuffle_each_iteration=True)
        ds = ds.repeat() if repeat else ds
        ds = ds.batch(batch_size, drop_remainder=drop_remainder).map(
            lambda idx: {k: tf.gather(t, idx) for k, t in tensors.items()})
    finish = _batch_finisher(cfg, spec, seed, dynamic, tokenizer.pad_id)
    ds = ds.enumerate().map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def _instance_arrays(cfg, tokenizer, documents, spec, seq_length, seed, dynamic):
    """Numpy arrays of instances: token_ids, segment_ids, lengths, next_sentence_labels (+ static masks)."""
    if documents is None:
        documents = read_documents(cfg.corpus)
    documents = list(documents)
    if documents and documents[0] and isinstance(documents[0][0], str):
        documents = tokenize_documents(tokenizer, documents)
    copies = 1 if dynamic or cfg.objective == "ltr" else cfg.dupe_factor
    inst = create_instances(documents, cfg, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id,
                            seq_length=seq_length, dupe_factor=copies, seed=seed)
    out = {"token_ids": inst.token_ids, "segment_ids": inst.segment_ids, "lengths": inst.lengths,
           "next_sentence_labels": inst.next_sentence_labels}
    if not dynamic and cfg.objective != "ltr":
        masked = mask_instances(inst, spec, seed, cfg.objective)
        out.update(token_ids=masked["input_ids"], masked_lm_positions=masked["masked_lm_positions"],
                   masked_lm_ids=masked["masked_lm_ids"], masked_lm_weights=masked["masked_lm_weights"])
    return out


def _from_record(example):
    """A parsed TFRecord example -> the internal per-instance layout (masks as stored)."""
    import tensorflow as tf

    cast = lambda key: tf.cast(example[key], tf.int32)  # noqa: E731
    return {"token_ids": cast("input_ids"), "segment_ids": cast("segment_ids"),
            "lengths": tf.reduce_sum(cast("input_mask")),
            "next_sentence_labels": cast("next_sentence_labels")[0],
            "masked_lm_positions": cast("masked_lm_positions"), "masked_lm_ids": cast("masked_lm_ids"),
            "masked_lm_weights": example["masked_lm_weights"]}


def _batch_finisher(cfg, spec, seed, dynamic, pad_id):
    """(batch counter, batch of internal layout) -> (features, labels) of the documented contract."""
    import tensorflow as tf

    def finish(step, batch):
        token_ids = tf.cast(batch["token_ids"], tf.int32)
        seq = tf.shape(token_ids)[1]
        padding_mask = tf.cast(tf.range(seq)[None, :] < tf.cast(batch["lengths"], tf.int32)[:, None], tf.int32)
        features = {"segment_ids": tf.cast(batch["segment_ids"], tf.int32), "padding_mask": padding_mask}
        if cfg.objective == "ltr":
            features["token_ids"] = token_ids
            next_ids = tf.concat([token_ids[:, 1:], tf.fill([tf.shape(token_ids)[0], 1], pad_id)], axis=1)
            next_weights = tf.concat([padding_mask[:, 1:], tf.zeros_like(padding_mask[:, :1])], axis=1)
            return features, {"next_token_ids": next_ids, "next_token_weights": tf.cast(next_weights, tf.float32)}
        if dynamic:
            if "masked_lm_positions" in batch:  # stored static masks: put the original ids back first
                token_ids = _unmask(token_ids, batch)
            masked = tf_mask_tokens(token_ids, batch["lengths"], spec,
                                    tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64)]))
        else:
            masked = {"input_ids": token_ids, "masked_lm_positions": batch["masked_lm_positions"],
                      "masked_lm_ids": batch["masked_lm_ids"], "masked_lm_weights": batch["masked_lm_weights"]}
        features["token_ids"] = tf.cast(masked["input_ids"], tf.int32)
        features["masked_lm_positions"] = tf.cast(masked["masked_lm_positions"], tf.int32)
        labels = {"masked_lm_ids": tf.cast(masked["masked_lm_ids"], tf.int32),
                  "masked_lm_weights": tf.cast(masked["masked_lm_weights"], tf.float32)}
        if cfg.nsp:
            labels["next_sentence_labels"] = tf.cast(batch["next_sentence_labels"], tf.int32)
        return features, labels

    return finish


def _unmask(token_ids, batch):
    import tensorflow as tf

    slots = tf.where(batch["masked_lm_weights"] > 0)  # [k, 2]
    at = tf.stack([tf.cast(slots[:, 0], tf.int32), tf.gather_nd(batch["masked_lm_positions"], slots)], -1)
    return tf.tensor_scatter_nd_update(token_ids, at, tf.gather_nd(batch["masked_lm_ids"], slots))


# ---------------------------------------------------------------------------------------------
# `pretrain-data` command


def add_arguments(parser):
    parser.add_argument("--corpus", required=True, help="corpus file or folder, or 'sample'")
    parser.add_argument("--vocab", default="sample", help="vocab.txt path, or 'sample' (bundled)")
    parser.add_argument("--out", required=True, help="output folder for the shards and summary.json")
    parser.add_argument("--objective", default="mlm+nsp", help="mlm+nsp (default), mlm, or ltr")
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--dupe-factor", type=int, default=10, help="masked copies of the corpus")
    parser.add_argument("--masked-lm-prob", type=float, default=0.15)
    parser.add_argument("--masking", default="0.8,0.1,0.1", help="MASK,SAME,RND fractions summing to 1")
    parser.add_argument("--whole-word-masking", action="store_true")
    parser.add_argument("--num-shards", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cased", action="store_true", help="keep case (needs a cased vocabulary)")
    parser.add_argument("--max-documents", type=int, default=None, help="read at most N documents")


def config_from_args(args):
    """A validated PretrainConfig from the command's arguments."""
    try:
        masking = tuple(float(x) for x in args.masking.split(","))
    except ValueError:
        masking = ()
    if len(masking) != 3:
        raise ConfigError(f"--masking {args.masking!r} must be three comma-separated fractions, "
                          f"e.g. 0.8,0.1,0.1")
    if args.max_documents is not None and args.max_documents < 1:
        raise ConfigError(f"--max-documents must be at least 1, got {args.max_documents}")
    return PretrainConfig(objective=args.objective, corpus=str(args.corpus), vocab=str(args.vocab),
                          lowercase=not args.cased, max_seq_length=args.max_seq_length,
                          masked_lm_prob=args.masked_lm_prob, masking=masking,
                          whole_word_masking=args.whole_word_masking, dupe_factor=args.dupe_factor,
                          seed=args.seed)


def write_pretraining_data(cfg, out_dir, num_shards=1, max_documents=None, tokenizer=None):
    """Corpus -> TFRecord shards + summary.json in out_dir (static masks, dupe_factor copies)."""
    from bertbench.text.tokenizer import load_tokenizer

    tokenizer = tokenizer or load_tokenizer(cfg.vocab, cfg.lowercase)
    reader = read_documents(cfg.corpus, max_documents=max_documents)
    token_stats = {}
    documents = tokenize_documents(tokenizer, reader, stats=token_stats)
    inst = create_instances(documents, cfg, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id,
                            dupe_factor=cfg.dupe_factor)
    spec = spec_from_tokenizer(tokenizer, cfg)
    arrays = mask_instances(inst, spec, cfg.seed, cfg.objective)
    paths = write_tfrecords(arrays, out_dir, num_shards, seed=cfg.seed)
    summary = {"instances": len(inst), "tokens": int(inst.lengths.sum()), "documents": len(documents),
               "corpus": reader.stats.as_dict(), "tokenization": token_stats,
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


def main(args):
    cfg = config_from_args(args)
    summary = write_pretraining_data(cfg, args.out, args.num_shards, args.max_documents)
    print(f"wrote {summary['instances']} instances ({summary['tokens']} tokens, "
          f"{summary['documents']} documents) to {args.out} in {len(summary['shards'])} shard(s); "
          f"selection {summary.get('selection_rate', 0):.4f}, IsNext {summary['is_next_fraction']:.3f}")
    return 0
