"""The one pretraining dataset builder: instances -> masks -> batches of (features, labels) for the loop.

Its sources: tokenized documents (`bertbench.pretraining.inputs.PretrainingCorpus`) or TFRecord
shards (`bertbench.pretraining.tfrecords`: `pretrain-data`'s or google-research/bert's, detected by
content). `pretraining_input` picks the source of a config's corpus. Masking is static (fixed masks
from numpy, `masking.mask_tokens`, or as stored in the TFRecords) or dynamic (fresh masks per batch
inside tf.data, `masking.tf_mask_tokens`, keras-hub/RoBERTa style).

Multi-worker input (`bertbench.pretraining.workers`): shard=(index, count) keeps every count-th
instance of the shuffled stream from `index` on (so the count pipelines' batches together hold the
instances of the one-process batch), or every count-th TFRecord file when there are enough; the
dynamic masks of batch k are seeded by (seed, k * count + index), distinct per worker and the same on
a rerun; `start` skips that many batches (a resumed run: distributed iterators are not
checkpointable), the mask counter counting on from there.
"""

from bertbench.errors import BertbenchError
from bertbench.pretraining.inputs import PretrainingCorpus
from bertbench.pretraining.instances import create_instances
from bertbench.pretraining.masking import tf_mask_tokens
from bertbench.pretraining.tfrecords import (mask_instances, masking_spec_for, open_tfrecords, read_tfrecords,
                                             tfrecord_files)
from bertbench.text.corpus import corpus_files


def pretraining_input(cfg, tokenizer):
    """(corpus, cfg) of a run: TFRecord shards in `cfg.corpus` give a checked `TFRecordCorpus` and the
    config with their sequence length and predictions per sequence; text gives a `PretrainingCorpus`
    (tokenized once, cached, with the held-out split of `cfg.heldout_fraction`)."""
    records = tfrecord_files(corpus_files(cfg.corpus))
    if records:
        corpus = open_tfrecords(records, tokenizer, cfg.objective, cfg.input_format)
        return corpus, corpus.adapt(cfg)
    corpus = PretrainingCorpus(cfg.corpus, tokenizer, cfg.heldout_fraction, cfg.seed)
    held, total = len(corpus.heldout_docs), len(corpus.heldout_docs) + len(corpus.train_docs)
    if cfg.segment_pairs and held == 1:
        raise BertbenchError(f"the held-out split is 1 of the corpus's {total} documents "
                             f"(pretrain.heldout_fraction={cfg.heldout_fraction}) and segment pairs "
                             f"need 2 (NotNext B segments); raise it (e.g. --set "
                             f"pretrain.heldout_fraction=0.05) or set it to 0 for no held-out evaluation")
    return corpus, cfg


def train_dataset(corpus, cfg, seq_length, batch_size, shard=None, start=0):
    """The endless, shuffled, dynamically (or statically) masked training stream of a corpus.

    shard=(index, count): one input pipeline's part of it (multi-worker), from batch `start` on."""
    return pretraining_dataset(cfg, corpus.tokenizer, batch_size=batch_size, seq_length=seq_length, seed=cfg.seed,
                               repeat=True, shard=shard, start=start, **_source(corpus))


def heldout_dataset(corpus, cfg, seq_length, batch_size):
    """One fixed pass over the held-out documents: fixed masks (seeded), no shuffling. Empty when
    there are none (TFRecord input, pretrain.heldout_fraction=0): the held-out metrics are then {}.

    The held-out documents are the same for every run on a corpus (split by document, seed), built
    into instances of the run's own input format: so it measures LM accuracy / perplexity on unseen
    text in the format the model trained on. Runs with one format and seed (BERT and the segment-pair
    No NSP) see the very same instances and masks; a DOC-SENTENCES run sees the same documents packed,
    every token with a longer, contiguous context, so its perplexity is not comparable to theirs."""
    held = getattr(corpus, "heldout_docs", [])
    source = {"documents": held} if held else _source(corpus, head=True)
    dataset = pretraining_dataset(cfg, corpus.tokenizer, batch_size=batch_size, seq_length=seq_length,
                                  seed=cfg.seed + 1, repeat=False, shuffle=False, drop_remainder=False, **source)
    return dataset if held else dataset.take(0)


def _source(corpus, head=False):
    """pretraining_dataset's source arguments for a corpus (head: a few documents, for an empty pass)."""
    if hasattr(corpus, "train_docs"):
        return {"documents": corpus.train_docs[:2] if head else corpus.train_docs}
    return {"tfrecord_paths": corpus.paths, "tfrecord_features": corpus.features}


def pretraining_dataset(pretrain_cfg, tokenizer, documents=None, tfrecord_paths=None, batch_size=None,
                        seq_length=None, seed=None, repeat=True, shuffle=True, drop_remainder=True,
                        tfrecord_features=None, shard=None, start=0):
    """Batches of (features, labels) for the pretraining loop.

    Source: `tfrecord_paths` (shards of `pretrain-data` or google-research/bert; `tfrecord_features`:
    the feature names to read, default all seven), else `documents` (tokenized: lists of
    sentences, each a sequence of ids; `PretrainingCorpus` reads and tokenizes the corpus).
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
    shard / start: multi-worker input, see the module docstring.
    """
    import tensorflow as tf

    cfg = pretrain_cfg
    seq_length = seq_length or cfg.max_seq_length
    batch_size = batch_size or cfg.batch_size
    seed = cfg.seed if seed is None else seed
    spec = masking_spec_for(tokenizer, cfg, seq_length)
    dynamic = cfg.dynamic_masking and cfg.objective != "ltr"
    if tfrecord_paths is not None:
        by_file = shard is not None and len(tfrecord_paths) >= shard[1]
        paths = list(tfrecord_paths)[shard[0]::shard[1]] if by_file else tfrecord_paths
        ds = read_tfrecords(paths, seq_length, spec.max_predictions, tfrecord_features).map(_from_record)
        if shard is not None and not by_file:
            ds = ds.shard(shard[1], shard[0])
        if shuffle:
            ds = ds.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
        ds = ds.repeat() if repeat else ds
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        ds = ds.skip(start) if start else ds
    else:
        arrays = _instance_arrays(cfg, tokenizer, documents, spec, seq_length, seed, dynamic)
        tensors = {k: tf.constant(v) for k, v in arrays.items()}
        ds = tf.data.Dataset.range(len(arrays["token_ids"]))
        if shuffle:
            ds = ds.shuffle(len(arrays["token_ids"]), seed=seed, reshuffle_each_iteration=True)
        ds = ds.repeat() if repeat else ds
        ds = ds.shard(shard[1], shard[0]) if shard is not None else ds
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        ds = (ds.skip(start) if start else ds).map(lambda idx: {k: tf.gather(t, idx) for k, t in tensors.items()})
    finish = _batch_finisher(cfg, spec, seed, dynamic, tokenizer.pad_id, shard)
    ds = (ds.enumerate(start=start) if start else ds.enumerate()).map(
        finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def _instance_arrays(cfg, tokenizer, documents, spec, seq_length, seed, dynamic):
    """Numpy arrays of instances: token_ids, segment_ids, lengths, next_sentence_labels (+ static masks)."""
    if documents is None:
        raise ValueError("pretraining_dataset needs tokenized `documents` or `tfrecord_paths`")
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
    out = {"token_ids": cast("input_ids"), "segment_ids": cast("segment_ids"),
           "lengths": tf.reduce_sum(cast("input_mask")),
           "masked_lm_positions": cast("masked_lm_positions"), "masked_lm_ids": cast("masked_lm_ids"),
           "masked_lm_weights": example["masked_lm_weights"]}
    if "next_sentence_labels" in example:  # not read for objectives without NSP
        out["next_sentence_labels"] = cast("next_sentence_labels")[0]
    return out


def _batch_finisher(cfg, spec, seed, dynamic, pad_id, shard=None):
    """(batch counter, batch of internal layout) -> (features, labels) of the documented contract."""
    import tensorflow as tf

    def finish(step, batch):
        if shard is not None:  # one mask stream per input pipeline
            step = step * shard[1] + shard[0]
        token_ids = tf.cast(batch["token_ids"], tf.int32)
        seq = tf.shape(token_ids)[1]
        padding_mask = tf.cast(tf.range(seq)[None, :] < tf.cast(batch["lengths"], tf.int32)[:, None], tf.int32)
        features = {"segment_ids": tf.cast(batch["segment_ids"], tf.int32), "padding_mask": padding_mask}
        if cfg.objective == "ltr":
            if "masked_lm_positions" in batch:  # masked TFRecords: the left-to-right LM reads the text
                token_ids = _unmask(token_ids, batch)
            features["token_ids"] = token_ids
            features["segment_ids"] = tf.zeros_like(token_ids)  # one segment (pairs in TFRecords too)
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
