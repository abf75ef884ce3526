"""The BERT encoder: embeddings, L post-LN Transformer blocks, tanh pooler (keras-hub layers).

Same layout, layer names and parameter count as `keras_hub.models.BertBackbone`, plus what the
paper's ablations and exact checkpoint imports need: exact (erf) or tanh GELU, a configurable
LayerNorm epsilon, left-to-right (causal) attention, and every layer's output (`hidden_states`).
"""

import inspect

import keras
import keras_hub

from bertbench.model.layers import CausalAttentionMask, keras_activation

ATTENTIONS = ("bidirectional", "causal")


def _init(stddev):
    return keras.initializers.TruncatedNormal(stddev=stddev)


@keras.saving.register_keras_serializable(package="bertbench")
class BertEncoder(keras.Model):
    """BERT encoder (functional model).

    Inputs: dict of [batch, seq] int32 `token_ids`, `segment_ids`, `padding_mask` (1 = real token).
    Outputs: dict `sequence_output` [b, s, H], `pooled_output` [b, H] (dense + tanh on [CLS]),
    `hidden_states`: list of L+1 [b, s, H] (embedding output, then each block's output).
    """

    def __init__(self, vocabulary_size, num_layers, hidden_dim, num_heads, intermediate_dim,
                 max_sequence_length=512, num_segments=2, dropout=0.1, activation="gelu",
                 layer_norm_epsilon=1e-12, attention="bidirectional", initializer_range=0.02,
                 **kwargs):
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        dtype = kwargs.pop("dtype", None)
        activation_fn = keras_activation(activation)  # raises on an unknown name
        # === Layers (names as in keras_hub BertBackbone, so weights transfer by name) ===
        self.token_embedding = keras_hub.layers.ReversibleEmbedding(
            vocabulary_size, hidden_dim, embeddings_initializer=_init(initializer_range),
            dtype=dtype, name="token_embedding")
        self.position_embedding = keras_hub.layers.PositionEmbedding(
            sequence_length=max_sequence_length, initializer=_init(initializer_range),
            dtype=dtype, name="position_embedding")
        self.segment_embedding = keras.layers.Embedding(
            num_segments, hidden_dim, embeddings_initializer=_init(initializer_range),
            dtype=dtype, name="segment_embedding")
        self.embeddings_add = keras.layers.Add(dtype=dtype, name="embeddings_add")
        self.embeddings_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="embeddings_layer_norm")
        self.embeddings_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="embeddings_dropout")
        self.causal_mask = (CausalAttentionMask(dtype=dtype, name="causal_mask")
                            if attention == "causal" else None)
        self.transformer_layers = [
            keras_hub.layers.TransformerEncoder(
                intermediate_dim=intermediate_dim, num_heads=num_heads, dropout=dropout,
                activation=activation_fn, layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=_init(initializer_range), normalize_first=False,  # post-LN
                dtype=dtype, name=f"transformer_layer_{i}")
            for i in range(num_layers)]
        self.pooled_dense = keras.layers.Dense(
            hidden_dim, activation="tanh", kernel_initializer=_init(initializer_range),
            dtype=dtype, name="pooled_dense")

        inputs, outputs = self._functional_graph()
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.max_sequence_length = max_sequence_length
        self.num_segments = num_segments
        self.dropout = dropout
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.attention = attention
        self.initializer_range = initializer_range

    def _functional_graph(self):
        """Symbolic inputs and outputs of the encoder, from the layers made in __init__."""
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name)
                  for name in ("token_ids", "segment_ids", "padding_mask")}
        tokens = self.token_embedding(inputs["token_ids"])  # [b, s, H]
        positions = self.position_embedding(tokens)  # [b, s, H]
        segments = self.segment_embedding(inputs["segment_ids"])  # [b, s, H]
        x = self.embeddings_add((tokens, positions, segments))
        x = self.embeddings_dropout(self.embeddings_layer_norm(x))
        attention_mask = self.causal_mask(inputs["padding_mask"]) if self.causal_mask else None
        hidden_states = [x]
        for block in self.transformer_layers:
            x = block(x, padding_mask=inputs["padding_mask"], attention_mask=attention_mask)
            hidden_states.append(x)
        pooled = self.pooled_dense(x[:, 0, :])  # [CLS] is position 0
        return inputs, {"sequence_output": x, "pooled_output": pooled, "hidden_states": hidden_states}

    def get_config(self):
        # Not the functional graph config: the init arguments, so from_config is cls(**config).
        return {"name": self.name, "trainable": self.trainable,
                "dtype": keras.dtype_policies.serialize(self.dtype_policy),
                **{field: getattr(self, field) for field in ENCODER_FIELDS}}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)


# The encoder's fields, in one place: its init arguments. get_config, `build_encoder` and the keras-hub
# transfer (model/convert.py) derive their lists from it; ModelConfig (the settings) has exactly these
# fields, which tests/test_encoder.py checks, so checkpoints map one onto the other by name.
ENCODER_FIELDS = tuple(name for name in inspect.signature(BertEncoder.__init__).parameters
                       if name not in ("self", "kwargs"))


def encoder_kwargs(model_cfg):
    """BertEncoder init arguments of a bertbench.config.ModelConfig (or any object with its fields)."""
    return {field: getattr(model_cfg, field) for field in ENCODER_FIELDS}


def build_encoder(model_cfg, **kwargs):
    """A randomly initialised BertEncoder for `model_cfg` (seed with keras.utils.set_random_seed)."""
    return BertEncoder(**encoder_kwargs(model_cfg), **kwargs)
