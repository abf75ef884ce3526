"""Encoder checkpoints: bertbench's own directory format, and the one door every format comes in by.

A bertbench encoder checkpoint is a directory:
    bertbench_encoder.json  {"format", "version", "model": to_dict(ModelConfig), "lowercase", "extra",
                             "weights_sha256": of encoder.weights.h5, so a damaged copy is caught}
    encoder.weights.h5      BertEncoder.save_weights
    vocab.txt               the WordPiece vocabulary the token ids refer to
`load_encoder` also reads (bertbench.model.convert) a keras-hub preset folder
(`BertBackbone.save_to_preset` + its tokenizer), a Hugging Face-layout BERT directory (config.json,
model.safetensors, vocab.txt; no PyTorch needed) and a google-research/bert TF1 release
(bert_config.json, bert_model.ckpt.*, vocab.txt). Nothing is downloaded: a hub name such as
`bert-base-uncased` gets a message saying how to fetch the folder first (`find_checkpoint`).
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from bertbench.config import ModelConfig, from_dict, to_dict
from bertbench.errors import BertbenchError
from bertbench.files import make_temp_dir
from bertbench.model.convert import (VOCAB_FILE, damaged, is_converted_dir, is_keras_hub_preset, load_converted,
                                     load_keras_hub_preset, model_config_of, reason_of)

CONFIG_FILE = "bertbench_encoder.json"
WEIGHTS_FILE = "encoder.weights.h5"
FORMAT_VERSION = 1
REDO = "rerun the pretraining (or export) that wrote it, or copy it again from an intact copy"


@dataclasses.dataclass
class LoadedEncoder:
    encoder: object  # bertbench.model.encoder.BertEncoder
    model_cfg: ModelConfig
    vocab_path: Path
    lowercase: bool
    source: str  # "bertbench", "keras-hub", "huggingface" or "google-research"
    pretraining: dict = None  # bertbench: what the pretraining saved with it (objective, steps, precision)


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
    tmp = make_temp_dir(out_dir.parent, prefix=f".{out_dir.name}.tmp-")  # usual modes, not mkdtemp's 0700
    try:
        encoder.save_weights(str(tmp / WEIGHTS_FILE))
        meta["weights_sha256"] = _sha256(tmp / WEIGHTS_FILE)
        shutil.copyfile(vocab_path, tmp / VOCAB_FILE)
        meta["vocab_sha256"] = _sha256(tmp / VOCAB_FILE)  # a damaged vocab would tokenize silently wrong
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n",
                                       encoding="utf-8")
        _replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _remove_stale_staging(out_dir)
    return out_dir


def _replace_dir(src, dst):
    """Rename `src` to `dst`; an existing `dst` is moved aside first and removed after (put back
    when the rename fails, so a failed save keeps the previous checkpoint)."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
    try:
        os.replace(src, dst)
    except BaseException:
        if old is not None and not dst.exists():
            with contextlib.suppress(OSError):  # never hide the error that caused it
                os.replace(old, dst)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_stale_staging(out_dir):
    """Remove the `.<name>.tmp-<pid>-*` / `.<name>.old-<pid>` folders beside `out_dir` that a save
    killed midway left (their process is gone), once a later save has succeeded."""
    for pattern in (f".{out_dir.name}.tmp-*", f".{out_dir.name}.old-*"):
        for path in out_dir.parent.glob(pattern):
            pid = path.name.split(".tmp-" if ".tmp-" in path.name else ".old-")[-1].split("-")[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_bertbench(path):
    from bertbench.model.encoder import build_encoder

    try:
        meta = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        model_cfg = from_dict(ModelConfig, meta["model"], prefix="model.")
        lowercase = bool(meta["lowercase"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise BertbenchError(f"{path / CONFIG_FILE} is malformed ({err!r}); re-save the checkpoint "
                             f"with bertbench") from None
    for name in (WEIGHTS_FILE, VOCAB_FILE):
        if not (path / name).is_file():
            raise BertbenchError(f"{path} is missing {name}; re-save the checkpoint with bertbench")
    weights = path / WEIGHTS_FILE
    for name, key in ((WEIGHTS_FILE, "weights_sha256"), (VOCAB_FILE, "vocab_sha256")):
        if meta.get(key) not in (None, _sha256(path / name)):  # checkpoints from before the field have none
            raise damaged(path / name, f"its SHA-256 differs from the one saved in {CONFIG_FILE}", REDO)
    encoder = build_encoder(model_cfg)
    try:
        encoder.load_weights(str(weights))
    except ValueError as err:
        message = str(err).splitlines()[0]
        raise BertbenchError(f"{weights} does not fit its config ({message}); "
                             f"re-save the checkpoint") from None
    except (OSError, KeyError, RuntimeError) as err:  # h5py: truncated, not HDF5, broken structure
        raise damaged(weights, reason_of(err), REDO) from None
    return LoadedEncoder(encoder, model_cfg, path / VOCAB_FILE, lowercase, "bertbench", meta.get("extra") or {})


# What `--init` takes, for the commands' help texts.
INIT_HELP = ("encoder checkpoint folder: bertbench (pretrain's <out>/encoder, with bertbench_encoder.json), "
             "keras-hub preset (BertBackbone.save_to_preset + BertTokenizer.save_to_preset), Hugging Face "
             "(config.json + model.safetensors + vocab.txt) or google-research/bert TF1 (bert_config.json + "
             "bert_model.ckpt.* + vocab.txt); hub names are not downloaded")
_HUB_NAME = re.compile(r"(hf|kaggle)://[\w./-]+|[A-Za-z0-9][\w.-]*(/[\w.-]+)?")  # name or org/name


def _fetch_hint(name):
    """How to download the hub model `name` into a folder that --init takes."""
    local = name.rstrip("/").split("/")[-1]
    if name.startswith("kaggle://") or ("_" in name and "-" not in name and "/" not in name):
        return (f"with keras-hub where there is network: keras_hub.models.BertBackbone.from_preset('{name}')"
                f".save_to_preset('{local}') and the same with keras_hub.models.BertTokenizer, then pass "
                f"--init {local}")
    name = name.removeprefix("hf://")
    return (f"with `huggingface-cli download {name} --local-dir {local}` where there is network (the folder "
            f"needs model.safetensors), then pass --init {local}")


def find_checkpoint(path):
    """`path` as an existing folder; a missing one is a one-line error (with a download hint for a
    model hub name such as bert-base-uncased: bertbench never downloads)."""
    folder = Path(path).expanduser()
    if folder.is_dir():
        return folder
    if folder.exists():
        raise BertbenchError(f"encoder checkpoint {path} is a file; pass its folder")
    if _HUB_NAME.fullmatch(str(path)) and not str(path).startswith("."):
        raise BertbenchError(f"encoder checkpoint folder not found: {path}; if '{path}' is a model hub name, "
                             f"bertbench does not download it: fetch it {_fetch_hint(str(path))}")
    raise BertbenchError(f"encoder checkpoint folder not found: {path}; pass a folder written by bertbench "
                         f"(pretrain's <out>/encoder), a keras-hub preset, or a Hugging Face or "
                         f"google-research/bert BERT folder")


def load_encoder(path):
    """Load a bertbench checkpoint, a keras-hub preset, a Hugging Face or a google-research/bert folder."""
    path = find_checkpoint(path)
    if (path / CONFIG_FILE).is_file():
        return _load_bertbench(path)
    if is_keras_hub_preset(path):
        return LoadedEncoder(*load_keras_hub_preset(path))
    if is_converted_dir(path):
        return LoadedEncoder(*load_converted(path))
    raise BertbenchError(f"{path} is not an encoder checkpoint: expected {CONFIG_FILE} (bertbench), "
                         f"config.json + model.weights.h5 (keras-hub preset), config.json + "
                         f"model.safetensors + vocab.txt (Hugging Face) or bert_config.json + "
                         f"bert_model.ckpt.* (google-research/bert)")
