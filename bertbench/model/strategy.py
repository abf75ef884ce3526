"""The `tf.distribute` strategy for a run: the model is built inside `strategy.scope()` in exactly one
place (the training loops). No home-made distribution layer."""

from bertbench.errors import unknown_name

STRATEGIES = ("default", "one_device", "mirrored", "multiworker", "tpu")
_CREATED = {}  # one strategy per name per process: a second MirroredStrategy breaks collectives


def get_strategy(name="default", tpu_address=""):
    """The process's strategy `name`, created on first use (see `_make_strategy`)."""
    key = (name, tpu_address)
    if key not in _CREATED:
        _CREATED[key] = _make_strategy(name, tpu_address)
    return _CREATED[key]


def _make_strategy(name, tpu_address):
    """A tf.distribute.Strategy by name.

    default      the default (no-op) strategy: one device, whatever TF places on it
    one_device   OneDeviceStrategy on the first GPU, else the CPU
    mirrored     MirroredStrategy over all local GPUs (or the logical CPUs, e.g. in tests)
    multiworker  MultiWorkerMirroredStrategy; workers come from $TF_CONFIG (set by the scheduler)
    tpu          TPUStrategy on `tpu_address` (or the TPU the environment declares)
    """
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise unknown_name("strategy", name, STRATEGIES)


def split_cpu(num_devices):
    """Expose `num_devices` logical CPUs (before TF initialises) so `mirrored` can be tested on a CPU."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)])
