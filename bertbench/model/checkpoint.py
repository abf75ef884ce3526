"""Encoder checkpoints: bertbench's own directory format (other formats: bertbench.model.convert).

A bertbench encoder checkpoint is a directory:
    bertbench_encoder.json  {"format", "version", "model": to_dict(ModelConfig), "lowercase", "extra"}
    encoder.weights.h5      BertEncoder.save_weights
    vocab.txt               the WordPiece vocabulary the token ids refer to
`load_encoder` also reads a Hugging Face-layout BERT directory (config.json, model.safetensors,
vocab.txt; no PyTorch needed) or a google-research/bert release (bert_config.json,
bert_model.ckpt.*, vocab.txt).
"""

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

from bertbench.config import ModelConfig, from_dict, to_dict
from bertbench.errors import BertbenchError
from bertbench.model.convert import VOCAB_FILE, is_converted_dir, load_converted

CONFIG_FILE = "bertbench_encoder.json"
WEIGHTS_FILE = "encoder.weights.h5"
FORMAT_VERSION = 1


@dataclasses.dataclass
class LoadedEncoder:
    encoder: object  # bertbench.model.encoder.BertEncoder
    model_cfg: ModelConfig
    vocab_path: Path
    lowercase: bool
    source: str  # "bertbench", "huggingface" or "google-research"


def model_config_of(encoder):
    """The ModelConfig a BertEncoder was built with (ModelConfig's fields are the encoder's)."""
    return ModelConfig(**{field.name: getattr(encoder, field.name) for field in dataclasses.fields(ModelConfig)})


# ------------------------------------------------------------------------------------------
# bertbench directories


def save_encoder(encoder, model_cfg, out_dir, vocab_path, lowercase, extra=None):
    """Write a bertbench encoder checkpoint to `out_dir` atomically (temp dir, then rename)."""
    if model_config_of(encoder) != model_cfg:
        raise ValueError(f"encoder was built with {model_config_of(encoder)}, not {model_cfg}")
    vocab_path, out_dir = Path(vocab_path), Path(out_dir)
    if not vocab_path.is_file():
        raise BertbenchError(f"vocabulary file not found: {vocab_path}; pass an existing vocab.txt")
    with open(vocab_path, encoding="utf-8") as f:
        vocab_lines = sum(1 for _ in f)
    if vocab_lines > model_cfg.vocabulary_size:
        raise BertbenchError(f"{vocab_path} has {vocab_lines} tokens but the model has "
                             f"vocabulary_size={model_cfg.vocabulary_size}; set model.vocabulary_size "
                             f"to at least {vocab_lines}")
    meta = {"format": "bertbench_encoder", "version": FORMAT_VERSION, "model": to_dict(model_cfg),
            "lowercase": bool(lowercase), "extra": extra or {}}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n",
                                       encoding="utf-8")
        encoder.save_weights(str(tmp / WEIGHTS_FILE))
        shutil.copyfile(vocab_path, tmp / VOCAB_FILE)
        _replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _replace_dir(src, dst):
    """Rename `src` to `dst`; an existing `dst` is moved aside first and removed after."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _load_bertbench(path):
    from bertbench.model.encoder import build_encoder

    try:
        meta = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        model_cfg = from_dict(ModelConfig, meta["model"], prefix="model.")
        lowercase = bool(meta["lowercase"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise BertbenchError(f"{path / CONFIG_FILE} is malformed ({err!r}); re-save the checkpoint "
                             f"with bertbench") from None
    for name in (WEIGHTS_FILE, VOCAB_FILE):
        if not (path / name).is_file():
            raise BertbenchError(f"{path} is missing {name}; re-save the checkpoint with bertbench")
    encoder = build_encoder(model_cfg)
    try:
        encoder.load_weights(str(path / WEIGHTS_FILE))
    except ValueError as err:
        message = str(err).splitlines()[0]
        raise BertbenchError(f"{path / WEIGHTS_FILE} does not fit its config ({message}); "
                             f"re-save the checkpoint") from None
    return LoadedEncoder(encoder, model_cfg, path / VOCAB_FILE, lowercase, "bertbench")


def load_encoder(path):
    """Load a bertbench checkpoint dir, a Hugging Face BERT dir, or a google-research/bert dir."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise BertbenchError(f"encoder checkpoint directory not found: {path}; pass a folder written "
                             f"by bertbench (with {CONFIG_FILE}) or a Hugging Face BERT folder")
    if (path / CONFIG_FILE).is_file():
        return _load_bertbench(path)
    if is_converted_dir(path):
        return LoadedEncoder(*load_converted(path))
    raise BertbenchError(f"{path} is not an encoder checkpoint: expected {CONFIG_FILE} (bertbench) or "
                         f"config.json + model.safetensors + vocab.txt (Hugging Face)")
