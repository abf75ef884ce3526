"""Where a training step's time goes: a TensorFlow profiler trace of a few steps, op time grouped by kind.

The trace (`tf.profiler.experimental`) records every kernel the executor runs on the host threads as an
event named `node_name:op_type`. Each event's duration goes to one group:

    optimizer          any op under the optimizer's name scope (AdamW's update, clipping, the schedule)
    matmul             MatMul / BatchMatMul / Einsum kernels (oneDNN `_Mkl*`, `_Fused*` included)
    casts              Cast (dtype conversions: bf16 <-> fp32 under a mixed policy)
    softmax+layernorm  Softmax / LogSoftmax / cross-entropy kernels, and every op under a LayerNorm scope
    elementwise        the other pointwise math (add, mul, GELU's erf/tanh, dropout's select, bias add)
    other              gathers, reductions, transposes, reshapes, copies, collectives, ...

Op time is summed over threads (two ops on two cores count twice), so the groups are shares of the
total op time, printed beside the step's wall time; a share tells what a lever can win at most.
"""

import glob
import os
import shutil
import tempfile
import time

GROUPS = ("matmul", "elementwise", "casts", "softmax+layernorm", "optimizer", "other")
MATMUL = ("MatMul", "Einsum", "Conv2D")
SOFTMAX = ("Softmax", "SoftmaxGrad", "LogSoftmax", "SparseSoftmaxCrossEntropyWithLogits")
NORM_SCOPES = ("layer_norm", "layernorm", "layernormalization")
OPTIMIZER_SCOPES = ("adam", "loss_scale_optimizer")  # a name scope starting so: Keras' AdamW is "adam_w"
ELEMENTWISE = {
    "AddV2", "Add", "AddN", "Sub", "Mul", "RealDiv", "Div", "DivNoNan", "Neg", "Square", "Sqrt", "Rsqrt",
    "RsqrtGrad", "SqrtGrad", "Pow", "Exp", "Log", "Erf", "Erfc", "Tanh", "TanhGrad", "Maximum", "Minimum",
    "Select", "SelectV2", "BiasAdd", "BiasAddGrad", "Relu", "ReluGrad", "Gelu", "GeluGrad", "Reciprocal",
    "SquaredDifference", "GreaterEqual", "Greater", "Less", "LessEqual", "Equal", "LogicalAnd", "ZerosLike",
    "OnesLike", "Sigmoid", "Abs", "Sign", "Floor", "FloorMod", "StatelessRandomUniformV2",
    "StatelessRandomGetKeyCounter", "Fill", "Identity"}


def op_group(node_name, op_type):
    """The group of one kernel event (`node_name` as traced, `op_type` without oneDNN's prefix)."""
    name = node_name.lower()
    base = op_type.removeprefix("_Mkl").removeprefix("_Fused").removeprefix("Mkl")
    if any(part.startswith(OPTIMIZER_SCOPES) for part in name.split("/")):  # not Grappler's "ArithmeticOptimizer"
        return "optimizer"
    if any(kind in base for kind in MATMUL):
        return "matmul"
    if base == "Cast":
        return "casts"
    if base in SOFTMAX or any(scope in name for scope in NORM_SCOPES):
        return "softmax+layernorm"
    if base in ELEMENTWISE:
        return "elementwise"
    return "other"


def read_trace(logdir):
    """[(node_name, op_type, seconds)] of every kernel event in the newest trace under `logdir`."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    files = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True), key=os.path.getmtime)
    if not files:
        return []
    space = xplane_pb2.XSpace()
    with open(files[-1], "rb") as handle:
        space.ParseFromString(handle.read())
    events = []
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                meta = plane.event_metadata[event.metadata_id]
                if meta.display_name and ":" in meta.name:  # a kernel: "node_name:op_type"
                    events.append((meta.name.rsplit(":", 1)[0], meta.display_name, event.duration_ps * 1e-12))
    return events


def breakdown(events, steps, wall_s):
    """{"groups": {group: {"seconds_per_step", "share"}}, "op_seconds_per_step", "wall_seconds_per_step",
    "top_ops": the 12 op types with most time} from traced kernel events of `steps` steps."""
    totals, types = dict.fromkeys(GROUPS, 0.0), {}
    for node, op_type, seconds in events:
        group = op_group(node, op_type)
        totals[group] += seconds
        key = f"{group}: {op_type}"
        types[key] = types.get(key, 0.0) + seconds
    op_time = sum(totals.values())
    top = sorted(types.items(), key=lambda kv: -kv[1])[:12]
    return {"groups": {g: {"seconds_per_step": t / steps, "share": t / op_time if op_time else 0.0}
                       for g, t in totals.items()},
            "op_seconds_per_step": op_time / steps, "wall_seconds_per_step": wall_s / steps,
            "top_ops": [{"op": k, "seconds_per_step": t / steps} for k, t in top], "profiled_steps": steps}


def profile_steps(step_fn, batches, steps):
    """The op-time breakdown of `steps` calls of `step_fn(batch)` (already traced: call it once before)."""
    import tensorflow as tf

    logdir = tempfile.mkdtemp(prefix="bertbench-profile-")
    try:
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        for i in range(steps):
            step_fn(batches[i % len(batches)])
        wall = time.perf_counter() - start
        tf.profiler.experimental.stop()
        return breakdown(read_trace(logdir), steps, wall)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)


def format_breakdown(name, result):
    """One line per model: each group's ms per step and share of op time."""
    parts = ", ".join(f"{g} {v['seconds_per_step'] * 1e3:,.0f} ms ({100 * v['share']:.0f}%)"
                      for g, v in result["groups"].items())
    return (f"{name}: step {result['wall_seconds_per_step'] * 1e3:,.0f} ms wall, "
            f"{result['op_seconds_per_step'] * 1e3:,.0f} ms op time: {parts}")
