"""Where a fine-tuned encoder starts: a pretrained checkpoint, or random initialisation.

    setup = prepare_init("runs/pretrain/x/encoder")          # before anything runs: config, tokenizer
    with strategy.scope():
        encoder = restore_encoder(setup, dropout=0.1, seed=0)  # built and restored in the scope

- A bertbench checkpoint (`encoder.weights.h5`, Keras `save_weights`) is restored BY NAME with Keras
  `load_weights` inside the scope; as Keras tolerates weights the encoder has no place for, the file
  is then checked to hold exactly the encoder's weights (TF Model Garden's
  `assert_existing_objects_matched`).
- A Hugging Face or google-research/bert checkpoint is converted on the host
  (bertbench.model.checkpoint.load_encoder); its variables are copied into the scoped encoder by
  variable path, and the two sets of paths must be equal.
- No checkpoint: `random_encoder`, the no-pretraining baseline, built in this one function for both
  `finetune --random-init` and the runner's random-init "pretraining" (bertbench.backend).
Only the encoder is loaded (no pretraining heads); the checkpoint's vocabulary and casing are used.
"""

import dataclasses
from pathlib import Path

from bertbench.config import to_dict
from bertbench.errors import BertbenchError
from bertbench.model.checkpoint import WEIGHTS_FILE, load_encoder
from bertbench.text.tokenizer import WordPieceTokenizer, load_tokenizer


@dataclasses.dataclass
class Init:
    model_cfg: object  # ModelConfig of the encoder (vocabulary_size = the tokenizer's for random init)
    tokenizer: object
    record: dict  # what the run record says about the initialisation
    path: Path = None  # the checkpoint directory (None: random init)
    host: object = None  # a converted (Hugging Face / google-research) encoder to copy from


def prepare_init(init, model_cfg=None, vocab="sample", lowercase=True):
    """Init from a checkpoint path, or random init of `model_cfg` with tokenizer `vocab`."""
    if init is None:
        if model_cfg is None:
            raise BertbenchError("no encoder to fine-tune: pass an init checkpoint path, or a model "
                                 "config for random initialisation (--random-init --model tiny)")
        model_cfg, tokenizer = random_config(model_cfg, vocab, lowercase)
        record = {"path": None, "source": "random", "lowercase": lowercase, "vocab": str(vocab),
                  "model": to_dict(model_cfg)}
        return Init(model_cfg, tokenizer, record)
    loaded = load_encoder(init)
    tokenizer = WordPieceTokenizer(loaded.vocab_path, lowercase=loaded.lowercase)
    if tokenizer.vocabulary_size > loaded.model_cfg.vocabulary_size:
        raise BertbenchError(f"{init}: vocab.txt has {tokenizer.vocabulary_size} tokens but the "
                             f"encoder only {loaded.model_cfg.vocabulary_size} embeddings")
    record = {"path": str(init), "source": loaded.source, "lowercase": loaded.lowercase,
              "vocab": str(loaded.vocab_path), "model": to_dict(loaded.model_cfg),
              "num_weights": len(loaded.encoder.weights),
              **({"pretraining": loaded.pretraining} if loaded.pretraining else {})}  # objective, steps, precision
    host = None if loaded.source == "bertbench" else loaded.encoder  # bertbench: reloaded in the scope
    return Init(loaded.model_cfg, tokenizer, record, Path(init).expanduser(), host)


def random_config(model_cfg, vocab="sample", lowercase=True):
    """(model_cfg with the tokenizer's vocabulary size, tokenizer) of a random-init encoder;
    vocab "sample" is the bundled vocabulary (uncased or cased per `lowercase`)."""
    tokenizer = load_tokenizer(vocab, lowercase=lowercase)
    return dataclasses.replace(model_cfg, vocabulary_size=tokenizer.vocabulary_size), tokenizer


def random_encoder(model_cfg, vocab, lowercase, seed):
    """The no-pretraining baseline: (encoder seeded with `seed`, its ModelConfig, tokenizer).

    Built in the caller's strategy scope, if any; the weights depend only on (model_cfg, the
    tokenizer's vocabulary size, seed).
    """
    import keras

    from bertbench.model.encoder import build_encoder

    model_cfg, tokenizer = random_config(model_cfg, vocab, lowercase)
    keras.utils.set_random_seed(seed)
    return build_encoder(model_cfg), model_cfg, tokenizer


def restore_encoder(init, dropout, seed):
    """The encoder to fine-tune, with the run's dropout; call it inside `strategy.scope()`."""
    from bertbench.model.encoder import build_encoder

    model_cfg = dataclasses.replace(init.model_cfg, dropout=dropout)
    if init.path is None:
        return random_encoder(model_cfg, init.tokenizer.vocab_path, init.tokenizer.lowercase, seed)[0]
    encoder = build_encoder(model_cfg)
    if init.host is None:
        load_weights_checked(encoder, init.path / WEIGHTS_FILE)
    else:
        copy_by_path(init.host, encoder, init.path)
    return encoder


def load_weights_checked(encoder, weights_file):
    """Keras `load_weights` (raises on a missing or misshapen weight), then a check that the file
    holds no weight the encoder lacks (Keras only warns about those)."""
    import h5py

    try:
        encoder.load_weights(str(weights_file))
    except ValueError as err:
        raise BertbenchError(f"{weights_file} does not fit its config ({str(err).splitlines()[0]}); "
                             f"re-save the checkpoint with bertbench") from None
    stored = []
    with h5py.File(weights_file, "r") as f:
        f.visititems(lambda name, obj: stored.append(tuple(obj.shape))
                     if isinstance(obj, h5py.Dataset) and "/vars/" in f"/{name}" else None)
    expected = sorted(tuple(v.shape) for v in encoder.weights)
    if sorted(stored) != expected:
        raise BertbenchError(f"{weights_file}: the checkpoint holds {len(stored)} weight arrays but the "
                             f"encoder of its config has {len(expected)} (or their shapes differ); "
                             f"re-save the checkpoint with bertbench")


def copy_by_path(source, target, where):
    """Assign every variable of `target` from the `source` variable of the same path (`v.path`)."""
    values = {v.path: v for v in source.weights}
    paths = [v.path for v in target.weights]
    if sorted(values) != sorted(paths) or len(set(paths)) != len(paths):
        missing = sorted(set(paths) - set(values)) or sorted(set(values) - set(paths)) or ["(duplicates)"]
        raise BertbenchError(f"{where}: the converted checkpoint's weights do not match the encoder's "
                             f"by name (e.g. {missing[0]}); check that it is a BERT checkpoint")
    for variable in target.weights:
        variable.assign(values[variable.path].numpy())  # raises on a shape mismatch
