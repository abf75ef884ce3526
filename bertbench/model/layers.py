"""What the encoder and the objective heads need beyond keras-hub's layers: the one activation mapping
(config name -> Keras activation) and the causal attention mask of the left-to-right ablation."""

import keras
from keras import ops
from keras_hub.src.utils.keras_utils import gelu_approximate  # registered "keras_hub>gelu_approximate"

ACTIVATIONS = ("gelu", "gelu_approximate")


def keras_activation(name):
    """The Keras activation of a `model.activation` value, for every layer that takes one.

    'gelu' -> the exact erf GELU (serialises as "gelu": keras.activations.gelu, approximate=False);
    'gelu_approximate' -> the tanh form (keras-hub's registered function, so it serialises too).
    """
    if name == "gelu":
        return "gelu"
    if name == "gelu_approximate":
        return gelu_approximate
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


@keras.saving.register_keras_serializable(package="bertbench")
class CausalAttentionMask(keras.layers.Layer):
    """[batch, seq] padding mask -> [batch, seq, seq] lower-triangular mask (query i sees keys <= i).

    TransformerEncoder combines it with the padding mask (elementwise minimum). keras-hub 0.32's
    TransformerEncoder has no `use_causal_mask` argument (only TransformerDecoder does), hence this.
    No init arguments of its own: the base config (name, dtype, trainable) round-trips it.
    """

    def call(self, padding_mask):
        shape = ops.shape(padding_mask)
        batch, seq = shape[0], shape[1]
        rows = ops.expand_dims(ops.arange(seq), 1)  # [seq, 1] query positions
        cols = ops.expand_dims(ops.arange(seq), 0)  # [1, seq] key positions
        mask = ops.cast(rows >= cols, "int32")[None]  # [1, seq, seq]
        return ops.broadcast_to(mask, (batch, seq, seq))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], input_shape[1])
