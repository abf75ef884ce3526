"""Encoders from other formats: keras-hub transfer (both ways), keras-hub preset folders
(`BertBackbone.save_to_preset`: config.json + model.weights.h5, and the tokenizer's
assets/tokenizer/vocabulary.txt), Hugging Face BERT folders (config.json + model.safetensors +
vocab.txt, no PyTorch needed) and google-research/bert releases (bert_config.json +
bert_model.ckpt.* + vocab.txt). `bertbench.model.checkpoint.load_encoder` calls
`load_keras_hub_preset` and `load_converted`; bertbench's own checkpoint format lives there, the
way back out (export) in bertbench.model.export.
"""

import dataclasses
import inspect
import json
import warnings

from bertbench.config import ModelConfig
from bertbench.errors import BertbenchError

VOCAB_FILE = "vocab.txt"  # the WordPiece vocabulary, in every format (bertbench's too)
# Hugging Face `hidden_act` -> our activation. "gelu" in HF is the exact erf form.
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_approximate", "gelu_fast": "gelu_approximate",
                  "gelu_pytorch_tanh": "gelu_approximate"}


def damaged(path, reason, fix="re-export it, or copy it again from an intact copy"):
    """The one-line error for a weights file that cannot be read as it was written (truncated,
    bit-flipped): it names the file, what the reader said, and the fix."""
    return BertbenchError(f"{path} is damaged ({reason}); {fix}")


def reason_of(err):
    """The first line of what a reader (h5py, safetensors, TensorFlow) said about a file."""
    text = getattr(err, "message", None) or (err.args[0] if isinstance(err, KeyError) and err.args else str(err))
    return (str(text).strip() or type(err).__name__).splitlines()[0]


def model_config_of(encoder):
    """The ModelConfig a BertEncoder was built with (ModelConfig's fields are the encoder's)."""
    return ModelConfig(**{field.name: getattr(encoder, field.name) for field in dataclasses.fields(ModelConfig)})


def is_converted_dir(path):
    """Does `path` look like a Hugging Face or google-research/bert BERT folder?"""
    return (path / "config.json").is_file() or (path / "bert_config.json").is_file()


def is_keras_hub_preset(path):
    """Does `path` hold a keras-hub preset (its config.json is a serialized Keras object)?"""
    try:
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "class_name" in data and "config" in data


# ------------------------------------------------------------------------------------------
# keras-hub transfer (layer names are shared, so weights copy layer by layer)


def keras_hub_kwargs(source):
    """BertBackbone init arguments from a ModelConfig or an encoder: the fields both share."""
    import keras_hub

    from bertbench.model.encoder import ENCODER_FIELDS

    shared = [name for name in inspect.signature(keras_hub.models.BertBackbone.__init__).parameters
              if name in ENCODER_FIELDS]
    return {name: getattr(source, name) for name in shared}


def weighted_layer_names(num_layers):
    return (["token_embedding", "position_embedding", "segment_embedding", "embeddings_layer_norm"]
            + [f"transformer_layer_{i}" for i in range(num_layers)] + ["pooled_dense"])


def _copy_weights(src, dst, num_layers):
    for name in weighted_layer_names(num_layers):
        dst.get_layer(name).set_weights(src.get_layer(name).get_weights())


def to_keras_hub(encoder, exact=True):
    """A keras_hub.models.BertBackbone with the encoder's weights and the same outputs.

    BertBackbone hard-codes tanh GELU and LayerNorm epsilon 1e-12; for an encoder with other
    values the returned backbone's layers are patched in memory (with a warning): its outputs
    match, but a keras-hub preset saved from it would reload with keras-hub's fixed choices.
    exact=False: no patch, the backbone as `BertBackbone.from_preset` rebuilds it (for export).
    """
    import keras
    import keras_hub

    if encoder.attention != "bidirectional":
        raise BertbenchError("keras_hub BertBackbone has no causal attention; only a bidirectional "
                             "encoder can be converted")
    backbone = keras_hub.models.BertBackbone(**keras_hub_kwargs(encoder), dtype=encoder.dtype_policy)
    _copy_weights(encoder, backbone, encoder.num_layers)
    if exact and (encoder.activation != "gelu_approximate" or encoder.layer_norm_epsilon != 1e-12):
        warnings.warn(f"keras-hub BertBackbone fixes tanh GELU and epsilon 1e-12; patched its layers "
                      f"in memory to activation={encoder.activation}, "
                      f"epsilon={encoder.layer_norm_epsilon} (not kept by its get_config)")
        backbone.get_layer("embeddings_layer_norm").epsilon = encoder.layer_norm_epsilon
        for i in range(encoder.num_layers):
            src, dst = encoder.get_layer(f"transformer_layer_{i}"), backbone.get_layer(f"transformer_layer_{i}")
            dst.activation = src.activation
            dst._feedforward_intermediate_dense.activation = keras.activations.get(src.activation)
            dst._self_attention_layer_norm.epsilon = encoder.layer_norm_epsilon
            dst._feedforward_layer_norm.epsilon = encoder.layer_norm_epsilon
    return backbone


def from_keras_hub(backbone, activation="gelu_approximate", layer_norm_epsilon=1e-12, **kwargs):
    """A BertEncoder with a keras_hub BertBackbone's weights.

    The defaults reproduce BertBackbone exactly (tanh GELU, epsilon 1e-12); pass the values the
    weights were trained with (e.g. activation="gelu" for Hugging Face `hidden_act: gelu`).
    """
    from bertbench.model.encoder import ENCODER_FIELDS, BertEncoder

    config = backbone.get_config()
    shared = {name: config[name] for name in ENCODER_FIELDS if name in config}
    encoder = BertEncoder(**shared, activation=activation, layer_norm_epsilon=layer_norm_epsilon, **kwargs)
    _copy_weights(backbone, encoder, config["num_layers"])
    return encoder


def load_keras_hub_preset(path):
    """(encoder, model_cfg, vocab_path, lowercase, "keras-hub") of a BertBackbone preset folder.

    BertBackbone computes tanh GELU with LayerNorm epsilon 1e-12: the encoder does the same.
    """
    import keras_hub

    data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if data["class_name"] != "BertBackbone":
        raise BertbenchError(f"{path} is a keras-hub preset of {data['class_name']}; only BertBackbone "
                             f"presets can be loaded")
    vocab_path = path / "assets" / "tokenizer" / "vocabulary.txt"
    if not vocab_path.is_file():
        raise BertbenchError(f"{path} is a keras-hub preset without a tokenizer ({vocab_path.relative_to(path)}); "
                             f"save one there too: keras_hub.models.BertTokenizer(...).save_to_preset(DIR)")
    lowercase = True
    if (path / "tokenizer.json").is_file():
        tokenizer = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
        lowercase = bool(tokenizer.get("config", {}).get("lowercase", True))
    try:
        backbone = keras_hub.models.BertBackbone.from_preset(str(path))
    except (OSError, KeyError, RuntimeError) as err:  # h5py: truncated, not HDF5, broken structure
        raise damaged(path / "model.weights.h5", reason_of(err)) from None
    encoder = from_keras_hub(backbone)
    return encoder, model_config_of(encoder), vocab_path, lowercase, "keras-hub"


# ------------------------------------------------------------------------------------------
# Hugging Face / google-research/bert import (numpy only, no PyTorch)


def _hf_model_config(path, cfg_file):
    try:
        hf = json.loads((path / cfg_file).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BertbenchError(f"{path / cfg_file} is not valid JSON ({err}); fix the file") from None
    if hf.get("model_type", "bert") != "bert":
        raise BertbenchError(f"{path / cfg_file} has model_type={hf['model_type']!r}; only BERT "
                             f"checkpoints (model_type 'bert') can be loaded")
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise BertbenchError(f"{path / cfg_file}: position_embedding_type="
                             f"{hf['position_embedding_type']!r} is not supported (only 'absolute')")
    act = hf.get("hidden_act", "gelu")
    if act not in HF_ACTIVATIONS:
        raise BertbenchError(f"{path / cfg_file}: hidden_act={act!r} is not supported; expected one "
                             f"of {sorted(HF_ACTIVATIONS)}")
    try:
        return ModelConfig(
            vocabulary_size=hf["vocab_size"], num_layers=hf["num_hidden_layers"],
            hidden_dim=hf["hidden_size"], num_heads=hf["num_attention_heads"],
            intermediate_dim=hf["intermediate_size"],
            max_sequence_length=hf.get("max_position_embeddings", 512),
            num_segments=hf.get("type_vocab_size", 2), dropout=hf.get("hidden_dropout_prob", 0.1),
            activation=HF_ACTIVATIONS[act], layer_norm_epsilon=hf.get("layer_norm_eps", 1e-12),
            initializer_range=hf.get("initializer_range", 0.02))
    except KeyError as err:
        raise BertbenchError(f"{path / cfg_file} lacks {err.args[0]!r}; it is not a BERT config") from None


def _hf_lowercase(path, vocab_path):
    """tokenizer_config.json `do_lower_case`; else True unless the vocabulary has cased words."""
    tok_cfg = path / "tokenizer_config.json"
    if tok_cfg.is_file():
        value = json.loads(tok_cfg.read_text(encoding="utf-8")).get("do_lower_case")
        if value is not None:
            return bool(value)
    with open(vocab_path, encoding="utf-8") as f:
        cased = any(t[:1].isupper() for t in (line.strip() for line in f) if not t.startswith("["))
    return not cased


def load_converted(path):
    """(encoder, model_cfg, vocab_path, lowercase, source) of a Hugging Face or google-research/bert
    BERT folder (see `is_converted_dir`); source is "huggingface" or "google-research"."""
    cfg_file = "config.json" if (path / "config.json").is_file() else "bert_config.json"
    model_cfg = _hf_model_config(path, cfg_file)
    vocab_path = path / VOCAB_FILE
    if not vocab_path.is_file():
        raise BertbenchError(f"{path} has {cfg_file} but no {VOCAB_FILE}; add the WordPiece vocabulary")
    if (path / "model.safetensors").is_file() or (path / "model.safetensors.index.json").is_file():
        encoder, source = _from_safetensors(path, model_cfg), "huggingface"
    elif _tf_checkpoint(path):
        encoder, source = _from_tf_checkpoint(_tf_checkpoint(path), model_cfg), "google-research"
    else:
        raise BertbenchError(f"{path} has no weights bertbench can read: expected model.safetensors "
                             f"(Hugging Face) or bert_model.ckpt.index (google-research/bert); "
                             f"convert PyTorch .bin weights to safetensors first")
    return encoder, model_cfg, vocab_path, _hf_lowercase(path, vocab_path), source


def _from_safetensors(path, model_cfg):
    """keras-hub's offline converter (maps every weight, pooler included), then our own config."""
    import keras_hub
    from safetensors import SafetensorError

    try:
        backbone = keras_hub.models.BertBackbone.from_preset(
            str(path), num_segments=model_cfg.num_segments, dropout=model_cfg.dropout)
    except (SafetensorError, OSError) as err:  # truncated, a broken header
        name = "model.safetensors" if (path / "model.safetensors").is_file() else "model.safetensors.index.json"
        raise damaged(path / name, reason_of(err), "download or convert it again") from None
    return from_keras_hub(backbone, activation=model_cfg.activation,
                          layer_norm_epsilon=model_cfg.layer_norm_epsilon,
                          initializer_range=model_cfg.initializer_range)


def _tf_checkpoint(path):
    """Prefix of a TF1 checkpoint in `path` (bert_model.ckpt of google-research/bert), or None."""
    indexes = sorted(path.glob("*.ckpt.index")) or sorted(path.glob("*.ckpt-*.index"))
    return str(indexes[0])[: -len(".index")] if indexes else None


def google_names(num_layers):
    """(layer, weight index) -> google-research/bert variable name (kernels are [in, out])."""
    e = "bert/embeddings/"
    names = {("token_embedding", 0): e + "word_embeddings",
             ("position_embedding", 0): e + "position_embeddings",
             ("segment_embedding", 0): e + "token_type_embeddings",
             ("embeddings_layer_norm", 0): e + "LayerNorm/gamma",
             ("embeddings_layer_norm", 1): e + "LayerNorm/beta",
             ("pooled_dense", 0): "bert/pooler/dense/kernel",
             ("pooled_dense", 1): "bert/pooler/dense/bias"}
    # TransformerEncoder weight order: q/k/v/o kernel+bias, attention LN, FF LN, FF in, FF out.
    block = ["attention/self/query/kernel", "attention/self/query/bias",
             "attention/self/key/kernel", "attention/self/key/bias",
             "attention/self/value/kernel", "attention/self/value/bias",
             "attention/output/dense/kernel", "attention/output/dense/bias",
             "attention/output/LayerNorm/gamma", "attention/output/LayerNorm/beta",
             "output/LayerNorm/gamma", "output/LayerNorm/beta",
             "intermediate/dense/kernel", "intermediate/dense/bias",
             "output/dense/kernel", "output/dense/bias"]
    for i in range(num_layers):
        for j, name in enumerate(block):
            names[(f"transformer_layer_{i}", j)] = f"bert/encoder/layer_{i}/{name}"
    return names


def _from_tf_checkpoint(prefix, model_cfg):
    import tensorflow as tf

    from bertbench.model.encoder import build_encoder

    try:
        reader = tf.train.load_checkpoint(prefix)
    except tf.errors.OpError as err:  # a truncated or bit-flipped index
        raise damaged(f"{prefix}.index", reason_of(err), "download it again") from None
    encoder = build_encoder(model_cfg)
    names = google_names(model_cfg.num_layers)
    for layer_name in weighted_layer_names(model_cfg.num_layers):
        layer = encoder.get_layer(layer_name)
        values = []
        for j, variable in enumerate(layer.weights):
            name = names[(layer_name, j)]
            if not reader.has_tensor(name):
                raise BertbenchError(f"{prefix} lacks variable {name}; it is not a google-research/"
                                     f"bert BERT checkpoint of this config")
            # Attention kernels/biases are [H, A, d] / [A, d] in keras; [H, H] / [H] in the ckpt.
            try:
                values.append(reader.get_tensor(name).reshape(variable.shape))
            except tf.errors.OpError as err:  # truncated data shard, bad checksum
                raise damaged(f"{prefix}.data-*", reason_of(err), "download it again") from None
        layer.set_weights(values)
    return encoder
