"""The Keras dtype policy of a pretraining run: `pretrain.precision`, with "auto" resolved per device.

    auto            mixed_bfloat16 on TPUs, on GPUs with bf16 (compute capability >= 8.0) and on CPUs
                    with bf16 instructions (avx512_bf16 or amx_bf16 in /proc/cpuinfo); mixed_float16
                    (with dynamic loss scaling) on older GPUs; float32 otherwise
    float32         full precision (what the `ci` scale pins: a regression baseline must not depend on
                    the machine)
    mixed_bfloat16  bf16 compute, fp32 variables
    mixed_float16   fp16 compute, fp32 variables; the optimizer is wrapped in a LossScaleOptimizer

The resolved name goes into the run's summary (and so its record) as "precision".
"""

from pathlib import Path

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
BF16_GPU_CAPABILITY = (8, 0)  # Ampere and later compute in bf16


def choose_precision(tpu, gpu_capabilities, cpu_flags):
    """The policy "auto" stands for, from what the machine has (a pure function, for tests).

    tpu: a TPU is in use; gpu_capabilities: (major, minor) of each visible GPU; cpu_flags: a set of
    /proc/cpuinfo flags."""
    if tpu:
        return "mixed_bfloat16"
    if gpu_capabilities:
        if all(tuple(c) >= BF16_GPU_CAPABILITY for c in gpu_capabilities):
            return "mixed_bfloat16"
        return "mixed_float16"
    if any(flag in cpu_flags for flag in BF16_CPU_FLAGS):
        return "mixed_bfloat16"
    return "float32"


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU's feature flags (empty where /proc/cpuinfo is not there, e.g. macOS)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def resolve_precision(name, strategy=None):
    """The dtype policy name a run uses: `name`, or for "auto" what `choose_precision` picks for the
    devices of `strategy` (a tf.distribute.Strategy; None: the default one)."""
    if name != "auto":
        return name
    import tensorflow as tf

    tpu = isinstance(strategy, (tf.distribute.TPUStrategy,)) or bool(tf.config.list_logical_devices("TPU"))
    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capabilities.append(tuple(details.get("compute_capability", (0, 0))))
    return choose_precision(tpu, capabilities, cpu_flags())


def wrap_optimizer(optimizer, policy_name):
    """The optimizer a policy needs: fp16 gets dynamic loss scaling (small gradients would underflow)."""
    if policy_name != "mixed_float16":
        return optimizer
    import keras

    return keras.mixed_precision.LossScaleOptimizer(optimizer)
