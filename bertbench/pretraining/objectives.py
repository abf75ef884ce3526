"""Objective heads on top of the encoder: MLM (+ NSP) and the left-to-right LM of Table 5.

The encoder knows nothing of these heads (keras-hub's backbone/task split). The MLM head is
google-research/bert's `get_masked_lm_output`: dense + GELU + LayerNorm, then the output projection
tied to the token embedding, plus an output bias (keras_hub.layers.MaskedLMHead). The LTR model uses
the same head at every position, predicting the next token under causal attention.
"""

import math

import keras
import tensorflow as tf
from keras_hub.layers import MaskedLMHead

from bertbench.model.layers import keras_activation

ENCODER_INPUTS = ("token_ids", "segment_ids", "padding_mask")


@keras.saving.register_keras_serializable(package="bertbench")
class BertPretrainer(keras.Model):
    """encoder + objective heads -> {"lm": [b, P, V] logits, "nsp": [b, 2] logits (mlm+nsp only)}.

    `activation`, `layer_norm_epsilon`, `initializer_range` are the encoder's model config values:
    the MLM head's transform uses the same activation function as the encoder's feed-forward layers
    (`bertbench.model.layers.keras_activation`, the one mapping of names).
    """

    def __init__(self, encoder, objective, activation="gelu", layer_norm_epsilon=1e-12,
                 initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        # === Layers ===
        self.encoder = encoder
        init = keras.initializers.TruncatedNormal(stddev=initializer_range)
        # The head computes in the encoder's policy: under mixed_bfloat16 its transform and the
        # [b*P, H] x [H, V] output matmul run in bf16 (+12% steps/s at mini; in float32 they cost as much
        # as the encoder's gain), the logits are cast to float32 for the softmax and the loss
        # (`loss_sums`). Under mixed_float16 it stays float32: fp16 logits can overflow.
        policy = encoder.dtype_policy.name
        head_dtype = "float32" if policy == "mixed_float16" else encoder.dtype_policy
        self.lm_head = MaskedLMHead(token_embedding=encoder.token_embedding,
                                    intermediate_activation=keras_activation(activation),
                                    layer_norm_epsilon=layer_norm_epsilon, kernel_initializer=init,
                                    dtype=head_dtype, name="lm_head")
        if policy == "mixed_bfloat16":
            # keras-hub builds the head with autocast=False: its float32 output bias would then meet the
            # bf16 logits (an error in eager calls; promoted to float32 when traced). Autocast reads the
            # bias in bf16, the same way eager and traced.
            self.lm_head.autocast = True
        self.nsp_head = (keras.layers.Dense(2, kernel_initializer=init, dtype=encoder.dtype_policy,
                                            name="nsp_head")
                         if objective == "mlm+nsp" else None)
        # === Config ===
        self.objective = objective
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range

    def get_config(self):
        # As keras-hub's Task: the init arguments, the encoder serialised (not the functional config).
        return {"name": self.name, "trainable": self.trainable,
                "encoder": keras.layers.serialize(self.encoder), "objective": self.objective,
                "activation": self.activation, "layer_norm_epsilon": self.layer_norm_epsilon,
                "initializer_range": self.initializer_range}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("encoder"), dict):
            config["encoder"] = keras.layers.deserialize(config["encoder"])
        return cls(**config)

    def call(self, features, training=False):
        outputs = self.encoder({k: features[k] for k in ENCODER_INPUTS}, training=training)
        sequence = outputs["sequence_output"]  # [b, s, H]
        if self.objective == "ltr":  # predict the next token at every position
            batch, seq = tf.shape(sequence)[0], tf.shape(sequence)[1]
            positions = tf.broadcast_to(tf.range(seq)[None, :], [batch, seq])
        else:
            positions = features["masked_lm_positions"]  # [b, P]
        logits = {"lm": self.lm_head(sequence, mask_positions=positions)}
        if self.nsp_head is not None:
            logits["nsp"] = self.nsp_head(outputs["pooled_output"])
        return logits


def lm_label_keys(objective):
    """(ids, weights) label names of the LM targets for an objective."""
    if objective == "ltr":
        return "next_token_ids", "next_token_weights"
    return "masked_lm_ids", "masked_lm_weights"


def loss_sums(logits, labels, objective):
    """Per-batch SUMS (not means) so the loop can normalise by global counts across replicas.

    Returns a dict of scalars: lm_loss_sum, lm_correct, lm_count, and for NSP nsp_loss_sum,
    nsp_correct, nsp_count.
    """
    ids_key, weights_key = lm_label_keys(objective)
    lm_logits = tf.cast(logits["lm"], tf.float32)  # [b, P, V]; softmax in fp32 under mixed precision
    ids = tf.cast(labels[ids_key], tf.int32)
    weights = tf.cast(labels[weights_key], tf.float32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=ids, logits=lm_logits)  # [b, P]
    hit = tf.cast(tf.equal(tf.argmax(lm_logits, -1, output_type=tf.int32), ids), tf.float32)
    sums = {"lm_loss_sum": tf.reduce_sum(ce * weights), "lm_correct": tf.reduce_sum(hit * weights),
            "lm_count": tf.reduce_sum(weights)}
    if "nsp" in logits:
        nsp_logits = tf.cast(logits["nsp"], tf.float32)
        nsp_ids = tf.cast(tf.reshape(labels["next_sentence_labels"], [-1]), tf.int32)
        nsp_ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=nsp_ids, logits=nsp_logits)
        nsp_hit = tf.equal(tf.argmax(nsp_logits, -1, output_type=tf.int32), nsp_ids)
        sums.update(nsp_loss_sum=tf.reduce_sum(nsp_ce), nsp_correct=tf.reduce_sum(tf.cast(nsp_hit, tf.float32)),
                    nsp_count=tf.cast(tf.size(nsp_ids), tf.float32))
    return sums


def total_loss(sums, counts):
    """The objective: mean LM loss over real predictions (+ mean NSP loss), given GLOBAL counts."""
    loss = sums["lm_loss_sum"] / tf.maximum(counts["lm_count"], 1.0)
    if "nsp_loss_sum" in sums:
        loss += sums["nsp_loss_sum"] / tf.maximum(counts["nsp_count"], 1.0)
    return loss


def summarize(totals):
    """Host-side metrics from accumulated sums: losses, accuracies, perplexity."""
    out = {}
    if totals.get("lm_count"):
        out["lm_loss"] = totals["lm_loss_sum"] / totals["lm_count"]
        out["lm_accuracy"] = totals["lm_correct"] / totals["lm_count"]
        out["lm_perplexity"] = math.exp(min(out["lm_loss"], 50.0))
    if totals.get("nsp_count"):
        out["nsp_loss"] = totals["nsp_loss_sum"] / totals["nsp_count"]
        out["nsp_accuracy"] = totals["nsp_correct"] / totals["nsp_count"]
    return out
