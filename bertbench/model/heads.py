"""Fine-tuning heads: Keras models that wrap a BertEncoder (the encoder knows nothing of them).

`build_task_model(encoder, kind, ...)` returns a functional model with the encoder's input dict
(`token_ids`, `segment_ids`, `padding_mask`; [batch, seq] int32, or [batch, choices, seq] for
multiple choice) and ONE output tensor, so it trains with `compile(loss=task_loss(kind))` + `fit`:

    classification   logits [b, num_labels]   from dropout + dense on the pooled [CLS] output
    regression       score  [b]               same, one output, MSE loss
    span             logits [b, s, 2]         start/end logits from the sequence output
    tagging          logits [b, s, num_labels] per token; only the first piece of each word has a
                                              label (-1 elsewhere), as google-research/bert NER
    multiple_choice  logits [b, num_choices]  one score per (context, ending) [CLS], softmax over them

Choices worth knowing (see also the report in finetune.py):
- A causal (LTR) encoder keeps its causal attention. Its [CLS] (position 0) can attend to nothing
  but itself, so sentence-level heads read the sequence output at the LAST real token instead
  (the GPT-style choice), through the same dropout + dense.
- head="bilstm" (Table 5 "+ BiLSTM"): a randomly initialised BiLSTM (H units per direction, padding
  masked) on the sequence output. Span tasks read its per-token outputs; sentence tasks read the
  concatenation of its final states (forward after the last real token, backward after [CLS]).
- feature_layers != "" (Table 7, feature-based NER): the encoder is frozen (trainable=False and run
  with training=False, so no dropout in it); features from `hidden_states` feed a randomly
  initialised 2-layer BiLSTM (H units per direction) and a tagging layer.
"""

import keras
from keras import ops

from bertbench.errors import BertbenchError, ConfigError

KINDS = ("classification", "regression", "span", "tagging", "multiple_choice")
FEATURE_CHOICES = ("embeddings", "second_to_last", "last", "sum_last_four", "concat_last_four", "sum_all")
INPUT_NAMES = ("token_ids", "segment_ids", "padding_mask")
IGNORE_LABEL = -1  # tagging label of positions that take no part in loss or prediction


def _init():
    return keras.initializers.TruncatedNormal(stddev=0.02)  # google-research/bert heads


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
    compile() as sample weights, but our losses already handle padding (span: [CLS]-based targets,
    tagging: -1 labels)."""

    def call(self, x):
        return ops.copy(x)  # a new tensor: returning `x` itself would keep its attached mask

    def compute_mask(self, inputs, mask=None):
        return None


def _bilstm_sequence(x, units, mask, name):
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


def _inputs(num_choices=None):
    shape = (None,) if num_choices is None else (num_choices, None)
    return {name: keras.Input(shape=shape, dtype="int32", name=name) for name in INPUT_NAMES}


def _sentence_vector(encoder, outputs, padding_mask, head, mask):
    """[b, H'] sentence representation for classification, regression and multiple choice."""
    if head == "bilstm":  # [fwd state after last real token ; bwd state after [CLS]] -> [b, 2H]
        lstm = keras.layers.Bidirectional(keras.layers.LSTM(encoder.hidden_dim), name="bilstm")
        return lstm(outputs["sequence_output"], mask=mask)
    if encoder.attention == "causal":  # [CLS] sees only itself under causal attention
        return LastTokenPool(name="last_token_pool")(outputs["sequence_output"], padding_mask)
    return outputs["pooled_output"]


def build_task_model(encoder, kind, num_labels=0, head="default", feature_layers="", dropout=0.1,
                     num_choices=4, name=None):
    """A keras.Model for one task kind (see the module docstring for outputs and choices)."""
    if kind not in KINDS:
        raise BertbenchError(f"unknown task kind '{kind}'; choose one of: {', '.join(KINDS)}")
    if kind in ("classification", "tagging") and num_labels < 2:
        raise BertbenchError(f"a {kind} head needs at least 2 labels, got {num_labels}")
    if feature_layers and kind != "tagging":
        raise ConfigError(f"finetune.feature_layers='{feature_layers}' (feature-based) is only "
                          f"for tagging tasks (CoNLL-2003 NER), not {kind}; set it to \"\"")
    if feature_layers and head != "default":
        raise ConfigError("finetune.head='bilstm' cannot be combined with feature_layers: the "
                          "feature-based model already has its own 2-layer BiLSTM")
    inputs = _inputs(num_choices if kind == "multiple_choice" else None)
    enc_inputs = inputs
    if kind == "multiple_choice":  # each (context, ending) pair is one encoder row
        fold = FoldChoices(num_choices, name="fold_choices")
        enc_inputs = {k: fold(v) for k, v in inputs.items()}
    mask = ops.cast(enc_inputs["padding_mask"], "bool")  # [b, s], for the BiLSTMs
    if feature_layers:
        hidden_states = FrozenEncoder(encoder, name="frozen_encoder")(enc_inputs)
        x = select_features(hidden_states, feature_layers)
        x = _bilstm_sequence(x, encoder.hidden_dim, mask, "bilstm_1")
        x = _bilstm_sequence(x, encoder.hidden_dim, mask, "bilstm_2")
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
        logits = keras.layers.Dense(num_labels, kernel_initializer=_init(), name="tag_logits")(x)
        return keras.Model(inputs, logits, name=name or "feature_tagger")
    outputs = encoder(enc_inputs)
    if kind == "span":
        x = outputs["sequence_output"]
        if head == "bilstm":
            x = _bilstm_sequence(x, encoder.hidden_dim, mask, "bilstm")
        logits = keras.layers.Dense(2, kernel_initializer=_init(), name="span_logits")(x)  # [b, s, 2]
        return keras.Model(inputs, logits, name=name or "span_model")
    if kind == "tagging":
        x = outputs["sequence_output"]
        if head == "bilstm":
            x = _bilstm_sequence(x, encoder.hidden_dim, mask, "bilstm")
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
        logits = keras.layers.Dense(num_labels, kernel_initializer=_init(), name="tag_logits")(x)
        return keras.Model(inputs, logits, name=name or "tagger")
    x = _sentence_vector(encoder, outputs, enc_inputs["padding_mask"], head, mask)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    if kind == "classification":
        logits = keras.layers.Dense(num_labels, kernel_initializer=_init(), name="logits")(x)
        return keras.Model(inputs, logits, name=name or "classifier")
    score = keras.layers.Dense(1, kernel_initializer=_init(), name="score")(x)  # [b(*c), 1]
    if kind == "regression":
        score = keras.layers.Reshape((), name="squeeze")(score)  # [b]
        return keras.Model(inputs, score, name=name or "regressor")
    logits = FoldChoices(num_choices, fold=False, name="unfold_choices")(score)  # [b, c]
    return keras.Model(inputs, logits, name=name or "multiple_choice")


# ---- losses: fn(y_true, y_pred) -> per-example values; Keras averages them over the batch ----


def classification_loss(y_true, y_pred):
    """y_true [b] label ids, y_pred [b, C] logits -> [b] cross-entropy."""
    labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    return keras.losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=True)


def regression_loss(y_true, y_pred):
    """y_true [b] floats, y_pred [b] -> [b] squared error."""
    return ops.square(ops.cast(ops.reshape(y_true, (-1,)), y_pred.dtype) - y_pred)


def span_loss(y_true, y_pred):
    """y_true [b, 2] (start, end) token positions, y_pred [b, s, 2] logits -> [b] mean of the two CEs.

    As google-research/bert run_squad: impossible (SQuAD v2) windows point both at [CLS] (0).
    """
    positions = ops.cast(y_true, "int32")
    start = keras.losses.sparse_categorical_crossentropy(positions[:, 0], y_pred[:, :, 0], from_logits=True)
    end = keras.losses.sparse_categorical_crossentropy(positions[:, 1], y_pred[:, :, 1], from_logits=True)
    return (start + end) / 2.0


def tagging_loss(y_true, y_pred):
    """y_true [b, s] tag ids (-1 = ignored), y_pred [b, s, C] -> [b] values whose batch mean is the
    mean cross-entropy over the labelled (first-piece) tokens of the batch."""
    labels = ops.cast(y_true, "int32")
    mask = ops.cast(labels != IGNORE_LABEL, y_pred.dtype)  # [b, s]
    ce = keras.losses.sparse_categorical_crossentropy(ops.maximum(labels, 0), y_pred, from_logits=True)
    per_example = ops.sum(ce * mask, axis=1)  # [b]
    batch = ops.cast(ops.shape(labels)[0], y_pred.dtype)
    return per_example * batch / ops.maximum(ops.sum(mask), 1.0)


LOSSES = {"classification": classification_loss, "regression": regression_loss, "span": span_loss,
          "tagging": tagging_loss, "multiple_choice": classification_loss}


def task_loss(kind):
    """The loss function of a task kind, for `model.compile(loss=...)`."""
    if kind not in LOSSES:
        raise BertbenchError(f"unknown task kind '{kind}'; choose one of: {', '.join(KINDS)}")
    return LOSSES[kind]


def first_piece_predictions(logits, labels_mask):
    """Per-row lists of argmax tag ids at the labelled positions (first piece of each word).

    logits [n, s, C] numpy; labels_mask [n, s] bool (True where a word starts). Returns list of
    lists in word order.
    """
    ids = logits.argmax(-1)
    return [row_ids[row_mask].tolist() for row_ids, row_mask in zip(ids, labels_mask)]
