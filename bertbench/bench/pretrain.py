"""`bench pretrain`: training speed of our encoder and of the keras-hub peer, measured side by side on
the same machine in one run (the `bench` command's library part; the command is
bertbench.commands.bench).

`bench pretrain` measures, in this order: the machine's matmul FLOP/s (fp32, and bf16 under
mixed_bfloat16) on shapes of the model and one large square; the input pipeline alone (batches/s of
the dynamic-masking dataset); then steady-state MLM+NSP training of our encoder and of the keras-hub
peer (`keras_hub.models.BertBackbone` of equal size, same heads, optimizer, batches and Trainer),
interleaved (ours, peer, peer, ours, ...) so machine noise hits both alike; last, a profiler trace of
a few steps of each model, its op time grouped by kind (bertbench.bench.ops). Figures: median step
time, sequences/s, tokens/s, MFU = estimate_flops per step / step time / measured matmul peak of the
precision the model ran in.

Precisions: ours runs in `--precision` ("auto": what bertbench.model.precision picks for this machine,
as `pretrain` does); the peer, with `--peer-precision fastest`, is measured in float32 AND
mixed_bfloat16 and compared at whichever is faster for it (`--both-precisions` measures ours in both
too, for the size/precision plot). Each measured model is named `<ours|peer>_<precision>`.
"""

import dataclasses
import math
import statistics
import time

import numpy as np

from bertbench.bench.machine import machine_info, matmul_peaks, matmul_shapes
from bertbench.bench.ops import format_breakdown, profile_steps
from bertbench.config import PretrainConfig, to_dict
from bertbench.errors import BertbenchError
from bertbench.model.convert import keras_hub_kwargs
from bertbench.model.precision import resolve_precision
from bertbench.pretraining.accounting import estimate_flops, step_tokens
from bertbench.pretraining.dataset import train_dataset
from bertbench.pretraining.inputs import PretrainingCorpus
from bertbench.pretraining.loop import Trainer
from bertbench.text.tokenizer import load_tokenizer

PRECISIONS = ("auto", "float32", "mixed_bfloat16")
PEER_PRECISIONS = ("fastest", "same", "float32", "mixed_bfloat16")
MEASURED = ("float32", "mixed_bfloat16")  # what "fastest" and --both-precisions try
DTYPE_OF = {"float32": "float32", "mixed_bfloat16": "bfloat16"}  # the matmul peak of each policy


# ---------------------------------------------------------------------------------------------
# Batches and models


def real_batches(corpus, cfg, seq_length, batch_size, count):
    """`count` batches of the training dataset, materialised (the pipeline stays out of the timing)."""
    it = iter(train_dataset(corpus, cfg, seq_length, batch_size))
    return [next(it) for _ in range(count)]


def synthetic_ids(batches, vocab_size, first_id, pad_id, seed):
    """Real batch structure (padding, segments, mask positions, NSP labels) with token and target ids
    drawn uniformly from [first_id, vocab_size): a model vocabulary larger than the bundled one."""
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

    return keras_hub.models.BertBackbone(**keras_hub_kwargs(model_cfg))


def contenders(opts, precision):
    """[(name, precision)] of the models to measure: ours in `precision` (resolved) and the peer in
    `--peer-precision` ("fastest": each of MEASURED); `--both-precisions`: both in each of MEASURED."""
    ours = list(MEASURED) if opts.both_precisions else [precision]
    if opts.both_precisions or opts.peer_precision == "fastest":
        peer = list(MEASURED)
    else:
        peer = [precision if opts.peer_precision == "same" else opts.peer_precision]
    return [(f"ours_{p}", p) for p in ours] + [(f"peer_{p}", p) for p in peer]


def build_trainers(model_cfg, cfg, batch, seed, models):
    """{name: Trainer(our encoder or BertBackbone)} for each (name, precision) of `models`, variables
    built; each model under its own dtype policy (a model keeps the policy it was built with)."""
    import keras
    import tensorflow as tf

    previous_policy = keras.config.dtype_policy()
    trainers = {}
    try:
        for name, precision in models:
            keras.config.set_dtype_policy(precision)  # before building, as bertbench.pretraining.loop does
            keras.utils.set_random_seed(seed)
            encoder_fn = None if name.startswith("ours") else peer_encoder
            trainers[name] = Trainer(model_cfg, cfg, tf.distribute.get_strategy(), encoder_fn=encoder_fn)
            trainers[name].build(batch)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    return trainers


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
    """Figures of one model from its timed step times (median: robust to a noisy neighbour); `peak` is
    the matmul peak of the precision the model ran in."""
    step = statistics.median(step_times)
    achieved = flops_per_step / step
    return {"median_step_s": step, "min_step_s": min(step_times), "max_step_s": max(step_times),
            "timed_steps": len(step_times), "sequences_per_s": batch_size / step,
            "tokens_per_s": step_tokens(batch_size, seq_length) / step, "model_flops_per_step": flops_per_step,
            "achieved_flops_per_s": achieved, "mfu": achieved / peak, "mfu_vs_fp32_peak": achieved / fp32_peak}


def input_pipeline_rate(corpus, cfg, seq_length, batch_size, count, skip=3):
    """Batches/s of the training dataset alone (dynamic masking included), after `skip` batches."""
    it = iter(train_dataset(corpus, cfg, seq_length, batch_size))
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
    model: str = "mini"  # preset name (bertbench models); `--set model.KEY=VALUE` changes its fields
    seq_length: int = 128  # the paper's phase-1 length
    batch_size: int = 32
    steps: int = 20  # timed steps per model, split over `rounds`
    warmup: int = 3  # untimed steps per model (the first traces the step)
    rounds: int = 10  # ours, peer, ours, peer, ...: machine noise hits both alike
    precision: str = "auto"  # ours: auto (this machine's best, as `pretrain`), float32 or mixed_bfloat16
    peer_precision: str = "fastest"  # fastest (float32 and mixed_bfloat16, the faster counts), same, or one
    both_precisions: bool = False  # ours and the peer each in float32 and mixed_bfloat16
    profile_steps: int = 3  # steps of each model traced for the op-time breakdown (0: none)
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
        if self.peer_precision not in PEER_PRECISIONS:
            raise BertbenchError(f"--peer-precision must be one of {', '.join(PEER_PRECISIONS)}, "
                                 f"got {self.peer_precision!r}")
        if self.profile_steps < 0:
            raise BertbenchError(f"--profile-steps must be 0 (no profile) or positive, got {self.profile_steps}")
        if self.vocab_size < 0:
            raise BertbenchError(f"--vocab-size must be positive (or 0 for the bundled vocabulary), got {self.vocab_size}")


def check_model(opts, model_cfg):
    """The benchmark's sequence length must fit the model's position table."""
    if opts.seq_length > model_cfg.max_sequence_length:
        raise BertbenchError(f"--seq-length {opts.seq_length} exceeds model.max_sequence_length="
                             f"{model_cfg.max_sequence_length}")


def bench_configs(opts, model_cfg, tokenizer, precision="float32"):
    """(ModelConfig, PretrainConfig) of a benchmark; the model vocabulary is the tokenizer's unless
    --vocab-size asks for synthetic ids."""
    first_id = max(tokenizer.special_ids) + 1
    if opts.vocab_size and opts.vocab_size <= first_id:
        raise BertbenchError(f"--vocab-size must exceed the special ids (> {first_id}), got {opts.vocab_size}")
    model_cfg = dataclasses.replace(model_cfg, vocabulary_size=opts.vocab_size or tokenizer.vocabulary_size)
    cfg = PretrainConfig(corpus=opts.corpus, vocab=opts.vocab, objective="mlm+nsp", max_seq_length=opts.seq_length,
                         batch_size=opts.batch_size, num_steps=opts.warmup + opts.steps + opts.rounds,
                         warmup_steps=opts.warmup, precision=precision, jit_compile=opts.jit, seed=opts.seed)
    return model_cfg, cfg


def measure_training(opts, model_cfg, cfg, batches, models, log):
    """Per-model step times of the interleaved runs, then (--profile-steps) each model's op breakdown."""
    log(f"building {', '.join(name for name, _ in models)} ({opts.model}, jit={opts.jit}) ...")
    trainers = build_trainers(model_cfg, cfg, batches[0], opts.seed, models)
    log(f"training: {opts.warmup} warm-up + {opts.steps} timed steps per model, {opts.rounds} rounds ...")
    times = interleaved(trainers, batches, opts.warmup, opts.steps, opts.rounds)
    profiles = {}
    if opts.profile_steps:
        log(f"profiling {opts.profile_steps} steps per model ...")
        profiles = {name: profile_steps(t.train_step, batches, opts.profile_steps) for name, t in trainers.items()}
    return trainers, times, profiles


def bench_pretrain(opts, model_cfg, log=print):
    """Run the whole `bench pretrain` measurement of `model_cfg` (its vocabulary size is set from the
    tokenizer or --vocab-size); returns the JSON-ready result dict."""
    opts.check()
    check_model(opts, model_cfg)
    tokenizer = load_tokenizer(opts.vocab)
    precision = resolve_precision(opts.precision)  # "auto": this machine's best, as `pretrain` picks it
    model_cfg, cfg = bench_configs(opts, model_cfg, tokenizer, precision)
    models = contenders(opts, precision)
    result = {"benchmark": "pretrain", "options": to_dict(opts), "machine": machine_info(),
              "precision": precision, "model": to_dict(model_cfg), "pretrain": to_dict(cfg),
              "ids": f"synthetic ids in a {opts.vocab_size}-token vocabulary (structure of the real batches)"
              if opts.vocab_size else f"real ids: corpus {opts.corpus}, {tokenizer.vocabulary_size}-token vocabulary"}
    predictions = cfg.predictions_per_seq(opts.seq_length)
    dtypes = [d for d in DTYPE_OF.values() if d in {DTYPE_OF[p] for _, p in models} | {"float32"}]
    log(f"matmul peak ({', '.join(dtypes)}) ...")
    shapes = matmul_shapes(model_cfg, opts.batch_size, opts.seq_length, predictions, opts.matmul_size)
    result["matmul"] = matmul_peaks(shapes, dtypes, opts.matmul_repeats, opts.matmul_min_time)
    log("input pipeline ...")
    corpus = PretrainingCorpus(cfg.corpus, tokenizer, cfg.heldout_fraction, cfg.seed)
    pipeline = input_pipeline_rate(corpus, cfg, opts.seq_length, opts.batch_size, opts.pipeline_batches)
    batches = real_batches(corpus, cfg, opts.seq_length, opts.batch_size, min(16, opts.warmup + opts.steps))
    if opts.vocab_size:
        batches = synthetic_ids(batches, opts.vocab_size, max(tokenizer.special_ids) + 1, tokenizer.pad_id, opts.seed)
    trainers, times, profiles = measure_training(opts, model_cfg, cfg, batches, models, log)
    flops = estimate_flops(model_cfg, dataclasses.replace(cfg, num_steps=1, warmup_steps=0))  # one step
    result["models"] = {}
    for name, model_precision in models:
        timed = [s for r in times[name]["rounds"] for s in r]
        peak = result["matmul"][DTYPE_OF[model_precision]]["peak_flops_per_s"]
        fp32_peak = result["matmul"]["float32"]["peak_flops_per_s"]
        result["models"][name] = dict(
            throughput(timed, opts.batch_size, opts.seq_length, flops, peak, fp32_peak),
            precision=model_precision, warmup_step_s=times[name]["warmup"], round_step_s=times[name]["rounds"],
            encoder=type(trainers[name].encoder).__name__, parameters=trainers[name].model.count_params(),
            **({"breakdown": profiles[name]} if name in profiles else {}))
    ours = f"ours_{precision}"
    figures = result["models"]
    peer = min((n for n in figures if n.startswith("peer")), key=lambda n: figures[n]["median_step_s"])  # its fastest
    result.update(ours=ours, peer=peer, **ratios(times[ours], times[peer], figures[ours], figures[peer]))
    steps_per_s = 1.0 / result["models"][ours]["median_step_s"]
    result["input_pipeline"] = {"batches_per_s": pipeline, "train_steps_per_s": steps_per_s,
                                "ratio": pipeline / steps_per_s, "timed_batches": opts.pipeline_batches}
    return result


def ratios(ours_times, peer_times, ours, peer):
    """ours/peer throughput: per round (timed back to back), its median, and the ratio of the medians.

    The median over rounds is the figure: a burst of load from another process spoils one round, not it.
    """
    rounds = [statistics.median(p) / statistics.median(o) for o, p in zip(ours_times["rounds"],
                                                                          peer_times["rounds"], strict=True)]
    return {"round_ratios_ours_over_peer": rounds, "ratio_ours_over_peer": statistics.median(rounds),
            "ratio_of_medians_ours_over_peer": ours["sequences_per_s"] / peer["sequences_per_s"]}


def format_report(result):
    """A readable table of a `bench pretrain` result."""
    o, m, mach = result["options"], result["model"], result["machine"]
    lines = [f"bench pretrain: {o['model']} (L{m['num_layers']} H{m['hidden_dim']} A{m['num_heads']} "
             f"I{m['intermediate_dim']}, {m['activation']}), seq {o['seq_length']}, batch {o['batch_size']}, "
             f"ours in {result['precision']} (--precision {o['precision']}), peer --peer-precision "
             f"{o['peer_precision']}, jit {'on' if o['jit'] else 'off'}; {result['ids']}",
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
    lines += _table(["model", "step ms (median)", "seq/s", "tokens/s", "GFLOP/s", "MFU (own precision's peak)",
                     "MFU vs fp32 peak", "timed steps"], rows)
    breakdowns = [format_breakdown(name, r["breakdown"]) for name, r in result["models"].items() if "breakdown" in r]
    if breakdowns:
        lines += ["", "where the time goes (profiler trace; op time summed over threads):"] + breakdowns
    rounds = ", ".join(f"{x:.3f}" for x in result["round_ratios_ours_over_peer"])
    lines += ["", f"ours/peer throughput ratio ({result['ours']} / {result['peer']}): "
                  f"{result['ratio_ours_over_peer']:.3f} (median over rounds: {rounds}; "
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
