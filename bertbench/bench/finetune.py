"""`bench finetune`: fine-tuning speed of bertbench and of a keras-hub `BertTextClassifier` peer on
SST-2, measured side by side on the same machine in one run (the command is bertbench.commands.bench).

Both models have the same size (L/H/A/intermediate/vocabulary, random weights: nothing downloaded),
optimizer (bertbench.model.optimization), batch size and rows (the seeded shuffle of the capped train
split, encoded once by bertbench.finetuning.data). The peer sees every row at `max_seq_length`, as
keras-hub's preprocessor pads it; ours cuts each batch to its own length (dynamic padding) and
predicts in length order (bertbench.finetuning.loop.predict). `ours_full` is bertbench's default
(`finetune.padding = "full"`, the default: training batches at full length, prediction in length order). Training steps and whole-dev
predictions are timed in interleaved rounds (bench.pretrain.interleaved); the ratio is the median of
the per-round ratios (bench.pretrain.ratios), so a burst of load from another process spoils one
round, not the figure.

Precision: `--precision P` (bertbench.model.precision's names, "auto" resolved for this machine) is the
dtype policy every measured model is built in (default float32). `--versus-float32` measures instead
ours (dynamic padding) in float32 and in P side by side, `ours_float32` and `ours_<P>`, in the same
interleaved rounds: on a machine shared with other work only that ratio means something, not the
examples/s themselves. `--task` picks another classification task (e.g. mrpc, a pair task).
"""

import dataclasses
import statistics

import numpy as np

from bertbench.bench.machine import machine_info
from bertbench.bench.pretrain import _table, interleaved, ratios
from bertbench.config import FinetuneConfig, to_dict
from bertbench.errors import BertbenchError
from bertbench.finetuning import loop
from bertbench.finetuning.data import encode_cached, load_split, make_dataset, row_lengths
from bertbench.finetuning.init import prepare_init
from bertbench.finetuning.kinds import kind_of
from bertbench.model.convert import keras_hub_kwargs
from bertbench.model.precision import PRECISIONS, resolve_precision
from bertbench.tasks import TASKS, get_task

TASK = "sst2"
BASE_PRECISION = "float32"  # what --versus-float32 compares --precision with


@dataclasses.dataclass(frozen=True)
class FinetuneBench:
    model: str = "mini"  # preset name (bertbench models); `--set model.KEY=VALUE` changes its fields
    max_seq_length: int = 128  # the paper's GLUE length
    batch_size: int = 32
    train_examples: int = 1024  # rows of the SST-2 train split the batches are drawn from
    eval_examples: int = 0  # dev rows predicted per round (0 = the whole dev split)
    steps: int = 20  # timed training steps per model, split over `rounds`
    warmup: int = 4  # untimed steps per model (tracing; dynamic shapes trace twice)
    rounds: int = 5  # ours, peer, ... in turn: machine noise hits all alike
    data_dir: str = None  # --data-dir > $BERTBENCH_DATA > the bundled sample
    vocab: str = "sample"
    seed: int = 0
    task: str = TASK  # a classification task (the peer is a text classifier)
    precision: str = "float32"  # dtype policy of the measured models ("auto": this machine's best)
    versus_float32: bool = False  # ours in float32 and in `precision`, side by side (no peer)

    def check(self):
        for name in ("max_seq_length", "batch_size", "train_examples", "steps", "warmup", "rounds"):
            if getattr(self, name) <= 0:
                raise BertbenchError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if self.eval_examples < 0:
            raise BertbenchError(f"--eval-examples must be 0 (all) or positive, got {self.eval_examples}")
        if self.rounds > self.steps:
            raise BertbenchError(f"--rounds ({self.rounds}) must not exceed --steps ({self.steps})")
        if self.precision not in PRECISIONS:
            raise BertbenchError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.task not in TASKS or TASKS[self.task].kind != "classification":
            names = ", ".join(n for n, s in TASKS.items() if s.kind == "classification")
            raise BertbenchError(f"--task {self.task!r} is not a classification task; pick one of: {names}")


def contenders(opts, precision):
    """[(name, padding, precision)] of the models measured: ours (dynamic padding), ours_full and the
    peer in `precision` (resolved), or with --versus-float32 ours in float32 and in `precision`."""
    if opts.versus_float32:
        return [(f"ours_{p}", "dynamic", p) for p in dict.fromkeys((BASE_PRECISION, precision))]
    # ours: dynamic padding; ours_full: full-length training batches, as the peer's
    return [("ours", "dynamic", precision), ("ours_full", "full", precision), ("peer", "full", precision)]


def comparisons(names):
    """[(numerator, denominator)] of the ratios reported: ours and ours_full over the peer, or the
    precision over float32 (the first is the headline, with its per-round ratios)."""
    if "peer" in names:
        return [("ours", "peer"), ("ours_full", "peer")]
    return [(names[-1], names[0])]


def check_model(opts, model_cfg):
    if opts.max_seq_length > model_cfg.max_sequence_length:
        raise BertbenchError(f"--max-seq-length {opts.max_seq_length} exceeds model.max_sequence_length="
                             f"{model_cfg.max_sequence_length}")


class _Runner:
    """One model's training batches and dev predictor; `train_step(i)` trains on batch i (the shape
    interleaved() expects of a trainer) and returns when the step is done."""

    def __init__(self, model, batches, predict):
        self.model, self.batches, self.predict = model, batches, predict

    def train_step(self, i):
        inputs, targets = self.batches[i]
        self.model.train_on_batch(inputs, targets)


class _Predictor:
    """A whole-dev prediction as one timed "step"."""

    def __init__(self, runner):
        self.runner = runner

    def train_step(self, _):
        self.runner.predict()


def peer_classifier(model_cfg, cfg, num_steps, num_classes=2):
    """keras_hub BertTextClassifier on a BertBackbone of the same size, compiled as ours is."""
    import keras
    import keras_hub

    from bertbench.model.optimization import create_optimizer

    backbone = keras_hub.models.BertBackbone(**keras_hub_kwargs(model_cfg))
    model = keras_hub.models.BertTextClassifier(backbone, num_classes=num_classes, preprocessor=None,
                                                dropout=cfg.dropout)
    optimizer = create_optimizer(cfg.learning_rate, num_steps, int(round(cfg.warmup_fraction * num_steps)),
                                 cfg.weight_decay)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)
    return model


def build_runners(opts, model_cfg, log, models):
    """({name: _Runner}, facts about the data): the `models` [(name, padding, precision)] on the same rows."""
    spec = get_task(opts.task)
    kind = kind_of(spec)
    cfg = FinetuneConfig(task=opts.task, batch_size=opts.batch_size, max_seq_length=opts.max_seq_length,
                         learning_rate=2e-5, seed=opts.seed)
    setup = prepare_init(None, model_cfg, opts.vocab, cfg.lowercase)
    model_cfg = setup.model_cfg
    log(f"reading and encoding {opts.task} (max_seq_length {opts.max_seq_length}) ...")
    train = encode_cached(kind, spec, load_split(spec, "train", opts.data_dir, opts.train_examples)[0],
                          setup.tokenizer, cfg)
    dev = encode_cached(kind, spec, load_split(spec, "dev", opts.data_dir, opts.eval_examples)[0],
                        setup.tokenizer, cfg)
    count = min(16, opts.warmup + opts.steps)
    batches = {dynamic: list(make_dataset(train, opts.batch_size, True, opts.seed,
                                                 "dynamic" if dynamic else "full").take(count))
               for dynamic in (True, False)}
    batches[True] = two_shapes_first(batches[True])
    full_dev = make_dataset(dev, 2 * opts.batch_size, training=False)
    num_steps = opts.warmup + opts.steps + opts.rounds
    log(f"building {', '.join(name for name, _, _ in models)} ({opts.model}) ...")
    runners = {}
    for name, padding, precision in models:
        model = _build(name, precision, opts.seed, spec, kind, setup, cfg, num_steps)
        if name == "peer":
            runners[name] = _Runner(model, batches[False], lambda m=model: m.predict(full_dev, verbose=0))
        else:
            runners[name] = _Runner(model, batches[padding == "dynamic"],
                                    lambda m=model: loop.predict(m, dev, cfg, "predict", False, dynamic=True))
    lengths = [int(b[0]["token_ids"].shape[-1]) for b in batches[True]]
    facts = {"model": to_dict(model_cfg), "train_rows": len(train), "dev_rows": len(dev),
             "mean_real_tokens_train": float(row_lengths(train).mean()),
             "dynamic_batch_lengths": lengths, "mean_dynamic_batch_length": float(np.mean(lengths))}
    return runners, facts


def _build(name, precision, seed, spec, kind, setup, cfg, num_steps):
    """One measured model, seeded, built under its dtype policy (a model keeps the policy it was built in)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    with loop.dtype_policy(precision):
        if name == "peer":
            return peer_classifier(setup.model_cfg, cfg, num_steps, len(spec.labels))
        return loop.build_model(spec, kind, setup, cfg, num_steps, tf.distribute.get_strategy())


def two_shapes_first(batches):
    """The batches with one of another length second: the warm-up then traces the step for two shapes,
    after which TensorFlow (reduce_retracing) keeps one graph for any length, and no timed step traces."""
    other = next((i for i, (x, _) in enumerate(batches) if x["token_ids"].shape != batches[0][0]["token_ids"].shape),
                 None)
    if other is None or other == 1:
        return batches
    return [batches[0], batches[other]] + [b for i, b in enumerate(batches) if i not in (0, other)]


def figures(step_times, examples):
    """Median seconds per step and examples/s of one model's timed steps."""
    step = statistics.median(step_times)
    return {"median_step_s": step, "min_step_s": min(step_times), "max_step_s": max(step_times),
            "timed": len(step_times), "examples_per_s": examples / step}


def bench_finetune(opts, model_cfg, log=print):
    """The whole `bench finetune` measurement -> JSON-ready result dict."""
    opts.check()
    check_model(opts, model_cfg)
    precision = resolve_precision(opts.precision)  # "auto": this machine's best, as `finetune` picks it
    models = contenders(opts, precision)
    runners, facts = build_runners(opts, model_cfg, log, models)
    result = {"benchmark": "finetune", "task": opts.task, "options": to_dict(opts), "machine": machine_info(),
              "precision": precision, "precisions": {name: p for name, _, p in models}, **facts}
    if opts.versus_float32:
        result["note"] = ("ours in two precisions timed in the same interleaved rounds: the ratio (median of "
                          "the per-round ratios) holds on a loaded machine; the examples/s alone do not")
    log(f"training: {opts.warmup} warm-up + {opts.steps} timed steps per model, {opts.rounds} rounds ...")
    steps = list(range(len(next(iter(runners.values())).batches)))
    train_times = interleaved(runners, steps, opts.warmup, opts.steps, opts.rounds)
    log(f"prediction: 1 warm-up + {opts.rounds} timed passes over {facts['dev_rows']} dev rows per model ...")
    predict_times = interleaved({k: _Predictor(r) for k, r in runners.items()}, [0], 1, opts.rounds, opts.rounds)
    result["train"], result["predict"] = {}, {}
    for part, times, examples in (("train", train_times, opts.batch_size), ("predict", predict_times, facts["dev_rows"])):
        models = {name: figures([s for r in t["rounds"] for s in r], examples) for name, t in times.items()}
        for name, t in times.items():
            models[name].update(warmup_s=t["warmup"], round_s=t["rounds"])
        rates = {k: {"sequences_per_s": v["examples_per_s"]} for k, v in models.items()}
        result[part] = {"models": models}
        for i, (top, bottom) in enumerate(comparisons(list(times))):
            r = ratios(times[top], times[bottom], rates[top], rates[bottom])
            result[part][f"ratio_{top}_over_{bottom}"] = r["ratio_ours_over_peer"]
            if i == 0:  # the headline ratio's per-round values
                result[part][f"round_ratios_{top}_over_{bottom}"] = r["round_ratios_ours_over_peer"]
    return result


def format_report(result):
    """A readable table of a `bench finetune` result."""
    o, m, mach = result["options"], result["model"], result["machine"]
    lines = [f"bench finetune: {result['task']}, {o['model']} (L{m['num_layers']} H{m['hidden_dim']} "
             f"A{m['num_heads']} I{m['intermediate_dim']}, vocabulary {m['vocabulary_size']}), max_seq_length "
             f"{o['max_seq_length']}, batch {o['batch_size']}; {result['train_rows']} train rows (mean "
             f"{result['mean_real_tokens_train']:.1f} real tokens), {result['dev_rows']} dev rows; precision "
             + ", ".join(f"{name} {p}" for name, p in result["precisions"].items()),
             f"machine: {mach['cpu_model']}, {mach['cpu_cores']} cores, TF {mach['tensorflow']}, "
             f"keras-hub {mach['keras_hub']}",
             f"dynamic batch lengths (ours): mean {result['mean_dynamic_batch_length']:.1f} of {o['max_seq_length']}", ""]
    rows = []
    for part in ("train", "predict"):
        for name, r in result[part]["models"].items():
            rows.append([part, name, f"{r['median_step_s'] * 1e3:,.1f}", f"{r['examples_per_s']:,.1f}", str(r["timed"])])
    lines += _table(["part", "model", "ms per step/pass (median)", "examples/s", "timed"], rows) + [""]
    for part in ("train", "predict"):
        p = result[part]
        (top, bottom), *others = comparisons(list(p["models"]))
        rounds = ", ".join(f"{x:.2f}" for x in p[f"round_ratios_{top}_over_{bottom}"])
        lines.append(f"{part}: {top}/{bottom} examples/s {p[f'ratio_{top}_over_{bottom}']:.2f} (median over rounds: "
                     f"{rounds})" + "".join(f"; {a}/{b} {p[f'ratio_{a}_over_{b}']:.2f}" for a, b in others))
    if "note" in result:
        lines.append(result["note"])
    return "\n".join(lines)
