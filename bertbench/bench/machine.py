"""The machine a benchmark runs on: CPU model and flags, library versions, and the measured matmul
FLOP/s (fp32, bf16) on the model's own shapes and a large square, the peak that MFU divides by."""

import math
import statistics
import time

from bertbench.results.provenance import hardware


def machine_info():
    """CPU model, cores, CPU flags that matter for matmuls, TF / Keras / keras-hub versions."""
    import keras
    import keras_hub
    import tensorflow as tf

    flags = set()
    try:
        with open("/proc/cpuinfo") as handle:
            flags = set(next((l.split(":", 1)[1].split() for l in handle if l.startswith("flags")), []))
    except OSError:
        pass
    hw = hardware()
    return {"cpu_model": hw["cpu_model"], "cpu_cores": hw["cpu_cores"], "memory_gb": hw["memory_gb"],
            "accelerators": hw["accelerators"], "avx512f": "avx512f" in flags,
            "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags,
            "tensorflow": tf.__version__, "keras": keras.__version__, "keras_hub": keras_hub.__version__,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}


def matmul_shapes(model_cfg, batch_size, seq_length, predictions, square):
    """(name, m, k, n) of the model's main matmuls ([tokens, H] x [H, 4H] ...) and a large square."""
    tokens, h, inter = batch_size * seq_length, model_cfg.hidden_dim, model_cfg.intermediate_dim
    return [("ffn_in [bs,H]x[H,I]", tokens, h, inter), ("ffn_out [bs,I]x[I,H]", tokens, inter, h),
            ("proj [bs,H]x[H,H]", tokens, h, h),
            ("mlm_out [bP,H]x[H,V]", batch_size * predictions, h, model_cfg.vocabulary_size),
            (f"square {square}", square, square, square)]


def time_matmul(m, k, n, dtype, repeats=5, min_time=0.1, seed=0):
    """(median, best) FLOP/s of tf.linalg.matmul([m,k] x [k,n]) over `repeats` timed repeats, after warm-up.

    Each repeat runs enough back-to-back matmuls to last about `min_time` seconds (eager CPU ops
    run synchronously, so the clock measures the kernels)."""
    import tensorflow as tf

    gen = tf.random.Generator.from_seed(seed)
    a = tf.cast(gen.normal([m, k]), dtype)
    b = tf.cast(gen.normal([k, n]), dtype)
    tf.linalg.matmul(a, b)  # warm-up: kernel selection, allocations
    start = time.perf_counter()
    tf.linalg.matmul(a, b)
    iters = max(1, math.ceil(min_time / max(time.perf_counter() - start, 1e-6)))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iters):
            tf.linalg.matmul(a, b)
        rates.append(2.0 * m * k * n * iters / (time.perf_counter() - start))
    return statistics.median(rates), max(rates)


def matmul_peaks(shapes, dtypes, repeats, min_time):
    """{dtype: {"peak_flops_per_s": best median, "shapes": [{name, m, k, n, flops_per_s (median),
    best_repeat_flops_per_s}]}}."""
    out = {}
    for dtype in dtypes:
        rows = []
        for name, m, k, n in shapes:
            median, best = time_matmul(m, k, n, dtype, repeats, min_time)
            rows.append({"name": name, "m": m, "k": k, "n": n, "flops_per_s": median, "best_repeat_flops_per_s": best})
        out[dtype] = {"peak_flops_per_s": max(r["flops_per_s"] for r in rows), "shapes": rows}
    return out
