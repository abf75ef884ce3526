"""Encoders out to the ecosystem's folders (the way in is bertbench.model.checkpoint.load_encoder).

    export_keras_hub(loaded, "out/preset")   # keras_hub.models.BertBackbone.from_preset("out/preset")
    export_huggingface(loaded, "out/hf")     # config.json, model.safetensors, vocab.txt, tokenizer_config.json

`loaded` is a bertbench.model.checkpoint.LoadedEncoder (any format load_encoder reads).
- keras-hub: `BertBackbone.save_to_preset` + `BertTokenizer.save_to_preset` (vocabulary, casing). The
  backbone computes tanh GELU with LayerNorm epsilon 1e-12; an encoder trained with other values
  (bertbench's default is the exact erf GELU) loads with slightly different outputs: the export
  measures the largest difference on a probe batch and returns it (0.0: identical).
- Hugging Face: the `BertModel` layout (no `bert.` prefix; Linear weights [out, in]; LayerNorm
  weight/bias), `hidden_act` "gelu" (exact) or "gelu_new" (tanh), written with safetensors' numpy
  API: no PyTorch. Read back by load_encoder (and by transformers' BertModel.from_pretrained).
A causal (left-to-right) encoder has no place in either format: a one-line error.
"""

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from bertbench.errors import BertbenchError
from bertbench.files import make_temp_dir
from bertbench.model.convert import VOCAB_FILE, google_names, to_keras_hub, weighted_layer_names

HF_ACT = {"gelu": "gelu", "gelu_approximate": "gelu_new"}  # ours -> Hugging Face `hidden_act`
SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _check_exportable(loaded, fmt):
    if loaded.model_cfg.attention != "bidirectional":
        raise BertbenchError(f"a causal (left-to-right) encoder cannot be exported to {fmt}: BERT "
                             f"folders have bidirectional attention only")


def _into_folder(out_dir, write):
    """Call write(tmp_folder), then move the folder to `out_dir` (replacing it): never half a folder."""
    out_dir = Path(out_dir)
    tmp = make_temp_dir(out_dir.parent, prefix=f".{out_dir.name}.tmp-")
    try:
        write(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def probe_inputs(model_cfg, vocab_size, seed=0):
    """A small fixed batch of token/segment ids with padding, to compare two models' outputs."""
    rng = np.random.default_rng(seed)
    seq = min(16, model_cfg.max_sequence_length)
    mask = np.ones((2, seq), "int32")
    mask[1, seq // 2:] = 0
    return {"token_ids": rng.integers(0, vocab_size, (2, seq)).astype("int32"),
            "segment_ids": rng.integers(0, model_cfg.num_segments, (2, seq)).astype("int32"),
            "padding_mask": mask}


def max_difference(a, b, inputs):
    """Largest |difference| of the sequence and pooled outputs of two encoders on `inputs`."""
    out_a, out_b = a(inputs, training=False), b(inputs, training=False)
    mask = inputs["padding_mask"].astype(bool)
    seq = np.abs(np.asarray(out_a["sequence_output"]) - np.asarray(out_b["sequence_output"]))[mask]
    pooled = np.abs(np.asarray(out_a["pooled_output"]) - np.asarray(out_b["pooled_output"]))
    return float(max(seq.max(), pooled.max()))


def export_keras_hub(loaded, out_dir):
    """A keras-hub preset folder of the encoder and its tokenizer -> (folder, max |difference|)."""
    import keras_hub

    _check_exportable(loaded, "keras-hub")
    backbone = to_keras_hub(loaded.encoder, exact=False)  # what from_preset will rebuild
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=str(loaded.vocab_path), lowercase=loaded.lowercase,
                                               strip_accents=loaded.lowercase)  # BERT uncased strips accents

    def write(folder):
        backbone.save_to_preset(str(folder))
        tokenizer.save_to_preset(str(folder))

    folder = _into_folder(out_dir, write)
    inputs = probe_inputs(loaded.model_cfg, loaded.model_cfg.vocabulary_size)
    return folder, max_difference(loaded.encoder, backbone, inputs)


def hf_key(google_name):
    """google-research/bert variable name -> Hugging Face BertModel key
    (bert/encoder/layer_3/attention/self/query/kernel -> encoder.layer.3.attention.self.query.weight)."""
    key = re.sub(r"layer_(\d+)", r"layer.\1", google_name.removeprefix("bert/")).replace("/", ".")
    key = re.sub(r"\.(kernel|gamma)$", ".weight", key)
    key = re.sub(r"\.beta$", ".bias", key)
    return key if key.endswith((".weight", ".bias")) else key + ".weight"  # embeddings


def hf_tensors(encoder, model_cfg):
    """{Hugging Face key: float32 array} of every encoder weight (kernels transposed to [out, in])."""
    names, hidden = google_names(model_cfg.num_layers), model_cfg.hidden_dim
    tensors = {}
    for layer_name in weighted_layer_names(model_cfg.num_layers):
        for j, weight in enumerate(encoder.get_layer(layer_name).weights):
            name, value = names[(layer_name, j)], np.asarray(weight, np.float32)
            if name.endswith("kernel"):  # [in, out], attention ones [H, A, d] / [A, d, H]
                value = (value.reshape(hidden, hidden) if value.ndim == 3 else value).T
            elif name.endswith("bias"):  # attention biases are [A, d]
                value = value.reshape(-1)
            tensors[hf_key(name)] = np.ascontiguousarray(value)
    return tensors


def hf_config(model_cfg):
    """config.json of a Hugging Face BertModel with this ModelConfig."""
    return {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": model_cfg.vocabulary_size,
            "hidden_size": model_cfg.hidden_dim, "num_hidden_layers": model_cfg.num_layers,
            "num_attention_heads": model_cfg.num_heads, "intermediate_size": model_cfg.intermediate_dim,
            "hidden_act": HF_ACT[model_cfg.activation], "hidden_dropout_prob": model_cfg.dropout,
            "attention_probs_dropout_prob": model_cfg.dropout,
            "max_position_embeddings": model_cfg.max_sequence_length,
            "type_vocab_size": model_cfg.num_segments, "initializer_range": model_cfg.initializer_range,
            "layer_norm_eps": model_cfg.layer_norm_epsilon, "pad_token_id": 0,
            "position_embedding_type": "absolute", "torch_dtype": "float32"}


def export_huggingface(loaded, out_dir):
    """A Hugging Face BERT folder (config.json, model.safetensors, vocab.txt, tokenizer_config.json)."""
    from safetensors.numpy import save_file

    _check_exportable(loaded, "Hugging Face")
    cfg = loaded.model_cfg
    tensors = hf_tensors(loaded.encoder, cfg)
    tokenizer = {"tokenizer_class": "BertTokenizer", "do_lower_case": loaded.lowercase,
                 "strip_accents": None, "model_max_length": cfg.max_sequence_length,
                 **dict(zip(("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"), SPECIAL))}

    def write(folder):
        (folder / "config.json").write_text(json.dumps(hf_config(cfg), indent=2) + "\n", encoding="utf-8")
        (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer, indent=2) + "\n", encoding="utf-8")
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
        shutil.copyfile(loaded.vocab_path, folder / VOCAB_FILE)

    return _into_folder(out_dir, write)
