"""The pretraining heads: BertPretrainer keeps the Keras contract (init arguments stored, get_config /
from_config, .keras round trip) and uses the encoder's activation function for the same name."""

import dataclasses

import numpy as np
import pytest
from helpers import run_layer_test

keras = pytest.importorskip("keras")

from bertbench.config import ModelConfig  # noqa: E402
from bertbench.model.encoder import build_encoder  # noqa: E402
from bertbench.pretraining.objectives import BertPretrainer  # noqa: E402

TINY = ModelConfig(vocabulary_size=30, num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16,
                   max_sequence_length=16)


def features(batch=2, seq=6, predictions=3, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, seq), "int32")
    mask[0, 4:] = 0
    return {"token_ids": rng.integers(5, 30, (batch, seq)).astype("int32"),
            "segment_ids": (np.arange(seq)[None] >= 3).repeat(batch, 0).astype("int32"),
            "padding_mask": mask,
            "masked_lm_positions": np.sort(rng.integers(1, 4, (batch, predictions)), axis=1).astype("int32")}


def pretrainer(objective="mlm+nsp", activation="gelu", **kwargs):
    encoder = build_encoder(dataclasses.replace(TINY, activation=activation))
    return BertPretrainer(encoder, objective, activation=activation, **kwargs)


@pytest.mark.parametrize("objective, expected", [
    ("mlm+nsp", {"lm": (2, 3, 30), "nsp": (2, 2)}),
    ("mlm", {"lm": (2, 3, 30)}),
    ("ltr", {"lm": (2, 6, 30)}),  # the next token at every position
])
def test_keras_contract(objective, expected):
    keras.utils.set_random_seed(0)
    kwargs = {"objective": objective, "activation": "gelu_approximate", "layer_norm_epsilon": 1e-6,
              "initializer_range": 0.05}
    model = run_layer_test(lambda **kw: pretrainer(**kw), kwargs, features(), expected)
    config = model.get_config()
    assert {key: config[key] for key in kwargs} == kwargs  # every init argument stored under its name
    assert config["encoder"]["class_name"] == "BertEncoder"


@pytest.mark.parametrize("name", ["gelu", "gelu_approximate"])
def test_heads_use_the_encoders_activation(name):
    """One mapping of names: the MLM transform's activation IS the encoder feed-forward's function."""
    model = pretrainer(activation=name)
    model(features())
    encoder_fn = model.encoder.get_layer("transformer_layer_0")._feedforward_intermediate_dense.activation
    assert model.lm_head.intermediate_activation is encoder_fn
    assert model.lm_head._intermediate_dense.activation is encoder_fn
