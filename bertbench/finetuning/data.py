"""Fine-tuning data: capped splits of a task, encoded features, and the tf.data pipeline.

- Capped sets (max_train_examples / max_eval_examples) are an order-preserving random subset drawn
  with a FIXED seed (0), so every seed and grid point of a run sees the same examples.
- `Encoded(inputs, targets, meta)` is what a task kind's `encode` returns (see
  bertbench.finetuning.kinds): int32 model inputs, numpy targets, and what postprocessing needs.
- Encoding is cached in memory by content (`encode_cached`, up to CACHE_BYTES): a `run` fine-tunes the
  same task split with the same tokenizer ~20 times (seeds, grid points, variants sharing a vocabulary).
- Dynamic padding (`padding="dynamic"`): each batch is cut to its longest row rounded up to PAD_MULTIPLE,
  keeping the batch's composition and order; targets shaped like the token ids ([n, seq]: tagging)
  are cut with it. Prediction batches (`length_batches`) are sorted by length first; the caller
  restores the original order. Whether a kind's numbers survive it is its PADDING_INVARIANT.
"""

import collections
import dataclasses
import hashlib

import numpy as np

from bertbench.config import FINETUNE_PADDINGS
from bertbench.errors import BertbenchError

SUBSET_SEED = 0  # the capped train/dev subsets are part of a run's definition, not of its seed
PAD_MULTIPLE = 8  # dynamic padding rounds a batch's length up to this (few distinct shapes to trace)
PADDINGS = FINETUNE_PADDINGS  # of training batches (make_dataset, finetune.padding); "full" is the default
BUCKET_BATCHES = 16  # "bucketed": rows are sorted by length within chunks of this many batches
# The FinetuneConfig fields any kind's `encode` reads: with the task, the examples and the tokenizer's
# vocabulary and casing they are the encoding cache's key (a kind that reads another must add it).
ENCODE_FIELDS = ("max_seq_length", "doc_stride", "max_query_length", "document_context")
CACHE_BYTES = 2**30  # encoded splits kept per process, least recently used out first (ci: ~1 MB each)
_CACHE = collections.OrderedDict()  # key -> Encoded, least recently used first


@dataclasses.dataclass
class Encoded:
    inputs: dict  # name -> int32 numpy array, [n, seq] (or [n, choices, seq])
    targets: np.ndarray  # [n, ...], one row per model input row
    meta: dict  # kind-specific: SQuAD windows, kept words of tagged sentences, ...

    def __len__(self):
        return len(self.targets)


def subset_indices(n, cap):
    """Sorted indices of an order-preserving random subset of size min(n, cap) (all when cap=0)."""
    if not cap or cap >= n:
        return list(range(n))
    return sorted(np.random.default_rng(SUBSET_SEED).choice(n, cap, replace=False).tolist())


def load_split(spec, split, data_dir, cap, source="files"):
    """(examples, original indices) of a split, capped."""
    examples = spec.load(split, data_dir=data_dir, source=source)
    if not examples:
        raise BertbenchError(f"task {spec.name}: split '{split}' is empty; check its data file")
    keep = subset_indices(len(examples), cap)
    return [examples[i] for i in keep], keep


def make_dataset(encoded, batch_size, training, seed=0, padding="full"):
    """(inputs, targets) batches; training: seeded reshuffle each epoch, repeated forever.

    padding "full": every batch at the encoded length; "dynamic": each batch cut to its own length
    (same rows, same order); "bucketed" (training): rows sorted by length within chunks of
    BUCKET_BATCHES batches of the shuffled stream, the chunk's batches shuffled, then cut (other rows
    per batch: it changes results, like another seed).
    """
    import tensorflow as tf

    if padding not in PADDINGS:
        raise ValueError(f"padding {padding!r} is not one of {PADDINGS}")
    ds = tf.data.Dataset.from_tensor_slices((encoded.inputs, encoded.targets))
    if training:
        ds = ds.shuffle(len(encoded), seed=seed, reshuffle_each_iteration=True).repeat()
    if padding == "bucketed" and training:  # chunk -> BUCKET_BATCHES batches -> one batch at a time
        chunks = ds.batch(BUCKET_BATCHES * batch_size, drop_remainder=True).enumerate()
        ds = chunks.map(lambda i, chunk: _buckets(i, chunk, batch_size, seed)).unbatch()
    else:
        ds = ds.batch(batch_size)
    if padding != "full":
        ds = ds.map(_cutter(encoded), num_parallel_calls=1, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def _buckets(index, chunk, batch_size, seed):
    """A chunk of rows [m, (choices,) seq] -> [m / batch_size, batch_size, ...] batches of rows sorted
    by length (stable), the batches in a random order seeded by (seed, chunk index)."""
    import tensorflow as tf

    inputs, targets = chunk
    mask = tf.cast(inputs["padding_mask"], tf.int32)
    lengths = tf.reduce_max(tf.reduce_sum(tf.reshape(mask, [tf.shape(mask)[0], -1, tf.shape(mask)[-1]]), -1), -1)
    rows = tf.reshape(tf.argsort(lengths, stable=True), [-1, batch_size])  # [batches, batch]
    noise = tf.random.stateless_uniform([tf.shape(rows)[0]], seed=tf.stack([tf.constant(seed, tf.int64), index]))
    rows = tf.gather(rows, tf.argsort(noise))
    return {k: tf.gather(v, rows) for k, v in inputs.items()}, tf.gather(targets, rows)


def _cutter(encoded):
    """The tf.data map cutting a batch [b, (choices,) full] to [b, (choices,) its length]."""
    import tensorflow as tf

    full = encoded.inputs["token_ids"].shape[-1]
    cut_targets = encoded.targets.shape == encoded.inputs["token_ids"].shape  # tagging: [n, seq]

    def cut(inputs, targets):  # [b, (choices,) full] -> [b, (choices,) length]
        longest = tf.reduce_max(tf.reduce_sum(tf.cast(inputs["padding_mask"], tf.int32), axis=-1))
        length = tf.minimum(full, tf.maximum(1, (longest + PAD_MULTIPLE - 1) // PAD_MULTIPLE) * PAD_MULTIPLE)
        return ({k: v[..., :length] for k, v in inputs.items()},
                targets[:, :length] if cut_targets else targets)

    return cut


def row_lengths(encoded):
    """[n] real tokens of each row (the longest choice of a multiple-choice row)."""
    mask = np.asarray(encoded.inputs["padding_mask"])
    return mask.reshape(len(mask), -1, mask.shape[-1]).sum(-1).max(-1)


def padded_length(longest, full):
    """A batch's dynamic length: its longest row rounded up to PAD_MULTIPLE, at most `full`."""
    return int(min(full, max(1, -(-int(longest) // PAD_MULTIPLE)) * PAD_MULTIPLE))


def length_batches(encoded, batch_size):
    """Prediction in length order: [(rows, inputs of those rows cut to their dynamic length)], where
    the rows (original indices) are sorted by length (stable) and cut into batches of `batch_size`."""
    lengths = row_lengths(encoded)
    order = np.argsort(lengths, kind="stable")
    full = encoded.inputs["token_ids"].shape[-1]
    out = []
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        length = padded_length(lengths[rows].max(), full)
        out.append((rows, {k: np.asarray(v)[rows][..., :length] for k, v in encoded.inputs.items()}))
    return out


def restore_order(rows, outputs, n, full):
    """Per-batch outputs (row indices, [m, ...] logits) -> [n, ...] in the original row order; a
    [m, length, ...] output (per token) is padded back to `full` positions with zeros."""
    parts = []
    for part in outputs:
        part = np.asarray(part)
        if part.ndim >= 3 and part.shape[1] < full:
            part = np.pad(part, [(0, 0), (0, full - part.shape[1])] + [(0, 0)] * (part.ndim - 2))
        parts.append(part)
    stacked = np.concatenate(parts)
    out = np.empty_like(stacked)
    out[np.concatenate(rows)] = stacked
    if len(out) != n:
        raise AssertionError(f"{len(out)} predicted rows for {n}")
    return out


def encode_cached(kind, spec, examples, tokenizer, cfg):
    """kind.encode(spec, examples, tokenizer, cfg), computed once per content in this process."""
    digest = hashlib.sha256()
    for part in (kind.__name__, spec.name, repr(tuple(examples)), "\n".join(tokenizer.vocab),
                 repr((tokenizer.lowercase, tokenizer.max_chars_per_word)), repr([getattr(cfg, f) for f in ENCODE_FIELDS])):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    key = digest.hexdigest()
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    encoded = kind.encode(spec, examples, tokenizer, cfg)
    for array in (*encoded.inputs.values(), encoded.targets):
        array.flags.writeable = False  # shared by every run that reads this split
    _CACHE[key] = encoded
    while sum(_nbytes(e) for e in _CACHE.values()) > CACHE_BYTES:
        _CACHE.popitem(last=False)  # a split larger than the budget is not kept at all
    return encoded


def _nbytes(encoded):
    return sum(a.nbytes for a in encoded.inputs.values()) + encoded.targets.nbytes
