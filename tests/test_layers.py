"""The Keras contract of every layer bertbench defines outside the encoder and the pretrainer (those are
tested in test_encoder.py and test_objectives.py): model/layers.py and the heads' layers of
model/heads.py, each through the shared `run_layer_test` (shape, get_config/from_config, .keras)."""

import numpy as np
import pytest
from helpers import run_layer_test

keras = pytest.importorskip("keras")

from bertbench.model.encoder import build_encoder  # noqa: E402
from bertbench.model.heads import DropMask, FoldChoices, FrozenEncoder, LastTokenPool, ScalarMix  # noqa: E402
from bertbench.model.layers import CausalAttentionMask, keras_activation  # noqa: E402
from bertbench.config import ModelConfig  # noqa: E402

RNG = np.random.default_rng(0)
TINY = ModelConfig(vocabulary_size=20, num_layers=2, hidden_dim=8, num_heads=2, intermediate_dim=16,
                   max_sequence_length=16)


def padding_mask(batch=2, seq=5):
    mask = np.ones((batch, seq), "int32")
    mask[0, 3:] = 0
    return mask


def test_causal_attention_mask():
    layer = run_layer_test(CausalAttentionMask, {}, padding_mask(), (2, 5, 5))
    np.testing.assert_array_equal(np.asarray(layer(padding_mask()))[1], np.tril(np.ones((5, 5))))


def test_keras_activation_names():
    x = np.linspace(-3, 3, 13).astype("float32")
    exact = np.asarray(keras.activations.get(keras_activation("gelu"))(x))
    tanh_form = np.asarray(keras.activations.get(keras_activation("gelu_approximate"))(x))
    np.testing.assert_allclose(exact, np.asarray(keras.activations.gelu(x, approximate=False)), atol=0)
    np.testing.assert_allclose(tanh_form, np.asarray(keras.activations.gelu(x, approximate=True)), atol=0)
    with pytest.raises(ValueError, match="activation"):
        keras_activation("relu")


def test_scalar_mix():
    states = [RNG.normal(size=(2, 5, 4)).astype("float32") for _ in range(3)]
    layer = run_layer_test(ScalarMix, {"num_inputs": 3}, states, (2, 5, 4))
    np.testing.assert_allclose(np.asarray(layer(states)), np.mean(states, axis=0), atol=1e-6)  # zeros -> mean


def test_frozen_encoder():
    keras.utils.set_random_seed(0)
    inputs = {"token_ids": RNG.integers(0, 20, (2, 5)).astype("int32"),
              "segment_ids": np.zeros((2, 5), "int32"), "padding_mask": padding_mask()}
    layer = run_layer_test(lambda **kw: FrozenEncoder(build_encoder(TINY), **kw), {}, inputs, [(2, 5, 8)] * 3)
    assert not layer.encoder.trainable and not layer.trainable_weights


def test_last_token_pool():
    sequence = RNG.normal(size=(2, 5, 4)).astype("float32")
    layer = run_layer_test(LastTokenPool, {}, (sequence, padding_mask()), (2, 4))
    np.testing.assert_array_equal(np.asarray(layer(sequence, padding_mask())), sequence[[0, 1], [2, 4]])


@pytest.mark.parametrize("fold, shape, expected", [(True, (2, 3, 5), (6, 5)), (False, (6, 1), (2, 3))])
def test_fold_choices(fold, shape, expected):
    run_layer_test(FoldChoices, {"num_choices": 3, "fold": fold}, RNG.normal(size=shape).astype("float32"),
                   expected)


def test_drop_mask():
    x = RNG.normal(size=(2, 5, 4)).astype("float32")
    layer = run_layer_test(DropMask, {}, x, (2, 5, 4))
    assert layer.compute_mask(x, np.ones((2, 5), bool)) is None
