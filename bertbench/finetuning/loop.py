"""Fine-tuning (`finetune` command): encoder checkpoint -> task head -> train -> whole-dev metrics.

    record = finetune(FinetuneConfig(task="mrpc"), "runs/tiny/encoder", "runs/ft/mrpc")

Protocol (the paper's, google-research/bert's): AdamW, linear warmup over `warmup_fraction` of the
steps then linear decay to 0, weight decay 0.01 (not on LayerNorm/bias), global-norm clipping 1.0,
dropout `cfg.dropout` in the encoder and the head. Steps = ceil(epochs * n_train / batch_size)
(fractional epochs allowed). Feature-based runs (frozen encoder + from-scratch BiLSTM) use
`feature_learning_rate` / `feature_epochs` instead (FinetuneConfig.effective_*). The dev set is predicted whole and scored once with the official
metrics (bertbench.evaluation.score / bertbench.evaluation.metrics), never as batch averages; predictions are written in
the task's official format and read back by `bertbench score`.

- init: a bertbench encoder checkpoint dir or a Hugging Face BERT dir (only the encoder is loaded,
  every weight checked; its vocabulary and casing are used), or None with `model_cfg` for the
  no-pretraining baseline (random init, tokenizer `vocab`, cased/uncased per `cfg.lowercase`).
- Capped sets (max_train_examples / max_eval_examples) are an order-preserving random subset drawn
  with a FIXED seed (0), so every seed and grid point of a run sees the same examples.
- MNLI scores both dev splits: `metrics` holds dev_matched's values under the plain names and
  dev_mismatched's as `dev_mismatched_<name>`; `metrics_by_split` has both.
- SQuAD v2.0: the no-answer threshold on score_diff = null - best non-null is chosen on dev for the
  best F1 (as in the paper); the reported exact/f1/HasAns/NoAns are at that threshold.
- Idempotent: an existing out_dir/record.json is returned as is.
"""

import dataclasses
import hashlib
import json
import math
import time
import warnings
from pathlib import Path

from bertbench.config import FinetuneConfig, apply_overrides, model_preset, to_dict
from bertbench.errors import BertbenchError, ConfigError
from bertbench.evaluation.selection import best_point

SUBSET_SEED = 0  # the capped train/dev subsets are part of a run's definition, not of its seed
DEFAULT_GRID = {"batch_size": [16, 32], "learning_rate": [5e-5, 3e-5, 2e-5], "epochs": [2, 3, 4]}


# ---- initialisation ---------------------------------------------------------------------------
@dataclasses.dataclass
class Init:
    weights: object  # list of numpy arrays of the encoder, or None (random init)
    model_cfg: object  # ModelConfig of the encoder (vocabulary_size = the tokenizer's for random init)
    tokenizer: object
    record: dict  # what the run record says about the initialisation


def _checked_weights(loaded, path):
    """The loaded encoder's weights, after checking the checkpoint held exactly those weights."""
    from bertbench.model import checkpoint

    weights = loaded.encoder.get_weights()
    if loaded.source == "bertbench":
        import h5py

        stored = []
        with h5py.File(Path(path) / checkpoint.WEIGHTS_FILE, "r") as f:
            f.visititems(lambda name, obj: stored.append(tuple(obj.shape))
                         if isinstance(obj, h5py.Dataset) and "/vars/" in f"/{name}" else None)
        expected = sorted(tuple(w.shape) for w in weights)
        if sorted(stored) != expected:
            raise BertbenchError(f"{path}: the checkpoint holds {len(stored)} weight arrays but the "
                                 f"encoder of its config has {len(expected)} (or their shapes differ); "
                                 f"re-save the checkpoint with bertbench")
    return weights


def prepare_init(init, model_cfg=None, vocab="sample", lowercase=True):
    """Init from a checkpoint path, or random init of `model_cfg` with tokenizer `vocab`."""
    from bertbench.text.tokenizer import WordPieceTokenizer, load_tokenizer

    if init is not None:
        from bertbench.model.checkpoint import load_encoder

        loaded = load_encoder(init)
        weights = _checked_weights(loaded, init)
        tokenizer = WordPieceTokenizer(loaded.vocab_path, lowercase=loaded.lowercase)
        if tokenizer.vocabulary_size > loaded.model_cfg.vocabulary_size:
            raise BertbenchError(f"{init}: vocab.txt has {tokenizer.vocabulary_size} tokens but the "
                                 f"encoder only {loaded.model_cfg.vocabulary_size} embeddings")
        record = {"path": str(init), "source": loaded.source, "lowercase": loaded.lowercase,
                  "vocab": str(loaded.vocab_path), "model": to_dict(loaded.model_cfg),
                  "num_weights": len(weights)}
        return Init(weights, loaded.model_cfg, tokenizer, record)
    if model_cfg is None:
        raise BertbenchError("no encoder to fine-tune: pass an init checkpoint path, or a model "
                             "config for random initialisation (--random-init --model tiny)")
    if vocab == "sample" and not lowercase:
        from bertbench.resources import SAMPLE_DIR

        if not (SAMPLE_DIR / "vocab_cased.txt").is_file():
            raise BertbenchError("there is no bundled cased vocabulary for a cased random-init run; pass "
                                 "a cased vocab.txt (--vocab) or set finetune.lowercase=true")
    tokenizer = load_tokenizer(vocab, lowercase=lowercase)
    model_cfg = dataclasses.replace(model_cfg, vocabulary_size=tokenizer.vocabulary_size)
    record = {"path": None, "source": "random", "lowercase": lowercase, "vocab": str(vocab),
              "model": to_dict(model_cfg)}
    return Init(None, model_cfg, tokenizer, record)


# ---- data -------------------------------------------------------------------------------------
def subset_indices(n, cap):
    """Sorted indices of an order-preserving random subset of size min(n, cap) (all when cap=0)."""
    import numpy as np

    if not cap or cap >= n:
        return list(range(n))
    return sorted(np.random.default_rng(SUBSET_SEED).choice(n, cap, replace=False).tolist())


def load_split(spec, split, data_dir, cap, source="files"):
    """(examples, original indices) of a split, capped."""
    examples = spec.load(split, data_dir=data_dir, source=source)
    if not examples:
        raise BertbenchError(f"task {spec.name}: split '{split}' is empty; check its data file")
    keep = subset_indices(len(examples), cap)
    return [examples[i] for i in keep], keep


def _encode(spec, examples, tokenizer, cfg):
    from bertbench.finetuning.inputs import encode

    return encode(spec, examples, tokenizer, cfg)


# ---- training -----------------------------------------------------------------------------------
def build_model(spec, init, cfg, num_steps, strategy):
    """Encoder (+ loaded weights) + head + optimizer, created in `strategy.scope()` (the one place)."""
    from bertbench.model.encoder import build_encoder
    from bertbench.model.optimization import create_optimizer
    from bertbench.model.heads import build_task_model, task_loss

    with strategy.scope():
        encoder = build_encoder(dataclasses.replace(init.model_cfg, dropout=cfg.dropout))
        if init.weights is not None:
            if len(encoder.weights) != len(init.weights):
                raise BertbenchError(f"checkpoint has {len(init.weights)} encoder weights, the model "
                                     f"{len(encoder.weights)}; it does not match its own config")
            encoder.set_weights(init.weights)  # raises on any shape mismatch
        choice = spec.kind == "multiple_choice"  # SWAG's labels are the choice indices "0".."3"
        model = build_task_model(encoder, spec.kind, 0 if choice else len(spec.labels), head=cfg.head,
                                 feature_layers=cfg.feature_layers, dropout=cfg.dropout,
                                 num_choices=len(spec.labels) if choice else 4)
        warmup = int(round(cfg.warmup_fraction * num_steps))
        optimizer = create_optimizer(cfg.effective_learning_rate, num_steps, warmup, cfg.weight_decay)
        model.compile(optimizer=optimizer, loss=task_loss(spec.kind), jit_compile=False)
    return model


_STRATEGIES = {}


def _strategy(strategy):
    """A Strategy object; one per name per process (a second MirroredStrategy in the same process
    would reuse collective instance keys and fail in its first all-reduce)."""
    if isinstance(strategy, str):
        from bertbench.model.strategy import get_strategy

        if strategy not in _STRATEGIES:
            _STRATEGIES[strategy] = get_strategy(strategy)
        return _STRATEGIES[strategy]
    return strategy


def check_config(spec, cfg, model_cfg):
    if cfg.max_seq_length > model_cfg.max_sequence_length:
        raise ConfigError(f"finetune.max_seq_length={cfg.max_seq_length} exceeds the encoder's "
                          f"max_sequence_length={model_cfg.max_sequence_length}; lower it")
    if cfg.feature_layers and spec.kind != "tagging":
        raise ConfigError(f"finetune.feature_layers='{cfg.feature_layers}' is for tagging tasks "
                          f"(conll2003), not {spec.name}; set it to \"\"")


def finetune(finetune_cfg, init, out_dir, data_dir=None, strategy="default", model_cfg=None,
             vocab="sample", source="files"):
    """Fine-tune on finetune_cfg.task, score on dev, write predictions + record.json -> record."""
    import keras

    from bertbench.files import write_json_atomic
    from bertbench.finetuning.inputs import evaluate_split, make_dataset
    from bertbench.tasks import get_task

    out_dir = Path(out_dir)
    if (out_dir / "record.json").is_file():
        return json.loads((out_dir / "record.json").read_text(encoding="utf-8"))
    cfg = finetune_cfg
    spec = get_task(cfg.task)
    setup = prepare_init(init, model_cfg, vocab, cfg.lowercase)
    check_config(spec, cfg, setup.model_cfg)
    keras.utils.set_random_seed(cfg.seed)
    train_examples, _ = load_split(spec, "train", data_dir, cfg.max_train_examples, source)
    evals = {split: load_split(spec, split, data_dir, cfg.max_eval_examples, source)
             for split in spec.eval_splits}
    train = _encode(spec, train_examples, setup.tokenizer, cfg)
    num_steps = max(1, math.ceil(cfg.effective_epochs * len(train) / cfg.batch_size))
    strategy = _strategy(strategy)
    model = build_model(spec, setup, cfg, num_steps, strategy)
    start = time.time()
    with warnings.catch_warnings():  # span/tagging/BiLSTM heads do not use the [CLS] pooler: expected
        warnings.filterwarnings("ignore", message=r"Gradients do not exist for variables "
                                r"\['pooled_dense/kernel', 'pooled_dense/bias'\]")
        history = model.fit(make_dataset(train, cfg.batch_size, training=True, seed=cfg.seed),
                            epochs=1, steps_per_epoch=num_steps, shuffle=False, verbose=0)
    wall = time.time() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    by_split, paths = {}, {}
    for split, (examples, indices) in evals.items():
        encoded = _encode(spec, examples, setup.tokenizer, cfg)
        logits = model.predict(make_dataset(encoded, 2 * cfg.batch_size, training=False), verbose=0)
        stem = "predictions" if len(evals) == 1 else f"predictions_{split}"
        by_split[split], paths[split] = evaluate_split(spec, examples, indices, encoded, logits, cfg,
                                                       out_dir / stem)
    first = spec.eval_splits[0]
    metrics = dict(by_split[first])
    for split in spec.eval_splits[1:]:
        metrics.update({f"{split}_{k}": v for k, v in by_split[split].items()})
    record = {
        "status": "ok", "task": spec.name, "kind": spec.kind, "metrics": metrics,
        "metrics_by_split": by_split, "main_metric": spec.main_metric,
        "main_value": float(metrics[spec.main_metric]), "higher_is_better": spec.higher_is_better,
        "num_train_examples": len(train_examples), "num_train_features": len(train),
        "num_eval_examples": len(evals[first][0]),
        "num_eval_examples_by_split": {s: len(e) for s, (e, _) in evals.items()},
        "train_wall_time_s": wall, "steps": num_steps,
        "final_train_loss": float(history.history["loss"][-1]), "config": to_dict(cfg),
        "init": setup.record, "strategy": type(strategy).__name__,
        "num_replicas": int(strategy.num_replicas_in_sync),
        "predictions_path": str(paths[first]),
        "predictions_paths": {s: str(p) for s, p in paths.items()},
    }
    write_json_atomic(out_dir / "record.json", record)
    return record


# ---- grid search + seeds ------------------------------------------------------------------------
def _point_name(point):
    return "_".join(f"{k}{point[k]:g}" if isinstance(point[k], (int, float)) else f"{k}{point[k]}"
                    for k in sorted(point))


def finetune_grid(finetune_cfg, init, out_dir, grid=None, seeds=(0,), **kwargs):
    """Every grid point x seed; the best point on dev by the task's main metric (mean over seeds).

    Returns {"task", "main_metric", "higher_is_better", "best": {"point", "mean", "std",
    "values", "metrics_mean"}, "points": [...]}; `std` is the sample std over seeds (0 for one).
    """
    import itertools

    import numpy as np

    from bertbench.files import write_json_atomic
    from bertbench.tasks import get_task

    spec = get_task(finetune_cfg.task)
    grid = DEFAULT_GRID if grid is None else grid
    names = [f.name for f in dataclasses.fields(FinetuneConfig)]
    for key in grid:
        if key not in names or key in ("seed", "task"):
            raise ConfigError(f"grid key '{key}' is not a finetune setting to search over")
    out_dir = Path(out_dir)
    keys = sorted(grid)
    points = []
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values))
        records = []
        for seed in seeds:
            cfg = dataclasses.replace(finetune_cfg, **point, seed=int(seed))
            records.append(finetune(cfg, init, out_dir / _point_name(point) / f"seed{seed}", **kwargs))
        mains = np.asarray([r["main_value"] for r in records], float)
        common = set.intersection(*(set(r["metrics"]) for r in records))
        metrics_mean = {k: float(np.mean([r["metrics"][k] for r in records])) for k in sorted(common)
                        if all(isinstance(r["metrics"][k], (int, float)) for r in records)}
        points.append({"point": point, "seeds": list(seeds), "values": mains.tolist(),
                       "mean": float(mains.mean()), "std": float(mains.std(ddof=1)) if len(mains) > 1 else 0.0,
                       "metrics_mean": metrics_mean,
                       "records": [str(out_dir / _point_name(point) / f"seed{s}" / "record.json")
                                   for s in seeds]})
    best = points[best_point([p["values"] for p in points], spec.higher_is_better)]
    summary = {"task": spec.name, "main_metric": spec.main_metric,
               "higher_is_better": spec.higher_is_better, "best": best, "points": points}
    write_json_atomic(out_dir / "grid.json", summary)
    return summary


# ---- CLI ------------------------------------------------------------------------------------------
def add_arguments(parser):
    parser.add_argument("--task", required=True, help="task name (see bertbench.tasks.TASKS), e.g. mrpc")
    parser.add_argument("--init", default=None, help="encoder checkpoint dir (bertbench or Hugging Face)")
    parser.add_argument("--random-init", action="store_true", help="no pretraining: random encoder of --model")
    parser.add_argument("--model", default="tiny", help="model preset for --random-init")
    parser.add_argument("--vocab", default="sample", help="vocab.txt for --random-init (default: bundled)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate")
    parser.add_argument("--epochs", type=float, default=None, help="epochs (fractions allowed)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-seq-length", type=int, default=None)
    parser.add_argument("--grid", action="store_true", help="search the paper's grid (bs, lr, epochs)")
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds (0..N-1) per grid point")
    parser.add_argument("--data-dir", default=None, help="data root (default: $BERTBENCH_DATA or sample)")
    parser.add_argument("--source", default="files", help="files (standard layouts) or tfds")
    parser.add_argument("--strategy", default="default", help="default, one_device, mirrored, multiworker, tpu")
    parser.add_argument("--out", default=None, help="output dir (default: runs/finetune/<task>-<hash>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. --set finetune.warmup_fraction=0.1")


def config_from_args(args):
    from bertbench.tasks import get_task

    spec = get_task(args.task)
    fields = {"task": spec.name, "lowercase": spec.lowercase}
    for key, value in (("learning_rate", args.lr), ("epochs", args.epochs), ("batch_size", args.batch_size),
                       ("seed", args.seed), ("max_seq_length", args.max_seq_length)):
        if value is not None:
            fields[key] = value
    bad = [o for o in args.overrides if not o.startswith(("finetune.", "model."))]
    if bad:
        raise ConfigError(f"override '{bad[0]}' must be a finetune.* (or, with --random-init, model.*) "
                          f"setting, e.g. finetune.warmup_fraction=0.1")
    overrides = [o.split(".", 1)[1] for o in args.overrides if o.startswith("finetune.")]
    try:
        return apply_overrides(FinetuneConfig(**fields), overrides)
    except TypeError as err:
        raise ConfigError(f"bad finetune setting: {err}") from None


def main(args):
    cfg = config_from_args(args)
    if bool(args.init) == bool(args.random_init):
        raise BertbenchError("give exactly one of --init CKPT_DIR or --random-init (with --model)")
    if args.init and not Path(args.init).expanduser().is_dir():
        raise BertbenchError(f"--init {args.init}: directory not found; pass an encoder checkpoint folder")
    model_over = [o.split(".", 1)[1] for o in args.overrides if o.startswith("model.")]
    if model_over and not args.random_init:
        raise ConfigError("model.* settings apply to --random-init only; a checkpoint fixes its model")
    model_cfg = apply_overrides(model_preset(args.model), model_over) if args.random_init else None
    if args.out:
        out = Path(args.out)
    else:
        key = json.dumps([to_dict(cfg), args.init, args.model if args.random_init else None, args.vocab,
                          args.data_dir, args.grid, args.seeds], sort_keys=True)
        out = Path("runs") / "finetune" / f"{cfg.task}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    kwargs = dict(data_dir=args.data_dir, strategy=args.strategy, model_cfg=model_cfg, vocab=args.vocab,
                  source=args.source)
    if args.grid or args.seeds > 1:
        grid = DEFAULT_GRID if args.grid else {"learning_rate": [cfg.learning_rate]}
        summary = finetune_grid(cfg, args.init, out, grid=grid, seeds=range(args.seeds), **kwargs)
        print(json.dumps({"best": summary["best"]["point"], "main_metric": summary["main_metric"],
                          "mean": summary["best"]["mean"], "std": summary["best"]["std"],
                          "metrics_mean": summary["best"]["metrics_mean"], "out": str(out)}, indent=2))
        return 0
    record = finetune(cfg, args.init, out, **kwargs)
    print(json.dumps({**record["metrics"], "out": str(out)}, indent=2))
    return 0
