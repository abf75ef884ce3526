"""One config system: frozen dataclasses, loaded from TOML, overridden with typed `key=value` strings.

Every field carries a comment with the reason for its default. Unknown keys and wrong types are
rejected (naming the closest valid key) before anything runs; impossible combinations are rejected
in `__post_init__`.
"""

import dataclasses
import math
import tomllib
import typing
from pathlib import Path

from bertbench.errors import ConfigError, did_you_mean, unknown_name
from bertbench.files import read_text_utf8
from bertbench.model.precision import PRECISIONS


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    vocabulary_size: int = 30522  # bert-base-uncased WordPiece vocabulary
    num_layers: int = 12  # L
    hidden_dim: int = 768  # H
    num_heads: int = 12  # A
    intermediate_dim: int = 0  # feed-forward size; 0 means 4H, as in the paper
    max_sequence_length: int = 512  # learned position embeddings, as in the paper
    num_segments: int = 2  # segment A / B embeddings
    dropout: float = 0.1  # hidden and attention dropout, the paper's value
    # "gelu" = exact erf form (Hugging Face checkpoints, `hidden_act: gelu`);
    # "gelu_approximate" = tanh form (google-research/bert, keras-hub).
    activation: str = "gelu"
    layer_norm_epsilon: float = 1e-12  # google-research/bert and HF BERT checkpoints
    attention: str = "bidirectional"  # "causal" for the paper's left-to-right (LTR) ablation
    initializer_range: float = 0.02  # truncated-normal std of google-research/bert

    def __post_init__(self):
        if self.intermediate_dim == 0:
            object.__setattr__(self, "intermediate_dim", 4 * self.hidden_dim)
        for name in ("vocabulary_size", "num_layers", "hidden_dim", "num_heads", "intermediate_dim",
                     "max_sequence_length", "num_segments"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"model.{name} must be positive, got {getattr(self, name)}")
        if self.hidden_dim % self.num_heads:
            raise ConfigError(f"model.hidden_dim={self.hidden_dim} is not divisible by "
                              f"model.num_heads={self.num_heads}; pick sizes where H % A == 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        _check_ranges(self, "model", {"layer_norm_epsilon": _POSITIVE, "initializer_range": _POSITIVE})
        _check_choice("model.activation", self.activation, ("gelu", "gelu_approximate"))
        _check_choice("model.attention", self.attention, ("bidirectional", "causal"))

    @property
    def head_dim(self):
        return self.hidden_dim // self.num_heads


# name -> (L, H, A). Sizes of the README and of the paper's Table 6 (named l{L}_h{H}_a{A}).
MODEL_SIZES = {
    "tiny": (2, 128, 2),
    "mini": (4, 256, 4),
    "small": (4, 512, 8),
    "medium": (8, 512, 8),
    "base": (12, 768, 12),
    "large": (24, 1024, 16),
    "l3_h768_a12": (3, 768, 12),
    "l6_h768_a3": (6, 768, 3),
    "l6_h768_a12": (6, 768, 12),
    "l12_h768_a12": (12, 768, 12),
    "l12_h1024_a16": (12, 1024, 16),
    "l24_h1024_a16": (24, 1024, 16),
}


def model_preset(name, **overrides):
    """The ModelConfig of a named size, with optional field overrides."""
    if name not in MODEL_SIZES:
        raise unknown_name("model preset", name, MODEL_SIZES)
    num_layers, hidden_dim, num_heads = MODEL_SIZES[name]
    fields = dict(num_layers=num_layers, hidden_dim=hidden_dim, num_heads=num_heads)
    fields.update(overrides)
    return ModelConfig(**fields)


OBJECTIVES = ("mlm+nsp", "mlm", "ltr")
INPUT_FORMATS = ("auto", "segment_pairs", "doc_sentences")  # pretrain.input_format (see PretrainConfig)


def default_input_format(objective):
    """What pretrain.input_format "auto" picks: the format each objective had before the field existed."""
    return "segment_pairs" if objective == "mlm+nsp" else "doc_sentences"


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    # "mlm+nsp" = BERT; "mlm" = No NSP; "ltr" = left-to-right LM & No NSP (OpenAI GPT-style).
    objective: str = "mlm+nsp"
    corpus: str = "sample"  # a path (file or folder), or "sample" for the bundled real-text sample
    vocab: str = "sample"  # a vocab.txt path, or "sample" for the bundled vocabulary
    lowercase: bool = True  # uncased model, as for GLUE/SQuAD in the paper
    max_seq_length: int = 128  # phase-1 length of the paper (90% of steps)
    short_seq_prob: float = 0.1  # google-research/bert: shorter targets to reduce train/test mismatch
    # Instances: "segment_pairs" = google-research/bert's [CLS] A [SEP] B [SEP], B the continuation or half
    # the time another document's text (without NSP its label goes unused: the paper's "No NSP" removed the
    # loss, not the pairs, as RoBERTa reads it); "doc_sentences" = RoBERTa's DOC-SENTENCES, contiguous whole
    # sentences of ONE document packed to max_seq_length as one segment (no pairs, so no NSP); "auto" = the
    # format of each objective before this field: pairs for mlm+nsp, doc_sentences for mlm and ltr.
    input_format: str = "auto"
    masked_lm_prob: float = 0.15  # the paper's 15%
    max_predictions_per_seq: int = 0  # 0 = ceil(masked_lm_prob * max_seq_length)
    masking: tuple[float, float, float] = (0.8, 0.1, 0.1)  # MASK / SAME / RND fractions (Table 8)
    whole_word_masking: bool = False  # mask every piece of a chosen word together
    dynamic_masking: bool = True  # fresh masks each epoch in tf.data (RoBERTa); False = static
    dupe_factor: int = 10  # static masking: copies of the corpus with different masks
    batch_size: int = 256  # the paper's batch
    num_steps: int = 1_000_000  # the paper's 1M steps
    warmup_steps: int = 10_000  # the paper's warmup
    learning_rate: float = 1e-4  # the paper's peak learning rate
    weight_decay: float = 0.01  # AdamW, not applied to LayerNorm and biases
    adam_beta_1: float = 0.9
    adam_beta_2: float = 0.999
    adam_epsilon: float = 1e-6  # google-research/bert's optimizer
    clip_norm: float = 1.0  # global-norm clipping, google-research/bert
    phase2_max_seq_length: int = 512  # the paper's second phase length
    phase2_fraction: float = 0.0  # fraction of steps at phase-2 length; the paper used 0.1
    heldout_fraction: float = 0.01  # documents held out for the MLM perplexity of Table 6
    precision: str = "auto"  # per device (model/precision.py); float32, mixed_bfloat16, mixed_float16
    jit_compile: bool = False  # XLA; helps only the smallest shapes on CPU
    checkpoint_every: int = 1000  # steps between checkpoints
    keep_checkpoints: int = 3  # newest checkpoints kept (the last good one is never removed: pretraining/checkpoints.py)
    log_every: int = 50  # steps between logged metrics
    seed: int = 0

    def __post_init__(self):
        _check_choice("pretrain.objective", self.objective, OBJECTIVES)
        _check_ranges(self, "pretrain", _PRETRAIN_RANGES)
        _check_choice("pretrain.precision", self.precision, PRECISIONS)
        _check_choice("pretrain.input_format", self.input_format, INPUT_FORMATS)
        if self.input_format == "doc_sentences" and self.nsp:
            raise ConfigError("pretrain.input_format='doc_sentences' packs one segment, with no sentence pairs "
                              "for next-sentence prediction; use objective 'mlm' or 'ltr' with it, or "
                              "input_format 'segment_pairs' with 'mlm+nsp'")
        if len(self.masking) != 3 or any(f < 0 for f in self.masking) or abs(sum(self.masking) - 1) > 1e-6:
            raise ConfigError(f"pretrain.masking must be three non-negative MASK/SAME/RND fractions "
                              f"summing to 1, got {list(self.masking)}")
        if not 0.0 < self.masked_lm_prob < 1.0:
            raise ConfigError(f"pretrain.masked_lm_prob must be in (0, 1), got {self.masked_lm_prob}")
        for name in ("max_seq_length", "batch_size", "num_steps", "dupe_factor", "checkpoint_every",
                     "keep_checkpoints", "log_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"pretrain.{name} must be positive, got {getattr(self, name)}")
        if self.max_seq_length < 8:
            raise ConfigError(f"pretrain.max_seq_length must be at least 8, got {self.max_seq_length}")
        if not 0.0 <= self.phase2_fraction < 1.0:
            raise ConfigError(f"pretrain.phase2_fraction must be in [0, 1), got {self.phase2_fraction}")
        if self.warmup_steps < 0 or self.warmup_steps > self.num_steps:
            raise ConfigError(f"pretrain.warmup_steps must be in [0, num_steps={self.num_steps}], "
                              f"got {self.warmup_steps}")

    @property
    def nsp(self):
        return self.objective == "mlm+nsp"

    @property
    def instance_format(self):
        """The input format the instances have: input_format with "auto" resolved for the objective."""
        return default_input_format(self.objective) if self.input_format == "auto" else self.input_format

    @property
    def segment_pairs(self):
        return self.instance_format == "segment_pairs"

    def predictions_per_seq(self, seq_length=None):
        """max_predictions_per_seq, resolved for a sequence length (the phase-2 length needs more)."""
        seq_length = seq_length or self.max_seq_length
        if self.max_predictions_per_seq and seq_length == self.max_seq_length:
            return self.max_predictions_per_seq
        return max(1, math.ceil(self.masked_lm_prob * seq_length))


FEATURE_LAYERS = ("", "embeddings", "second_to_last", "last", "sum_last_four", "concat_last_four", "sum_all")

FINETUNE_PADDINGS = ("full", "dynamic", "bucketed")  # finetune.padding (see FinetuneConfig)


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    task: str = "mrpc"
    learning_rate: float = 2e-5  # from the paper's grid {5e-5, 3e-5, 2e-5}
    batch_size: int = 32  # from the paper's grid {16, 32}
    epochs: float = 3.0  # from the paper's grid {2, 3, 4}
    warmup_fraction: float = 0.1  # linear warmup over 10% of steps, then linear decay
    weight_decay: float = 0.01
    max_seq_length: int = 128  # GLUE/NER; SQuAD uses 384
    doc_stride: int = 128  # SQuAD sliding window stride
    max_query_length: int = 64  # SQuAD
    max_answer_length: int = 30  # SQuAD n-best search
    n_best_size: int = 20  # SQuAD n-best search
    dropout: float = 0.1  # classifier and encoder dropout
    head: str = "default"  # "bilstm" adds a randomly initialised BiLSTM (Table 5 "+ BiLSTM")
    feature_layers: str = ""  # "" = fine-tune; else a frozen-encoder feature choice (Table 7)
    # Feature-based runs train a randomly initialised BiLSTM on frozen features: the encoder's
    # fine-tuning rates (2e-5..5e-5) are far too small for it, so it has its own rate and epochs.
    feature_learning_rate: float = 1e-3
    feature_epochs: float = 0.0  # 0 = `epochs`
    lowercase: bool = True  # False (cased) for NER, as in the paper
    document_context: bool = False  # NER: fill windows with neighbouring sentences of the document
    max_train_examples: int = 0  # 0 = all; small scales cap training sets
    max_eval_examples: int = 0  # 0 = all
    source: str = "files"  # "files" (standard layouts under the data dir) or "tfds" (prepared TFDS)
    # Training batches: "full" (every row at max_seq_length), "dynamic" (each batch cut to its longest
    # row: same rows and order, ~2x faster on short-sentence tasks, but dropout masks are drawn for the
    # cut shape, so a run moves like another seed's) or "bucketed" (rows of similar length batched
    # together, then cut). Kinds whose numbers depend on the padding (SQuAD spans) always use "full".
    padding: str = "full"
    # The dtype policy of the fine-tuning (names of model/precision.py; "auto": bf16 where the device has
    # it). float32 by default: records and run ids of the fine-tunings from before this field stay valid.
    precision: str = "float32"
    seed: int = 0

    @property
    def effective_learning_rate(self):
        """The rate actually used: the BiLSTM's own in feature-based runs."""
        return self.feature_learning_rate if self.feature_layers else self.learning_rate

    @property
    def effective_epochs(self):
        return self.feature_epochs if self.feature_layers and self.feature_epochs else self.epochs

    def __post_init__(self):
        _check_choice("finetune.source", self.source, ("files", "tfds"))
        _check_choice("finetune.padding", self.padding, FINETUNE_PADDINGS)
        _check_choice("finetune.precision", self.precision, PRECISIONS)
        _check_ranges(self, "finetune", _FINETUNE_RANGES)
        _check_choice("finetune.head", self.head, ("default", "bilstm"))
        _check_choice("finetune.feature_layers", self.feature_layers, FEATURE_LAYERS)
        if self.feature_learning_rate <= 0 or self.feature_epochs < 0:
            raise ConfigError("finetune.feature_learning_rate must be positive and finetune.feature_epochs "
                              f"non-negative, got {self.feature_learning_rate} and {self.feature_epochs}")
        for name in ("learning_rate", "batch_size", "epochs", "max_seq_length", "doc_stride",
                     "max_query_length", "max_answer_length", "n_best_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"finetune.{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ConfigError(f"finetune.warmup_fraction must be in [0, 1), got {self.warmup_fraction}")


# Ranges of the numeric fields that the __post_init__ checks above do not cover: (low, high, closed
# at low, closed at high); a float must also be finite. One table per section, one message shape.
_POSITIVE, _NON_NEGATIVE = (0, math.inf, False, False), (0, math.inf, True, False)
_PROBABILITY, _FRACTION = (0, 1, True, True), (0, 1, True, False)
_PRETRAIN_RANGES = {
    "short_seq_prob": _PROBABILITY, "max_predictions_per_seq": _NON_NEGATIVE, "learning_rate": _POSITIVE,
    "weight_decay": _NON_NEGATIVE, "adam_beta_1": _FRACTION, "adam_beta_2": _FRACTION,
    "adam_epsilon": _POSITIVE, "clip_norm": _NON_NEGATIVE,  # 0 = no clipping
    "phase2_max_seq_length": (8, math.inf, True, False), "heldout_fraction": _FRACTION, "seed": _NON_NEGATIVE,
}
_FINETUNE_RANGES = {
    "weight_decay": _NON_NEGATIVE, "dropout": _FRACTION, "max_train_examples": _NON_NEGATIVE,
    "max_eval_examples": _NON_NEGATIVE, "seed": _NON_NEGATIVE,
}


def _check_ranges(config, section, ranges):
    """A ConfigError naming `section.field` for the first value outside its range (or not finite)."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{section}.{field.name} must be a finite number, got {value}; set a number")
        if field.name not in ranges or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        low, high, low_closed, high_closed = ranges[field.name]
        if (value < low or value > high or (value == low and not low_closed)
                or (value == high and not high_closed)):
            bound = f"{'>=' if low_closed else '>'} {low}" if high == math.inf else \
                f"in {'[' if low_closed else '('}{low}, {high}{']' if high_closed else ')'}"
            raise ConfigError(f"{section}.{field.name} must be {bound}, got {value}; "
                              f"set it with --set {section}.{field.name}=VALUE")


def _check_choice(key, value, choices):
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not valid{did_you_mean(value, choices)}; "
                          f"choose one of: {', '.join(repr(c) for c in choices)}")


# ---------------------------------------------------------------------------------------------
# Generic loading: dicts / TOML / key=value overrides -> frozen dataclasses, with type checks.


def to_dict(config):
    """A plain, JSON-serialisable dict of a (nested) config dataclass; tuples become lists."""
    return _jsonable(dataclasses.asdict(config))


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def from_dict(cls, data, prefix=""):
    """Build dataclass `cls` from a dict, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or cls.__name__} must be a table of settings, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in hints or key not in names:
            close = did_you_mean(f"{prefix}{key}", [f"{prefix}{n}" for n in names])
            raise ConfigError(f"unknown setting '{prefix}{key}'{close}; see the fields of {cls.__name__} in "
                              f"bertbench/config.py")
        kwargs[key] = _coerce(hints[key], value, f"{prefix}{key}")
    return cls(**kwargs)


def _coerce(hint, value, key):
    """Check `value` against type hint `hint` and convert what TOML cannot express (tuples)."""
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        return from_dict(hint, value, prefix=key + ".")
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, key) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{key} must have {len(args)} items, got {len(value)}: {list(value)}")
        return tuple(_coerce(a, v, key) for a, v in zip(args, value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(f"{key} must be {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


def parse_override(text):
    """'a.b=value' -> (['a', 'b'], value), the value parsed as TOML (bare words are strings)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not key=value (e.g. model.num_layers=4)")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    if not key:
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word such as mlm+nsp
    return key.split("."), value


def apply_overrides(config, overrides):
    """A copy of dataclass `config` with dotted `key=value` overrides applied (typed, checked)."""
    data = dataclasses.asdict(config)
    for text in overrides:
        path, value = parse_override(text)
        merge_into(data, _nest(path, value))
    return from_dict(type(config), data)


def merge_into(base, update):
    """Recursively merge dict `update` into dict `base` in place; returns `base`."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_into(base[key], value)
        else:
            base[key] = value
    return base


def _nest(path, value):
    out = value
    for part in reversed(path):
        out = {part: out}
    return out


def load_toml(path):
    """Parse a TOML file into a dict, with one-line errors for missing or malformed files."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}; check the path")
    try:
        return tomllib.loads(read_text_utf8(path))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: malformed TOML ({err}); fix the file") from None
