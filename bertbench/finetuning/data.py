"""Fine-tuning data: capped splits of a task, encoded features, and the tf.data pipeline.

- Capped sets (max_train_examples / max_eval_examples) are an order-preserving random subset drawn
  with a FIXED seed (0), so every seed and grid point of a run sees the same examples.
- `Encoded(inputs, targets, meta)` is what a task kind's `encode` returns (see
  bertbench.finetuning.kinds): int32 model inputs, numpy targets, and what postprocessing needs.
"""

import dataclasses

import numpy as np

from bertbench.errors import BertbenchError

SUBSET_SEED = 0  # the capped train/dev subsets are part of a run's definition, not of its seed


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


def make_dataset(encoded, batch_size, training, seed=0):
    """(inputs, targets) batches; training: seeded reshuffle each epoch, repeated forever."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((encoded.inputs, encoded.targets))
    if training:
        ds = ds.shuffle(len(encoded), seed=seed, reshuffle_each_iteration=True).repeat()
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
