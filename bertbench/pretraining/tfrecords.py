"""Pretraining instances as TFRecords: the feature spec, static masking into the record layout, the
writer and reader of shards, the `pretrain-data` writer (corpus -> shards + summary.json), and
TFRecord shards as pretraining input (`TFRecordCorpus`: detected by content, checked before use).

TFRecords use google-research/bert's feature names and types, so its `run_pretraining.py` input
function (plain `tf.io.parse_single_example`) reads them, and `pretrain --corpus DIR` reads theirs
(`create_pretraining_data.py`'s) as well as ours. The pieces before: the corpus
(`bertbench.pretraining.inputs`), instances (`bertbench.pretraining.instances`), masks
(`bertbench.pretraining.masking`); the training loop's reader of shards is
`bertbench.pretraining.dataset`.
"""

import dataclasses
import json
import os
import struct
from pathlib import Path

import numpy as np

from bertbench.config import default_input_format, to_dict
from bertbench.errors import BertbenchError
from bertbench.files import write_json_atomic
from bertbench.pretraining.inputs import PretrainingCorpus
from bertbench.pretraining.instances import create_instances
from bertbench.pretraining.masking import mask_tokens, spec_from_tokenizer
from bertbench.text.corpus import corpus_files

SUMMARY_FILE = "summary.json"
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".record", ".records")  # names that claim the format
INT_FEATURES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids",
                "next_sentence_labels")
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


def feature_spec(seq_length, max_predictions, names=None):
    """google-research/bert's `name_to_features` for tf.io.parse_single_example (`names`: a subset)."""
    import tensorflow as tf

    ints = lambda size: tf.io.FixedLenFeature([size], tf.int64)  # noqa: E731
    spec = {"input_ids": ints(seq_length), "input_mask": ints(seq_length), "segment_ids": ints(seq_length),
            "masked_lm_positions": ints(max_predictions), "masked_lm_ids": ints(max_predictions),
            "masked_lm_weights": tf.io.FixedLenFeature([max_predictions], tf.float32),
            "next_sentence_labels": ints(1)}
    return spec if names is None else {name: spec[name] for name in names}


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


def read_tfrecords(paths, seq_length, max_predictions, names=None):
    """tf.data.Dataset of parsed examples (dicts under the TFRecord names), in file order."""
    import tensorflow as tf

    paths = [str(p) for p in paths]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise BertbenchError(f"TFRecord file not found: {missing[0]}; run `bertbench pretrain-data` first")
    spec = feature_spec(seq_length, max_predictions, names)
    return tf.data.TFRecordDataset(paths).map(lambda r: tf.io.parse_single_example(r, spec))


def write_pretraining_data(cfg, tokenizer, out_dir, num_shards=1, max_documents=None):
    """Corpus -> TFRecord shards + summary.json in out_dir (static masks, dupe_factor copies).

    Every document of `cfg.corpus` (up to max_documents) is used: no held-out split here.
    """
    if tfrecord_files(corpus_files(cfg.corpus)):  # binary files are refused there too
        raise CorpusFormatError(f"{cfg.corpus} holds TFRecords, not text; pretrain from them with "
                                f"`bertbench pretrain --corpus {cfg.corpus}`, or give pretrain-data a text corpus")
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
               "input_format": cfg.instance_format, "shards": [p.name for p in paths], "config": to_dict(cfg)}
    summary.update(masking_summary(arrays, inst, spec) if cfg.objective != "ltr"
                   else {"is_next_fraction": 0.0})
    if cfg.nsp:  # one-sentence chunks always get a random B (the original's rule)
        free = inst.sources[:, 6] == 0
        summary["forced_not_next_fraction"] = float(1 - free.mean())
        summary["is_next_fraction_unforced"] = float((inst.next_sentence_labels[free] == 0).mean())
    write_json_atomic(Path(out_dir) / SUMMARY_FILE, summary)
    return summary


# ---- TFRecord shards as pretraining input (`pretrain --corpus DIR`) ------------------------------


class CorpusFormatError(BertbenchError):
    """A corpus file that cannot be read as what it claims to be (a usage error: exit 2)."""

    exit_code = 2


def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def masked_crc32c(data):
    """The TFRecord framing's checksum: CRC-32C (Castagnoli), rotated and offset ("masked")."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _framed(head):
    """Whether `head` starts with a TFRecord frame: uint64 length, uint32 masked CRC-32C of it."""
    return len(head) >= 12 and struct.unpack("<I", head[8:12])[0] == masked_crc32c(head[:8])


def file_kind(path):
    """"tfrecord" or "text" (plain or gzip), from the file's first bytes; a file that is neither, or
    whose name claims TFRecord without its framing, is a one-line error."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(4096)
    if _framed(head) or (not head and path.suffix in TFRECORD_SUFFIXES):
        return "tfrecord"
    if path.suffix in TFRECORD_SUFFIXES:
        raise CorpusFormatError(f"{path} is named like a TFRecord file but does not start with a TFRecord "
                             f"frame (length + CRC-32C); rewrite it with `bertbench pretrain-data`")
    if head[:2] != b"\x1f\x8b" and b"\0" in head:  # gzip is text to the corpus reader
        raise CorpusFormatError(f"{path} is neither text nor a TFRecord file (binary content); remove it "
                             f"from the corpus folder")
    return "text"


def tfrecord_files(files):
    """The TFRecord files among a corpus's `files` when they are TFRecords (a `pretrain-data` folder's
    summary.json may lie beside them), else None (a text corpus). Mixed folders are an error."""
    kinds = {Path(f): file_kind(f) for f in files}
    records = [f for f, kind in kinds.items() if kind == "tfrecord"]
    if not records:
        return None
    others = [f for f, kind in kinds.items() if kind != "tfrecord" and f.name != SUMMARY_FILE]
    if others:
        raise CorpusFormatError(f"{others[0]} is not a TFRecord file but {records[0]} is; a corpus folder "
                             f"holds text files or TFRecord shards, not both")
    return records


@dataclasses.dataclass(frozen=True)
class TFRecordCorpus:
    """Pretraining input from TFRecord shards, google-research/bert layout (ours or the original's):
    the face of `PretrainingCorpus` the loop uses (tokenizer, stats, unigram_baseline). The examples
    fix the sequence length and predictions per sequence; there is no held-out split."""

    paths: tuple
    tokenizer: object
    seq_length: int
    max_predictions: int
    features: tuple  # the feature names read (those the objective needs)
    records: int

    def adapt(self, cfg):
        """The PretrainConfig of a run on these records: their sequence length and predictions per
        sequence, one phase (the records have one length); the run's summary records it."""
        return dataclasses.replace(cfg, max_seq_length=self.seq_length, phase2_fraction=0.0,
                                   max_predictions_per_seq=self.max_predictions)

    def stats(self):
        return {"format": "tfrecord", "files": [str(p) for p in self.paths], "records": self.records,
                "seq_length": self.seq_length, "max_predictions_per_seq": self.max_predictions,
                "train_documents": None, "heldout_documents": 0}

    def unigram_baseline(self):
        return {}


def open_tfrecords(paths, tokenizer, objective, input_format="auto"):
    """A checked TFRecordCorpus: the layout from the first example, then every record of every file
    read once (framing, checksums, feature shapes, token ids inside the vocabulary). The records hold
    instances of one input format: an explicit `input_format` must be theirs."""
    import tensorflow as tf

    paths = tuple(Path(p) for p in paths)
    try:
        first = next(iter(tf.data.TFRecordDataset([str(p) for p in paths])), None)
    except tf.errors.OpError as err:
        raise CorpusFormatError(f"{paths[0]}: unreadable TFRecord file ({_first_line(err)})") from None
    if first is None:
        raise CorpusFormatError(f"the TFRecord files {paths[0]}... hold no records; write them with "
                             f"`bertbench pretrain-data`")
    seq_length, max_predictions = _layout(first.numpy(), paths[0], objective)
    names = _needed(objective)
    _check_summary(paths[0].parent / SUMMARY_FILE, objective, input_format)
    records = sum(_scan(path, seq_length, max_predictions, names, tokenizer.vocabulary_size) for path in paths)
    return TFRecordCorpus(paths, tokenizer, seq_length, max_predictions, names, records)


def _needed(objective):
    names = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids", "masked_lm_weights")
    return names + ("next_sentence_labels",) if objective == "mlm+nsp" else names


def _first_line(err):
    return str(getattr(err, "message", err)).strip().splitlines()[0]


def _layout(serialized, path, objective):
    """(seq_length, max_predictions) of one serialized tf.train.Example; missing features are errors."""
    import tensorflow as tf

    try:
        feature = tf.train.Example.FromString(serialized).features.feature
    except Exception:  # noqa: BLE001 (protobuf's DecodeError)
        raise CorpusFormatError(f"{path}: its records are not tf.train.Example protos; pretraining reads "
                             f"google-research/bert TFRecords (`bertbench pretrain-data`)") from None
    for name in _needed(objective):
        kind = "float_list" if name == "masked_lm_weights" else "int64_list"
        if name not in feature or feature[name].WhichOneof("kind") != kind:
            raise CorpusFormatError(f"{path}: examples have no {kind} feature '{name}', which objective "
                                 f"'{objective}' needs; write them with `bertbench pretrain-data --objective "
                                 f"{objective}` (google-research/bert's layout)")
    return len(feature["input_ids"].int64_list.value), len(feature["masked_lm_ids"].int64_list.value)


def _check_summary(path, objective, input_format="auto"):
    """pretrain-data's summary.json names the objective and input format the records were built for
    (without one, google-research/bert's records: segment pairs)."""
    config = json.loads(path.read_text(encoding="utf-8")).get("config", {}) if path.is_file() else {}
    written = config.get("objective")
    held = config.get("input_format", "auto")
    held = default_input_format(written or "mlm+nsp") if held == "auto" else held
    if input_format not in ("auto", held):
        raise CorpusFormatError(f"{path.parent} holds {held} instances, not {input_format}; pretrain from "
                                f"it with pretrain.input_format={held} (or auto), or from a text corpus")
    if objective == "mlm+nsp" and written not in (None, "mlm+nsp"):
        raise CorpusFormatError(f"{path.parent} holds records written for objective '{written}' (no NSP "
                             f"pairs); pretrain with --objective {written}, or rewrite them with "
                             f"`bertbench pretrain-data --objective mlm+nsp`")


def _scan(path, seq_length, max_predictions, names, vocabulary_size):
    """Records in `path`, each parsed; a corrupt or misshapen record or an id outside the vocabulary
    is a one-line error."""
    import tensorflow as tf

    spec = feature_spec(seq_length, max_predictions, names)

    def step(state, example):
        top = tf.maximum(tf.reduce_max(example["input_ids"]), tf.reduce_max(example["masked_lm_ids"]))
        return state[0] + 1, tf.maximum(state[1], top)

    dataset = tf.data.TFRecordDataset([str(path)]).map(lambda r: tf.io.parse_single_example(r, spec))
    try:
        count, top = dataset.reduce((tf.constant(0, tf.int64), tf.constant(0, tf.int64)), step)
    except tf.errors.OpError as err:
        raise CorpusFormatError(f"{path}: unreadable as google-research/bert TFRecords of length {seq_length} "
                             f"({_first_line(err)}); rewrite it with `bertbench pretrain-data`") from None
    if int(top) >= vocabulary_size:
        raise CorpusFormatError(f"{path}: token id {int(top)} is outside the {vocabulary_size}-token vocabulary; "
                             f"pass the vocabulary the records were written with (--vocab)")
    return int(count)
