"""AdamW with linear warmup + linear decay, as google-research/bert `optimization.py`.

Differences from the original, on purpose: Keras' AdamW applies Adam's bias correction (the
original omits it); everything else (decoupled weight decay scaled by the learning rate, no decay
on LayerNorm and bias, global-norm clipping at 1.0, epsilon 1e-6) is the same.
"""

import keras

# Variables whose names contain these get no weight decay (LayerNorm gamma/beta, every bias).
NO_DECAY = ("bias", "gamma", "beta", "layer_norm", "layernorm")


@keras.saving.register_keras_serializable(package="bertbench")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """0 -> peak linearly over `warmup_steps`, then linearly to 0 at `total_steps`."""

    def __init__(self, peak_learning_rate, warmup_steps, total_steps):
        self.peak_learning_rate = peak_learning_rate
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        peak = keras.ops.cast(self.peak_learning_rate, "float32")
        warmup = keras.ops.cast(max(self.warmup_steps, 1), "float32")
        decay_span = keras.ops.cast(max(self.total_steps - self.warmup_steps, 1), "float32")
        warm = peak * step / warmup
        decay = peak * keras.ops.maximum(0.0, 1.0 - (step - self.warmup_steps) / decay_span)
        return keras.ops.where(step < self.warmup_steps, warm, decay)

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps}


def create_optimizer(learning_rate, num_steps, warmup_steps, weight_decay=0.01, beta_1=0.9, beta_2=0.999,
                     epsilon=1e-6, clip_norm=1.0):
    """AdamW on a warmup + linear-decay schedule, LayerNorm/bias excluded from weight decay."""
    optimizer = keras.optimizers.AdamW(
        learning_rate=WarmupLinearDecay(learning_rate, warmup_steps, num_steps),
        weight_decay=weight_decay, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
        global_clipnorm=clip_norm if clip_norm > 0 else None)
    optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY))
    return optimizer
