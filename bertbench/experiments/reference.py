"""A reference row: an external BERT checkpoint fine-tuned with an experiment's protocol.

`run EXP --reference-checkpoint DIR [--reference-name LABEL]` adds one row to EXP's table: the
checkpoint in DIR (a Hugging Face or google-research/bert folder, a keras-hub preset or a bertbench
encoder: whatever `bertbench.model.checkpoint.load_encoder` reads) fine-tuned on the same columns, with
the same scale settings, seeds, grid and proxies as the experiment's rows, so a reader sees where a
fully pretrained checkpoint lands on the same proxies. Its "pretraining run" is the conversion of DIR
into a bertbench encoder folder inside the runs folder (cached like any run).

Its id is a content hash of what defines the checkpoint (the weights' sha256, the config and vocabulary
files' content, the lowercasing), never of its path: moving DIR keeps the cache and the records. Its
model config (L/H/A, vocabulary, positions, lowercasing) comes from the checkpoint, not from the scale.
`inspect_reference` reads only JSON, the vocabulary and the weights' bytes (no TensorFlow), so bad
input is refused before anything is written; `references_in(records)` rebuilds the row from the
records alone (what `table` does).
"""

import dataclasses
import hashlib
import json
import struct
from pathlib import Path

from bertbench.config import ModelConfig, from_dict
from bertbench.errors import BertbenchError, ConfigError
from bertbench.experiments.ids import HASH_VERSION, content_id
from bertbench.experiments.schema import Variant
from bertbench.model.checkpoint import CONFIG_FILE, WEIGHTS_FILE, find_checkpoint
# the one home of the Hugging Face / google-research config rules (model_type, activation, lowercasing)
from bertbench.model.convert import (VOCAB_FILE, _hf_lowercase, _hf_model_config, _tf_checkpoint, is_converted_dir,
                                     is_keras_hub_preset)

KIND = "reference"  # the plan's kind of the row, and `kind` in the records' `reference` block
PREFIX = "reference:"  # a reference row's variant name is PREFIX + its id
FLAG = "--reference-checkpoint"
GENERIC_NAMES = ("model", "checkpoint", "encoder", "ckpt")  # folder names that say nothing of the model


@dataclasses.dataclass(frozen=True)
class Reference:
    """An external checkpoint, as the plan and the records know it."""

    id: str  # content hash (reference_payload): the row's pretraining id
    label: str  # the row says "Reference: <label> (external checkpoint)"
    path: str  # the folder as the user gave it (recorded, never hashed)
    sha256: str  # of the weights file (of its files' digests when the weights are several files)
    format: str  # "huggingface", "google-research", "keras-hub" or "bertbench"
    model: ModelConfig  # from the checkpoint's config
    lowercase: bool
    config_sha256: str = ""
    vocab_sha256: str = ""

    @property
    def variant(self):
        """The table row: after the experiment's rows, no paper number (paper_row "-"), no pretraining of ours."""
        return Variant(PREFIX + self.id, f"Reference: {self.label} (external checkpoint)", paper_row="-",
                       pretrain=False, note="an external checkpoint fine-tuned with the same protocol")

    def record(self):
        """The `reference` block of its records (pretraining and fine-tuning)."""
        return {"kind": KIND, "id": self.id, "label": self.label, "path": self.path, "sha256": self.sha256,
                "format": self.format, "config_sha256": self.config_sha256, "vocab_sha256": self.vocab_sha256,
                "lowercase": self.lowercase}


def is_reference(variant_name):
    return str(variant_name).startswith(PREFIX)


def reference_payload(weights_sha256, config_sha256, vocab_sha256, lowercase):
    """What a reference run depends on: the checkpoint's content (not its path, not its label)."""
    return {"hash_version": HASH_VERSION, "kind": KIND, "weights_sha256": weights_sha256,
            "config_sha256": config_sha256, "vocab_sha256": vocab_sha256, "lowercase": bool(lowercase)}


# ------------------------------------------------------------------------------------------
# Reading a checkpoint folder (no TensorFlow)


def _sha256(paths):
    """sha256 of one file; of '<name> <sha256>' lines over several (sorted by name)."""
    digests = []
    for path in sorted(paths, key=lambda p: p.name):
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        digests.append((path.name, digest.hexdigest()))
    if len(digests) == 1:
        return digests[0][1]
    return hashlib.sha256("".join(f"{name} {d}\n" for name, d in digests).encode()).hexdigest()


def _read_json(path, where):
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BertbenchError(f"{where}: {path} is not valid UTF-8 JSON ({err}); fix or replace the file") from None
    if not isinstance(data, dict):
        raise BertbenchError(f"{where}: {path} is not a JSON object; fix or replace the file")
    return data


def _check_safetensors(path, where):
    """A truncated safetensors file is refused now (its header names the bytes it needs), not mid-run."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        length = struct.unpack("<Q", head)[0] if len(head) == 8 else size
        try:
            header = json.loads(f.read(length)) if 8 + length <= size else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            header = None
    ends = [t["data_offsets"][1] for k, t in (header or {}).items()
            if k != "__metadata__" and isinstance(t, dict) and len(t.get("data_offsets") or ()) == 2]
    if header is None or 8 + length + max(ends, default=0) > size:
        raise BertbenchError(f"{where}: {path} is damaged (truncated or not safetensors); download or convert it again")


def _hf_weights(folder, where):
    """The weight files of a Hugging Face or google-research/bert folder (checked for presence)."""
    if (folder / "model.safetensors").is_file():
        _check_safetensors(folder / "model.safetensors", where)
        return [folder / "model.safetensors"]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set((_read_json(index, where).get("weight_map") or {}).values()))
        missing = [n for n in names if not (folder / n).is_file()]
        if not names or missing:
            raise BertbenchError(f"{where}: {index} names shards that are not there ({', '.join(missing) or 'none'}); "
                                 f"download every shard")
        for name in names:
            _check_safetensors(folder / name, where)
        return [folder / n for n in names]
    prefix = _tf_checkpoint(folder)
    if prefix:
        return [Path(prefix + ".index"), *sorted(Path(prefix).parent.glob(Path(prefix).name + ".data-*"))]
    raise BertbenchError(f"{where}: {folder} has no weights bertbench can read: expected model.safetensors "
                         f"(Hugging Face) or bert_model.ckpt.index (google-research/bert); convert PyTorch .bin "
                         f"weights to safetensors first")


def _converted(folder, where):
    """(format, config file, ModelConfig, vocab, lowercase, weights) of a HF / google-research folder."""
    cfg_file = folder / ("config.json" if (folder / "config.json").is_file() else "bert_config.json")
    try:
        model = _hf_model_config(folder, cfg_file.name)  # refuses a non-BERT config
        vocab = folder / VOCAB_FILE
        if not vocab.is_file():
            raise BertbenchError(f"{folder} has {cfg_file.name} but no {VOCAB_FILE}; add the WordPiece vocabulary")
        lowercase = _hf_lowercase(folder, vocab)
    except (TypeError, ValueError) as err:  # JSON or UTF-8 errors, values of the wrong type
        raise BertbenchError(f"{where}: {cfg_file.name} or tokenizer_config.json is unreadable ({err}); "
                             f"fix or replace it") from None
    except BertbenchError as err:
        raise BertbenchError(f"{where}: {err}") from None
    weights = _hf_weights(folder, where)
    fmt = "google-research" if weights[0].name.endswith(".index") else "huggingface"
    return fmt, cfg_file, model, vocab, lowercase, weights


def _keras_hub(folder, where):
    cfg_file = folder / "config.json"
    data = _read_json(cfg_file, where)
    if data.get("class_name") != "BertBackbone":
        raise BertbenchError(f"{where}: {folder} is a keras-hub preset of {data.get('class_name')}; only BERT "
                             f"checkpoints (BertBackbone) can be a reference")
    config = data.get("config") or {}
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    # BertBackbone computes tanh GELU with LayerNorm epsilon 1e-12 (bertbench.model.convert.from_keras_hub)
    model = {k: v for k, v in config.items() if k in fields} | {"activation": "gelu_approximate"}
    vocab = folder / "assets" / "tokenizer" / "vocabulary.txt"
    lowercase = True
    if (folder / "tokenizer.json").is_file():
        lowercase = bool((_read_json(folder / "tokenizer.json", where).get("config") or {}).get("lowercase", True))
    return "keras-hub", cfg_file, _model(model, where), vocab, lowercase, [folder / "model.weights.h5"]


def _bertbench(folder, where):
    meta = _read_json(folder / CONFIG_FILE, where)
    return ("bertbench", folder / CONFIG_FILE, _model(meta.get("model"), where), folder / VOCAB_FILE,
            bool(meta.get("lowercase", True)), [folder / WEIGHTS_FILE])


def _model(data, where):
    try:
        return from_dict(ModelConfig, data, prefix="model.")
    except ConfigError as err:
        raise BertbenchError(f"{where}: its model config is not a BERT config bertbench can build ({err})") from None


def _default_label(folder):
    name = folder.resolve().name
    return "/".join(folder.resolve().parts[-2:]) if name.lower() in GENERIC_NAMES else name


def inspect_reference(path, label=None):
    """The Reference of checkpoint folder `path` (validated: a one-line error for a missing folder, a
    folder without a loadable BERT checkpoint, a non-BERT config); reads no TensorFlow."""
    where = f"{FLAG} {path}"
    try:
        folder = find_checkpoint(path)
    except BertbenchError as err:
        raise BertbenchError(f"{FLAG}: {err}") from None
    if (folder / CONFIG_FILE).is_file():
        found = _bertbench(folder, where)
    elif is_keras_hub_preset(folder):
        found = _keras_hub(folder, where)
    elif is_converted_dir(folder):
        found = _converted(folder, where)
    else:
        raise BertbenchError(f"{where}: no BERT checkpoint there: expected config.json + model.safetensors + "
                             f"vocab.txt (Hugging Face), bert_config.json + bert_model.ckpt.* + vocab.txt "
                             f"(google-research/bert), a keras-hub BertBackbone preset or a bertbench encoder")
    fmt, cfg_file, model, vocab, lowercase, weights = found
    for needed in (cfg_file, vocab, *weights):
        if not needed.is_file():
            raise BertbenchError(f"{where}: {needed.name} is missing; copy the whole checkpoint folder")
    with open(vocab, encoding="utf-8", errors="replace") as f:
        tokens = sum(1 for _ in f)
    if tokens > model.vocabulary_size:
        raise BertbenchError(f"{where}: {vocab.name} has {tokens} tokens but the model only "
                             f"{model.vocabulary_size} embeddings; it is not this checkpoint's vocabulary")
    sha, cfg_sha, vocab_sha = _sha256(weights), _sha256([cfg_file]), _sha256([vocab])
    ref_id = content_id(reference_payload(sha, cfg_sha, vocab_sha, lowercase))
    return Reference(ref_id, label or _default_label(folder), str(path), sha, fmt, model, lowercase,
                     cfg_sha, vocab_sha)


# ------------------------------------------------------------------------------------------
# Plans and records


def check_fits(reference, finetunes):
    """Every fine-tuning run of the reference fits its position table (before anything runs)."""
    for ft in finetunes:
        if ft.finetune.max_seq_length > reference.model.max_sequence_length:
            raise ConfigError(f"{FLAG} {reference.path}: column '{ft.column}' fine-tunes at max_seq_length "
                              f"{ft.finetune.max_seq_length}, but the checkpoint has "
                              f"{reference.model.max_sequence_length} positions; pick a checkpoint with more")


def reference_fields(reference):
    """The `reference` block a record of the reference's runs carries ({} for the others)."""
    return {"reference": reference.record()} if reference else {}


def describe(reference):
    """What its "pretraining" does, for dry runs and progress lines."""
    m = reference.model
    return (f"convert {reference.path} ({reference.format}, L{m.num_layers} H{m.hidden_dim} A{m.num_heads}, "
            f"sha256 {reference.sha256[:12]}) into an encoder folder")


def references_in(records):
    """The References whose runs the records hold (pretraining or fine-tuning), by id, first seen first:
    `table` rebuilds the rows from them, no flag needed."""
    found = {}
    for r in records:
        block, model = r.get("reference"), (r.get("config") or {}).get("model")
        if not isinstance(block, dict) or block.get("kind") != KIND or not model or block.get("id") in found:
            continue
        found[block["id"]] = Reference(block["id"], block.get("label", ""), block.get("path", ""),
                                       block.get("sha256", ""), block.get("format", ""),
                                       from_dict(ModelConfig, model, prefix="model."), bool(block.get("lowercase")),
                                       block.get("config_sha256", ""), block.get("vocab_sha256", ""))
    return tuple(found.values())


def reference_notes(records, rows):
    """One footnote per reference row of the table (`rows`: its variant names)."""
    notes = []
    for ref in references_in(records):
        if ref.variant.name not in rows:
            continue
        m = ref.model
        notes.append(f"{ref.variant.row}: not pretrained by bertbench: the checkpoint {ref.path} ({ref.format}, "
                     f"weights sha256 {ref.sha256[:12]}, L{m.num_layers} H{m.hidden_dim} A{m.num_heads}, vocabulary "
                     f"{m.vocabulary_size:,}, {'uncased' if ref.lowercase else 'cased'}) fine-tuned with the "
                     f"experiment's protocol: the columns, scale settings, seeds and proxies of the no-pretraining row (no "
                     f"variant's overrides). Its size, data and pretraining differ "
                     f"from ours: it shows where a fully pretrained checkpoint lands, it is not an ablation, so it "
                     f"has no Δ and is outside the Holm family.")
    return notes
