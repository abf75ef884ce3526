"""The `tf.distribute` strategy for a run: the model is built inside `strategy.scope()` in exactly one
place (the training loops). No home-made distribution layer."""

import json
import os

from bertbench.errors import BertbenchError, unknown_name

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
        check_tf_config(os.environ.get("TF_CONFIG"))
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        return _tpu_strategy(tf, tpu_address)
    raise unknown_name("strategy", name, STRATEGIES)


def check_tf_config(text):
    """$TF_CONFIG as MultiWorkerMirroredStrategy reads it: {"cluster": {"worker": [...]}, "task":
    {"type": "worker", "index": i}}; a one-line error when it is missing or malformed."""
    fix = ('set TF_CONFIG to {"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": '
           '"worker", "index": I}} on each worker (docs/SCALE.md)')
    if not text:
        raise BertbenchError(f"--strategy multiworker needs $TF_CONFIG, which is not set; {fix}")
    try:
        config = json.loads(text)
        workers = [w for kind in ("chief", "worker") for w in config["cluster"].get(kind, [])]
        task_type, index = config["task"]["type"], int(config["task"]["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise BertbenchError(f"$TF_CONFIG is not valid ({type(err).__name__}: {err}); {fix}") from None
    if not workers or len(config["cluster"].get(task_type, [])) <= index:
        raise BertbenchError(f"$TF_CONFIG's task {task_type}:{index} is not in its cluster; {fix}")
    return config


def _tpu_strategy(tf, tpu_address):
    """TPUStrategy on `tpu_address` (or the TPU the environment declares); one line when none is reachable."""
    try:
        # "local": the TPU of this Cloud TPU VM; a name or grpc:// address: a TPU node
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=tpu_address or os.environ.get("TPU_NAME") or None)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, OSError, tf.errors.OpError) as err:  # OSError: metadata lookups
        where = f"at '{tpu_address}'" if tpu_address else "(none in $TPU_NAME or on this machine)"
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BertbenchError(f"--strategy tpu: no TPU reachable {where} ({reason}); run on a Cloud TPU VM "
                             f"or set $TPU_NAME to the TPU's name or grpc:// address, or pick another --strategy") from None
    return tf.distribute.TPUStrategy(resolver)


def split_cpu(num_devices):
    """Expose `num_devices` logical CPUs (before TF initialises) so `mirrored` can be tested on a CPU."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)])
