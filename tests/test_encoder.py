import dataclasses
import math

import numpy as np
import pytest
from helpers import run_layer_test

keras = pytest.importorskip("keras")

from bertbench.config import ModelConfig  # noqa: E402
from bertbench.model.encoder import ENCODER_FIELDS, BertEncoder, build_encoder, encoder_kwargs  # noqa: E402

TINY = dict(vocabulary_size=50, num_layers=2, hidden_dim=16, num_heads=2, intermediate_dim=32,
            max_sequence_length=24, num_segments=2, dropout=0.1)


def random_inputs(batch=2, seq=10, vocab=50, seed=0, pad_from=None):
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, seq), "int32")
    if pad_from is not None:
        mask[:, pad_from:] = 0
    return {"token_ids": rng.integers(1, vocab, (batch, seq)).astype("int32"),
            "segment_ids": (np.arange(seq)[None] >= seq // 2).repeat(batch, 0).astype("int32"),
            "padding_mask": mask}


def run(model, inputs):
    out = model(inputs, training=False)
    return {"sequence_output": np.asarray(out["sequence_output"]),
            "pooled_output": np.asarray(out["pooled_output"]),
            "hidden_states": [np.asarray(h) for h in out["hidden_states"]]}


@pytest.mark.parametrize("extra", [
    dict(activation="gelu", attention="bidirectional"),
    dict(activation="gelu_approximate", attention="causal", layer_norm_epsilon=1e-6,
         initializer_range=0.05, num_segments=3),
])
def test_shapes_config_and_keras_round_trip(extra):
    kwargs = {**TINY, **extra}
    h, layers = kwargs["hidden_dim"], kwargs["num_layers"]
    keras.utils.set_random_seed(0)
    model = run_layer_test(BertEncoder, kwargs, random_inputs(vocab=kwargs["vocabulary_size"]),
                           {"sequence_output": (2, 10, h), "pooled_output": (2, h),
                            "hidden_states": [(2, 10, h)] * (layers + 1)})
    config = model.get_config()
    assert {key: config[key] for key in kwargs} == kwargs  # every init argument stored under its name
    out = run(model, random_inputs(vocab=kwargs["vocabulary_size"]))
    np.testing.assert_array_equal(out["hidden_states"][-1], out["sequence_output"])


def test_one_field_list_model_config_equals_encoder_arguments():
    """ModelConfig, the encoder's init arguments, its config, checkpoints and keras-hub transfer share
    one list: the encoder's signature (ENCODER_FIELDS); ModelConfig must have exactly those fields."""
    assert tuple(f.name for f in dataclasses.fields(ModelConfig)) == ENCODER_FIELDS
    cfg = ModelConfig(vocabulary_size=40, num_layers=1, hidden_dim=8, num_heads=2, attention="causal")
    assert encoder_kwargs(cfg) == dataclasses.asdict(cfg)


def test_build_encoder_follows_model_config():
    cfg = ModelConfig(vocabulary_size=40, num_layers=1, hidden_dim=8, num_heads=2, max_sequence_length=12,
                      activation="gelu_approximate", attention="causal", layer_norm_epsilon=1e-7)
    model = build_encoder(cfg)
    assert model.intermediate_dim == 32  # 4H
    assert (model.activation, model.attention, model.layer_norm_epsilon) == ("gelu_approximate", "causal", 1e-7)
    assert model.get_layer("transformer_layer_0")._feedforward_layer_norm.epsilon == 1e-7
    assert model.token_embedding.embeddings.shape == (40, 8)


def test_embedding_output_and_pooler_match_numpy_reference():
    keras.utils.set_random_seed(1)
    model = BertEncoder(**TINY, layer_norm_epsilon=1e-5)
    inputs = random_inputs()
    out = run(model, inputs)
    word = np.asarray(model.token_embedding.embeddings)
    pos = np.asarray(model.get_layer("position_embedding").position_embeddings)
    seg = np.asarray(model.get_layer("segment_embedding").embeddings)
    gamma, beta = (np.asarray(w) for w in model.get_layer("embeddings_layer_norm").weights)
    x = word[inputs["token_ids"]] + pos[None, :10] + seg[inputs["segment_ids"]]
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5) * gamma + beta
    np.testing.assert_allclose(out["hidden_states"][0], expected, atol=1e-5)
    kernel, bias = (np.asarray(w) for w in model.get_layer("pooled_dense").weights)
    pooled = np.tanh(out["sequence_output"][:, 0] @ kernel + bias)
    np.testing.assert_allclose(out["pooled_output"], pooled, atol=1e-5)


def _change_token(inputs, position):
    changed = {k: v.copy() for k, v in inputs.items()}
    changed["token_ids"][:, position] = (changed["token_ids"][:, position] % 49) + 1
    return changed


@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
def test_causal_attention_hides_the_future(attention):
    keras.utils.set_random_seed(2)
    model = BertEncoder(**TINY, attention=attention, initializer_range=0.5)  # large enough to see
    inputs = random_inputs()
    a, b = run(model, inputs), run(model, _change_token(inputs, 6))
    for layer in range(1, TINY["num_layers"] + 1):
        before = np.abs(a["hidden_states"][layer][:, :6] - b["hidden_states"][layer][:, :6]).max()
        after = np.abs(a["hidden_states"][layer][:, 6:] - b["hidden_states"][layer][:, 6:]).max()
        assert after > 1e-3  # the changed token itself always moves
        if attention == "causal":
            assert before < 1e-6, f"layer {layer}: earlier positions saw a later token"
        else:
            assert before > 1e-3, f"layer {layer}: bidirectional attention ignored a later token"


@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
def test_padding_does_not_change_real_positions(attention):
    keras.utils.set_random_seed(3)
    model = BertEncoder(**TINY, attention=attention)
    short = random_inputs(seq=7, seed=4)
    padded = random_inputs(seq=12, seed=5, pad_from=7)  # different junk in the padded positions
    for key in short:
        padded[key][:, :7] = short[key]
    a, b = run(model, short), run(model, padded)
    for x, y in zip(a["hidden_states"], b["hidden_states"], strict=True):
        np.testing.assert_allclose(x, y[:, :7], atol=1e-5)
    np.testing.assert_allclose(a["pooled_output"], b["pooled_output"], atol=1e-5)


def test_exact_and_approximate_gelu():
    x = np.array([-2.0, -0.5, 0.7, 1.0, 3.0], "float32")
    exact = 0.5 * x * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x]))
    tanh_form = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    models = {}
    for name, reference in (("gelu", exact), ("gelu_approximate", tanh_form)):
        keras.utils.set_random_seed(6)
        models[name] = BertEncoder(**TINY, activation=name, initializer_range=0.5)
        dense = models[name].get_layer("transformer_layer_0")._feedforward_intermediate_dense
        np.testing.assert_allclose(np.asarray(dense.activation(x)), reference, atol=1e-6)
    models["gelu_approximate"].set_weights(models["gelu"].get_weights())
    inputs = random_inputs()
    a, b = run(models["gelu"], inputs), run(models["gelu_approximate"], inputs)
    np.testing.assert_array_equal(a["hidden_states"][0], b["hidden_states"][0])
    assert np.abs(a["sequence_output"] - b["sequence_output"]).max() > 1e-5


def test_invalid_choices_are_rejected():
    with pytest.raises(ValueError, match="attention"):
        BertEncoder(**TINY, attention="sideways")
    with pytest.raises(ValueError, match="activation"):
        BertEncoder(**TINY, activation="relu")
