"""Layers the fine-tuning heads share (model code: shapes, no task knowledge).

Each task kind (bertbench.finetuning.<kind>.build_head) assembles its model from these pieces:
`encoder_inputs` (the encoder's input dict, [b, s] or [b, choices, s] int32), `sentence_features`
(encoder -> `sentence_vector` [b, H'] -> dropout) or `token_features` (encoder -> [b, s, H'] per token),
`bilstm_sequence`, `select_features` + `FrozenEncoder` (feature-based, Table 7), `FoldChoices`
(multiple choice), `DropMask`, `initializer()` for the heads' dense layers and `output_dense` for
their last one (float32 outputs under a mixed precision policy).

Choices worth knowing:
- A causal (LTR) encoder keeps its causal attention. Its [CLS] (position 0) can attend to nothing
  but itself, so sentence-level heads read the sequence output at the LAST real token instead
  (the GPT-style choice, `LastTokenPool`), through the same dropout + dense.
- head="bilstm" (Table 5 "+ BiLSTM"): a randomly initialised BiLSTM (H units per direction, padding
  masked) on the sequence output. Span and tagging heads read its per-token outputs; sentence heads
  read the concatenation of its final states (forward after the last real token, backward after [CLS]).
- Feature-based (Table 7): the encoder is frozen (trainable=False and run with training=False, so
  no dropout in it); `select_features` picks from its `hidden_states`.
"""

import keras
from keras import ops

from bertbench.errors import ConfigError

FEATURE_CHOICES = ("embeddings", "second_to_last", "last", "sum_last_four", "concat_last_four", "sum_all")
INPUT_NAMES = ("token_ids", "segment_ids", "padding_mask")
OUTPUT_DTYPE = "float32"  # of every head's outputs (and of any layer after its last dense)


def initializer():
    """Kernel initializer of every head's dense layer (google-research/bert heads)."""
    return keras.initializers.TruncatedNormal(stddev=0.02)


def output_dense(units, name):
    """A head's last dense layer: float32 whatever the policy, so that under a mixed policy (bf16 or
    fp16 encoder) the logits / scores [.., units], their softmax and the loss keep float32 resolution
    (the layer casts its bf16 input up). Under float32 it is the plain Dense it always was."""
    return keras.layers.Dense(units, kernel_initializer=initializer(), dtype=OUTPUT_DTYPE, name=name)


@keras.saving.register_keras_serializable(package="bertbench")
class ScalarMix(keras.layers.Layer):
    """ELMo scalar mix: gamma * sum_j softmax(w)_j * x_j over a list of [b, s, H] tensors."""

    def __init__(self, num_inputs, **kwargs):
        super().__init__(**kwargs)
        self.num_inputs = num_inputs

    def build(self, input_shape):
        self.mix_weights = self.add_weight(shape=(self.num_inputs,), initializer="zeros", name="mix_weights")
        self.gamma = self.add_weight(shape=(), initializer="ones", name="gamma")

    def call(self, inputs):
        if len(inputs) != self.num_inputs:
            raise ValueError(f"ScalarMix expected {self.num_inputs} inputs, got {len(inputs)}")
        weights = ops.softmax(self.mix_weights)  # [n], sums to 1
        stacked = ops.stack(inputs, axis=0)  # [n, b, s, H]
        return self.gamma * ops.tensordot(weights, stacked, axes=1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {**super().get_config(), "num_inputs": self.num_inputs}


@keras.saving.register_keras_serializable(package="bertbench")
class FrozenEncoder(keras.layers.Layer):
    """Runs a frozen encoder in inference mode and returns its hidden_states (list of L+1 [b, s, H]).

    A functional model passes its own `training` flag to every layer that accepts one, so calling
    the encoder with training=False while building the graph would NOT keep dropout off; this
    layer takes no `training` argument and always calls the encoder with training=False.
    """

    def __init__(self, encoder, **kwargs):
        super().__init__(**kwargs)
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        self.encoder = encoder
        self.encoder.trainable = False

    def call(self, inputs):
        return list(self.encoder(inputs, training=False)["hidden_states"])

    def get_config(self):
        return {**super().get_config(), "encoder": keras.saving.serialize_keras_object(self.encoder)}


@keras.saving.register_keras_serializable(package="bertbench")
class LastTokenPool(keras.layers.Layer):
    """[b, s, H] + padding mask [b, s] -> [b, H]: the vector at the last real token of each row."""

    def call(self, sequence, padding_mask):
        last = ops.sum(ops.cast(padding_mask, "int32"), axis=1) - 1  # [b]
        last = ops.maximum(last, 0)
        return ops.take_along_axis(sequence, last[:, None, None], axis=1)[:, 0, :]

    def compute_output_shape(self, sequence_shape, padding_mask_shape=None):
        return (sequence_shape[0], sequence_shape[2])


@keras.saving.register_keras_serializable(package="bertbench")
class FoldChoices(keras.layers.Layer):
    """[b, c, s] -> [b * c, s] (fold=True) or [b * c, 1] -> [b, c] (fold=False)."""

    def __init__(self, num_choices, fold=True, **kwargs):
        super().__init__(**kwargs)
        self.num_choices = num_choices
        self.fold = fold

    def call(self, x):
        if self.fold:
            return ops.reshape(x, (-1, ops.shape(x)[-1]))
        return ops.reshape(x, (-1, self.num_choices))

    def compute_output_shape(self, input_shape):
        if self.fold:
            return (None, input_shape[-1])
        return (None, self.num_choices)

    def get_config(self):
        return {**super().get_config(), "num_choices": self.num_choices, "fold": self.fold}


@keras.saving.register_keras_serializable(package="bertbench")
class DropMask(keras.layers.Layer):
    """Identity that ends Keras mask propagation: a mask reaching the output would be used by
    compile() as sample weights, but the task losses already handle padding (their targets say
    which positions count)."""

    def call(self, x):
        return ops.copy(x)  # a new tensor: returning `x` itself would keep its attached mask

    def compute_mask(self, inputs, mask=None):
        return None


def bilstm_sequence(x, units, mask, name):
    """BiLSTM over [b, s, d] with padding masked -> [b, s, 2 * units], no mask attached."""
    lstm = keras.layers.Bidirectional(keras.layers.LSTM(units, return_sequences=True), name=name)
    return DropMask(name=f"{name}_unmask")(lstm(x, mask=mask))


def select_features(hidden_states, feature_layers, name="features"):
    """Table 7 feature choice from hidden_states (L+1 tensors [b, s, H]) -> [b, s, H or 4H].

    "sum_all" mixes the L Transformer layers (the paper's "Weighted Sum All 12 Layers"), not the
    embedding output; the weighted sums are ELMo scalar mixes with learned softmax weights.
    """
    layers = hidden_states[1:]  # the L Transformer blocks' outputs
    needs = {"second_to_last": 2, "sum_last_four": 4, "concat_last_four": 4}.get(feature_layers, 1)
    if len(layers) < needs:
        raise ConfigError(f"finetune.feature_layers='{feature_layers}' needs an encoder with at least "
                          f"{needs} layers, this one has {len(layers)}; use a deeper model (e.g. mini)")
    if feature_layers == "embeddings":
        return hidden_states[0]
    if feature_layers == "second_to_last":
        return layers[-2]
    if feature_layers == "last":
        return layers[-1]
    if feature_layers == "sum_last_four":
        return ScalarMix(4, name=name)(layers[-4:])
    if feature_layers == "concat_last_four":
        return keras.layers.Concatenate(axis=-1, name=name)(layers[-4:])
    if feature_layers == "sum_all":
        return ScalarMix(len(layers), name=name)(layers)
    raise ConfigError(f"finetune.feature_layers={feature_layers!r} is not valid; choose one of: "
                      f"{', '.join(FEATURE_CHOICES)}")


def encoder_inputs(num_choices=None):
    """The encoder's input dict as keras.Inputs: [b, s] int32, or [b, num_choices, s]."""
    shape = (None,) if num_choices is None else (num_choices, None)
    return {name: keras.Input(shape=shape, dtype="int32", name=name) for name in INPUT_NAMES}


def sentence_vector(encoder, outputs, padding_mask, head):
    """[b, H'] sentence representation for classification, regression and multiple choice.

    outputs: the encoder's output dict; padding_mask [b, s]; head "default" or "bilstm".
    """
    if head == "bilstm":  # [fwd state after last real token ; bwd state after [CLS]] -> [b, 2H]
        lstm = keras.layers.Bidirectional(keras.layers.LSTM(encoder.hidden_dim), name="bilstm")
        return lstm(outputs["sequence_output"], mask=ops.cast(padding_mask, "bool"))
    if encoder.attention == "causal":  # [CLS] sees only itself under causal attention
        return LastTokenPool(name="last_token_pool")(outputs["sequence_output"], padding_mask)
    return outputs["pooled_output"]


def sentence_features(encoder, inputs, head, dropout):
    """encoder -> sentence_vector -> dropout: what a sentence-level head's dense layer reads."""
    x = sentence_vector(encoder, encoder(inputs), inputs["padding_mask"], head)
    return keras.layers.Dropout(dropout, name="head_dropout")(x)


def token_features(encoder, inputs, head):
    """encoder sequence output [b, s, H] (-> BiLSTM [b, s, 2H] for head="bilstm"), mask dropped."""
    x = encoder(inputs)["sequence_output"]
    if head == "bilstm":
        x = bilstm_sequence(x, encoder.hidden_dim, ops.cast(inputs["padding_mask"], "bool"), "bilstm")
    return x
