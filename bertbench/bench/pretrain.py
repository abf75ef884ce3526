"""`bench` command: speed benchmarks, measured side by side on the same machine in one run.

`bench pretrain` measures, in this order: the machine's matmul FLOP/s (fp32, and bf16 under
mixed_bfloat16) on shapes of the model and one large square; the input pipeline alone (batches/s of
the dynamic-masking dataset); then steady-state MLM+NSP training of our encoder and of the keras-hub
peer (`keras_hub.models.BertBackbone` of equal size, same heads, optimizer, batches and Trainer),
interleaved (ours, peer, peer, ours, ...) so machine noise hits both alike. Figures: median step time,
sequences/s, tokens/s, MFU = estimate_flops per step / step time / measured matmul peak.
"""

import dataclasses
import math
import statistics
import time

from bertbench.errors import BertbenchError

WHATS = ("pretrain",)
PRECISIONS = ("float32", "mixed_bfloat16")


# ---------------------------------------------------------------------------------------------
# Machine


def machine_info():
    """CPU model, cores, CPU flags that matter for matmuls, TF / Keras / keras-hub versions."""
    import keras
    import keras_hub
    import tensorflow as tf

    from bertbench.results.records import hardware

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


# ---------------------------------------------------------------------------------------------
# Batches and models


def real_batches(corpus, seq_length, batch_size, count):
    """`count` batches of the training dataset, materialised (the pipeline stays out of the timing)."""
    it = iter(corpus.train_dataset(seq_length, batch_size))
    return [next(it) for _ in range(count)]


def synthetic_ids(batches, vocab_size, first_id, pad_id, seed):
    """Real batch structure (padding, segments, mask positions, NSP labels) with token and target ids
    drawn uniformly from [first_id, vocab_size): a model vocabulary larger than the bundled one."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    out = []
    for features, labels in batches:
        mask = features["padding_mask"].numpy()  # [b, s]
        ids = np.where(mask > 0, rng.integers(first_id, vocab_size, mask.shape), pad_id).astype(np.int32)
        targets = rng.integers(first_id, vocab_size, labels["masked_lm_ids"].shape).astype(np.int32)
        out.append(({**features, "token_ids": tf.constant(ids)},
                    {**labels, "masked_lm_ids": tf.constant(targets)}))
    return out


def peer_encoder(model_cfg):
    """keras_hub BertBackbone of the same size (its activation is always the tanh GELU)."""
    import keras_hub

    return keras_hub.models.BertBackbone(
        vocabulary_size=model_cfg.vocabulary_size, num_layers=model_cfg.num_layers,
        num_heads=model_cfg.num_heads, hidden_dim=model_cfg.hidden_dim,
        intermediate_dim=model_cfg.intermediate_dim, dropout=model_cfg.dropout,
        max_sequence_length=model_cfg.max_sequence_length, num_segments=model_cfg.num_segments)


def build_trainers(model_cfg, cfg, batch, seed):
    """{"ours": Trainer(our encoder), "peer": Trainer(BertBackbone)}, variables built."""
    import keras
    import tensorflow as tf

    from bertbench.pretraining.loop import Trainer

    trainers = {}
    for name, encoder_fn in (("ours", None), ("peer", peer_encoder)):
        keras.utils.set_random_seed(seed)
        trainers[name] = Trainer(model_cfg, cfg, tf.distribute.get_strategy(), encoder_fn=encoder_fn)
        build_in_graph(trainers[name], batch)
    return trainers


def build_in_graph(trainer, batch):
    """Trainer.build with the model's first call traced: under mixed_bfloat16 an EAGER call of
    keras_hub's MaskedLMHead fails (`bf16 logits + float32 bias`, keras-hub 0.32 sets autocast=False
    on that layer); traced, the add promotes to float32 as it does inside the training step."""
    import tensorflow as tf

    features, _ = batch
    with trainer.strategy.scope():
        tf.function(lambda f: trainer.model(f, training=False), autograph=False)(
            {k: v[:1] for k, v in features.items()})
        trainer.optimizer.build(trainer.model.trainable_variables)


def time_steps(trainer, batches, count, offset=0):
    """Seconds of each of `count` training steps (train_step returns host floats: synchronous)."""
    times = []
    for i in range(count):
        batch = batches[(offset + i) % len(batches)]
        start = time.perf_counter()
        trainer.train_step(batch)
        times.append(time.perf_counter() - start)
    return times


def interleaved(trainers, batches, warmup, steps, rounds):
    """Warm up each model, then `rounds` rounds that time each model back to back, the order flipped
    every round (A B, B A, A B ...: neither model always runs right after the other); per-model step
    times of the warm-up and of each round."""
    times = {name: {"warmup": time_steps(t, batches, warmup), "rounds": []} for name, t in trainers.items()}
    per_round = math.ceil(steps / rounds)
    names = list(trainers)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            times[name]["rounds"].append(time_steps(trainers[name], batches, per_round, offset=warmup + r * per_round))
    return times


def throughput(step_times, batch_size, seq_length, flops_per_step, peak, fp32_peak):
    """Figures of one model from its timed step times (median: robust to a noisy neighbour)."""
    step = statistics.median(step_times)
    achieved = flops_per_step / step
    return {"median_step_s": step, "min_step_s": min(step_times), "max_step_s": max(step_times),
            "timed_steps": len(step_times), "sequences_per_s": batch_size / step,
            "tokens_per_s": batch_size * seq_length / step, "model_flops_per_step": flops_per_step,
            "achieved_flops_per_s": achieved, "mfu": achieved / peak, "mfu_vs_fp32_peak": achieved / fp32_peak}


def input_pipeline_rate(corpus, seq_length, batch_size, count, skip=3):
    """Batches/s of the training dataset alone (dynamic masking included), after `skip` batches."""
    it = iter(corpus.train_dataset(seq_length, batch_size))
    for _ in range(skip):
        next(it)
    start = time.perf_counter()
    for _ in range(count):
        next(it)
    return count / (time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------
# `bench pretrain`


@dataclasses.dataclass(frozen=True)
class PretrainBench:
    model: str = "mini"  # preset name (bertbench models)
    model_overrides: tuple = ()  # "key=value" ModelConfig overrides (e.g. activation=gelu_approximate)
    seq_length: int = 128  # the paper's phase-1 length
    batch_size: int = 32
    steps: int = 20  # timed steps per model, split over `rounds`
    warmup: int = 3  # untimed steps per model (the first traces the step)
    rounds: int = 10  # ours, peer, ours, peer, ...: machine noise hits both alike
    precision: str = "float32"  # or mixed_bfloat16
    jit: bool = False  # XLA-compile the forward/backward
    vocab_size: int = 0  # 0 = the bundled vocabulary (real ids); else synthetic ids in this vocabulary
    vocab: str = "sample"  # vocab.txt of the corpus tokenizer
    corpus: str = "sample"  # the bundled sample corpus, or a corpus file/folder
    matmul_size: int = 2048  # the large square matmul
    matmul_repeats: int = 5
    matmul_min_time: float = 0.1  # seconds per repeat
    pipeline_batches: int = 50  # batches timed for the input pipeline
    seed: int = 0

    def check(self):
        for name in ("seq_length", "batch_size", "steps", "warmup", "rounds", "matmul_size", "matmul_repeats",
                     "pipeline_batches"):
            if getattr(self, name) <= 0:
                raise BertbenchError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if self.seq_length < 8:
            raise BertbenchError(f"--seq-length must be at least 8, got {self.seq_length}")
        if self.rounds > self.steps:
            raise BertbenchError(f"--rounds ({self.rounds}) must not exceed --steps ({self.steps})")
        if self.precision not in PRECISIONS:
            raise BertbenchError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.vocab_size < 0:
            raise BertbenchError(f"--vocab-size must be positive (or 0 for the bundled vocabulary), got {self.vocab_size}")


def model_config(opts):
    """The preset with its overrides (the vocabulary size is set once the tokenizer is known)."""
    from bertbench.config import apply_overrides, model_preset

    model_cfg = apply_overrides(model_preset(opts.model), list(opts.model_overrides))
    if opts.seq_length > model_cfg.max_sequence_length:
        raise BertbenchError(f"--seq-length {opts.seq_length} exceeds model.max_sequence_length="
                             f"{model_cfg.max_sequence_length}")
    return model_cfg


def bench_configs(opts, tokenizer):
    """(ModelConfig, PretrainConfig) of a benchmark; the model vocabulary is the tokenizer's unless
    --vocab-size asks for synthetic ids."""
    from bertbench.config import PretrainConfig

    model_cfg = model_config(opts)
    first_id = max(tokenizer.special_ids) + 1
    if opts.vocab_size and opts.vocab_size <= first_id:
        raise BertbenchError(f"--vocab-size must exceed the special ids (> {first_id}), got {opts.vocab_size}")
    model_cfg = dataclasses.replace(model_cfg, vocabulary_size=opts.vocab_size or tokenizer.vocabulary_size)
    cfg = PretrainConfig(corpus=opts.corpus, vocab=opts.vocab, objective="mlm+nsp", max_seq_length=opts.seq_length,
                         batch_size=opts.batch_size, num_steps=opts.warmup + opts.steps + opts.rounds,
                         warmup_steps=opts.warmup, precision=opts.precision, jit_compile=opts.jit, seed=opts.seed)
    return model_cfg, cfg


def bench_pretrain(opts, log=print):
    """Run the whole `bench pretrain` measurement; returns the JSON-ready result dict."""
    import keras

    from bertbench.config import to_dict
    from bertbench.pretraining.accounting import estimate_flops
    from bertbench.pretraining.inputs import PretrainingCorpus
    from bertbench.text.tokenizer import load_tokenizer

    opts.check()
    tokenizer = load_tokenizer(opts.vocab)
    model_cfg, cfg = bench_configs(opts, tokenizer)
    result = {"benchmark": "pretrain", "options": to_dict(opts), "machine": machine_info(),
              "model": to_dict(model_cfg), "pretrain": to_dict(cfg),
              "ids": f"synthetic ids in a {opts.vocab_size}-token vocabulary (structure of the real batches)"
              if opts.vocab_size else f"real ids: corpus {opts.corpus}, {tokenizer.vocabulary_size}-token vocabulary"}
    predictions = cfg.predictions_per_seq(opts.seq_length)
    dtypes = ["float32"] + (["bfloat16"] if opts.precision == "mixed_bfloat16" else [])
    log(f"matmul peak ({', '.join(dtypes)}) ...")
    shapes = matmul_shapes(model_cfg, opts.batch_size, opts.seq_length, predictions, opts.matmul_size)
    result["matmul"] = matmul_peaks(shapes, dtypes, opts.matmul_repeats, opts.matmul_min_time)
    log("input pipeline ...")
    corpus = PretrainingCorpus(cfg, tokenizer)
    pipeline = input_pipeline_rate(corpus, opts.seq_length, opts.batch_size, opts.pipeline_batches)
    batches = real_batches(corpus, opts.seq_length, opts.batch_size, min(16, opts.warmup + opts.steps))
    if opts.vocab_size:
        batches = synthetic_ids(batches, opts.vocab_size, max(tokenizer.special_ids) + 1, tokenizer.pad_id, opts.seed)
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(opts.precision)  # before building, as bertbench.pretraining.loop does
    try:
        log(f"building ours and the keras-hub peer ({opts.model}, {opts.precision}, jit={opts.jit}) ...")
        trainers = build_trainers(model_cfg, cfg, batches[0], opts.seed)
        log(f"training: {opts.warmup} warm-up + {opts.steps} timed steps per model, {opts.rounds} rounds ...")
        times = interleaved(trainers, batches, opts.warmup, opts.steps, opts.rounds)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    flops = estimate_flops(model_cfg, dataclasses.replace(cfg, num_steps=1, warmup_steps=0))
    fp32_peak = result["matmul"]["float32"]["peak_flops_per_s"]
    peak = result["matmul"][dtypes[-1]]["peak_flops_per_s"]
    result["models"] = {}
    for name, t in times.items():
        timed = [s for r in t["rounds"] for s in r]
        result["models"][name] = dict(throughput(timed, opts.batch_size, opts.seq_length, flops, peak, fp32_peak),
                                      warmup_step_s=t["warmup"], round_step_s=t["rounds"],
                                      encoder=type(trainers[name].encoder).__name__,
                                      parameters=trainers[name].model.count_params())
    ours, peer = result["models"]["ours"], result["models"]["peer"]
    # Throughput ratio per round (ours and peer timed back to back), then the median over rounds:
    # a burst of load from another process spoils one round, not the figure.
    rounds = [statistics.median(p) / statistics.median(o) for o, p in zip(times["ours"]["rounds"],
                                                                          times["peer"]["rounds"])]
    result["round_ratios_ours_over_peer"] = rounds
    result["ratio_ours_over_peer"] = statistics.median(rounds)
    result["ratio_of_medians_ours_over_peer"] = ours["sequences_per_s"] / peer["sequences_per_s"]
    steps_per_s = 1.0 / ours["median_step_s"]
    result["input_pipeline"] = {"batches_per_s": pipeline, "train_steps_per_s": steps_per_s,
                                "ratio": pipeline / steps_per_s, "timed_batches": opts.pipeline_batches}
    return result


def format_report(result):
    """A readable table of a `bench pretrain` result."""
    o, m, mach = result["options"], result["model"], result["machine"]
    lines = [f"bench pretrain: {o['model']} (L{m['num_layers']} H{m['hidden_dim']} A{m['num_heads']} "
             f"I{m['intermediate_dim']}, {m['activation']}), seq {o['seq_length']}, batch {o['batch_size']}, "
             f"{o['precision']}, jit {'on' if o['jit'] else 'off'}; {result['ids']}",
             f"machine: {mach['cpu_model']}, {mach['cpu_cores']} cores, avx512_bf16 "
             f"{'yes' if mach['avx512_bf16'] else 'no'}, TF {mach['tensorflow']}, keras-hub {mach['keras_hub']}", ""]
    dtypes = list(result["matmul"])
    rows = [[r["name"], f"{r['m']}x{r['k']}x{r['n']}"] +
            [f"{result['matmul'][d]['shapes'][i]['flops_per_s'] / 1e9:,.1f}" for d in dtypes]
            for i, r in enumerate(result["matmul"][dtypes[0]]["shapes"])]
    rows.append(["peak (best)", ""] + [f"{result['matmul'][d]['peak_flops_per_s'] / 1e9:,.1f}" for d in dtypes])
    lines += _table(["matmul", "m x k x n"] + [f"{d} GFLOP/s" for d in dtypes], rows) + [""]
    rows = [[name, f"{r['median_step_s'] * 1e3:,.1f}", f"{r['sequences_per_s']:,.1f}", f"{r['tokens_per_s']:,.0f}",
             f"{r['achieved_flops_per_s'] / 1e9:,.1f}", f"{100 * r['mfu']:.1f}%", f"{100 * r['mfu_vs_fp32_peak']:.1f}%",
             str(r["timed_steps"])] for name, r in result["models"].items()]
    lines += _table(["model", "step ms (median)", "seq/s", "tokens/s", "GFLOP/s", "MFU", "MFU vs fp32 peak",
                     "timed steps"], rows)
    rounds = ", ".join(f"{x:.3f}" for x in result["round_ratios_ours_over_peer"])
    lines += ["", f"ours/peer throughput ratio: {result['ratio_ours_over_peer']:.3f} (median over rounds: {rounds}; "
                  f"ratio of the medians {result['ratio_of_medians_ours_over_peer']:.3f})"]
    p = result["input_pipeline"]
    verdict = "ok" if p["ratio"] >= 5 else "TOO SLOW: the input pipeline would limit training"
    lines.append(f"input pipeline: {p['batches_per_s']:,.1f} batches/s alone vs {p['train_steps_per_s']:,.2f} "
                 f"training steps/s = {p['ratio']:,.1f}x ({verdict})")
    return "\n".join(lines)


def _table(headers, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    fmt = lambda cells: "  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(cells, widths)))
    return [fmt(headers), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]


# ---------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser):
    defaults = PretrainBench()
    parser.add_argument("what", choices=WHATS, help="what to benchmark")
    parser.add_argument("--model", default=defaults.model, help="model preset (see `bertbench models`)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="model.KEY=VALUE",
                        help="override a model setting, e.g. --set model.activation=gelu_approximate")
    parser.add_argument("--seq-length", type=int, default=defaults.seq_length)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--steps", type=int, default=defaults.steps, help="timed training steps per model")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="untimed steps per model (tracing)")
    parser.add_argument("--rounds", type=int, default=defaults.rounds,
                        help="interleaved ours/peer rounds the timed steps are split over")
    parser.add_argument("--precision", default=defaults.precision, choices=PRECISIONS)
    parser.add_argument("--jit", action="store_true", help="XLA-compile the training step (jit_compile)")
    parser.add_argument("--vocab-size", type=int, default=defaults.vocab_size,
                        help="model vocabulary with synthetic ids (e.g. 30522); default: the bundled vocabulary")
    parser.add_argument("--vocab", default=defaults.vocab, help="vocab.txt of the corpus tokenizer (default: bundled)")
    parser.add_argument("--corpus", default=defaults.corpus, help="corpus file or folder (default: bundled sample)")
    parser.add_argument("--matmul-size", type=int, default=defaults.matmul_size, help="side of the square matmul")
    parser.add_argument("--matmul-repeats", type=int, default=defaults.matmul_repeats)
    parser.add_argument("--pipeline-batches", type=int, default=defaults.pipeline_batches)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--json", default=None, metavar="OUT", help="write every figure to this JSON file")


def options_from_args(args):
    bad = [o for o in args.overrides if not o.startswith("model.")]
    if bad:
        raise BertbenchError(f"override '{bad[0]}' must start with model. (e.g. model.activation=gelu_approximate)")
    return PretrainBench(model=args.model, model_overrides=tuple(o.split(".", 1)[1] for o in args.overrides),
                         seq_length=args.seq_length, batch_size=args.batch_size, steps=args.steps,
                         warmup=args.warmup, rounds=args.rounds, precision=args.precision, jit=args.jit,
                         vocab_size=args.vocab_size, vocab=args.vocab, corpus=args.corpus, matmul_size=args.matmul_size,
                         matmul_repeats=args.matmul_repeats, pipeline_batches=args.pipeline_batches, seed=args.seed)


def main(args):
    from bertbench.files import write_json_atomic

    opts = options_from_args(args)
    opts.check()  # before TensorFlow loads: bad arguments fail fast
    model_config(opts)
    result = bench_pretrain(opts, log=lambda msg: print(msg, flush=True))
    print()
    print(format_report(result))
    if args.json:
        write_json_atomic(args.json, result)
        print(f"wrote {args.json}")
    return 0
