"""`bertbench finetune --task T (--init CKPT | --random-init [--model P])`: fine-tune and score on dev.

Prints the dev metrics (or, with --grid / --seeds N, the best grid point) as JSON. Settings: the
flags below, then `--set finetune.<field>=<value>` (and `model.<field>` with --random-init).
A step bar shows on a terminal (stderr) unless --quiet; TensorBoard logs go to <out>/logs/.
`--predict-test DIR` (GLUE tasks) also predicts the test split(s) and copies the GLUE server's
files (e.g. RTE.tsv; MNLI-m.tsv, MNLI-mm.tsv and AX.tsv for mnli) into DIR; with --grid or
--seeds, those of the best run on dev (best grid point, then its best seed). Then
`bertbench submission DIR --out glue.zip` zips a complete set.
"""

import hashlib
import json
import shutil
import sys
from pathlib import Path

from bertbench.cli import configs_from_args
from bertbench.commands.tasks import check_task_files
from bertbench.config import FinetuneConfig, model_preset, to_dict
from bertbench.errors import BertbenchError, ConfigError
from bertbench.evaluation.selection import best_point
from bertbench.files import check_writable_dir
from bertbench.finetuning.grid import DEFAULT_GRID, finetune_grid
from bertbench.finetuning.loop import finetune
from bertbench.model.checkpoint import INIT_HELP, find_checkpoint
from bertbench.model.strategy import STRATEGIES
from bertbench.tasks import get_task
from bertbench.text.tokenizer import check_vocab


def add_arguments(parser):
    parser.add_argument("--task", required=True, help="task name (see bertbench.tasks.TASKS), e.g. mrpc")
    parser.add_argument("--init", default=None, metavar="CKPT", help=INIT_HELP)
    parser.add_argument("--random-init", action="store_true", help="no pretraining: random encoder of --model")
    parser.add_argument("--model", default="tiny", help="model preset for --random-init (default: tiny)")
    parser.add_argument("--vocab", default="sample", help="vocab.txt for --random-init (default: bundled)")
    defaults = FinetuneConfig()
    parser.add_argument("--lr", type=float, default=None,
                        help=f"peak learning rate (default: {defaults.learning_rate:g})")
    parser.add_argument("--epochs", type=float, default=None,
                        help=f"epochs, fractions allowed (default: {defaults.epochs:g})")
    parser.add_argument("--batch-size", type=int, default=None, help=f"batch size (default: {defaults.batch_size})")
    parser.add_argument("--seed", type=int, default=None, help=f"fine-tuning seed (default: {defaults.seed})")
    parser.add_argument("--max-seq-length", type=int, default=None,
                        help=f"tokens per example (default: {defaults.max_seq_length})")
    parser.add_argument("--grid", action="store_true", help="search the paper's grid (bs, lr, epochs)")
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds (0..N-1) per grid point")
    parser.add_argument("--data-dir", default=None, help="data root (default: $BERTBENCH_DATA or sample)")
    parser.add_argument("--source", default=None, help="files (standard layouts, the default) or tfds")
    parser.add_argument("--strategy", default="default", choices=STRATEGIES, help="tf.distribute strategy")
    parser.add_argument("--out", default=None, help="output dir (default: runs/finetune/<task>-<hash>)")
    parser.add_argument("--predict-test", default=None, metavar="DIR",
                        help="GLUE tasks: also predict the test split(s) and copy the GLUE server's files "
                             "(e.g. RTE.tsv) into DIR, for `bertbench submission DIR` (default: off)")
    parser.add_argument("--diagnostic", default=None, metavar="PATH",
                        help="mnli with --predict-test: the GLUE diagnostic.tsv for AX.tsv (default: "
                             "<data>/glue/diagnostic/diagnostic.tsv when it exists)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (they show on a terminal only)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. --set finetune.warmup_fraction=0.1")


def configs(args):
    """{"finetune": FinetuneConfig} (+ "model" with --random-init) from the arguments."""
    spec = get_task(args.task)
    bases = {"finetune": FinetuneConfig(task=spec.name, lowercase=spec.lowercase)}
    if args.random_init:
        bases["model"] = model_preset(args.model)
    elif any(o.startswith("model.") for o in args.overrides):
        raise ConfigError("model.* settings apply to --random-init only; a checkpoint fixes its model")
    flags = {"finetune.learning_rate": args.lr, "finetune.epochs": args.epochs,
             "finetune.batch_size": args.batch_size, "finetune.seed": args.seed,
             "finetune.max_seq_length": args.max_seq_length, "finetune.source": args.source}
    return configs_from_args(args, bases, flags)


def _out_dir(args, cfg):
    if args.out:
        return Path(args.out)
    key = [to_dict(cfg), args.init, args.model if args.random_init else None, args.vocab,
           args.data_dir, args.grid, args.seeds]
    if args.predict_test:  # a run with test predictions is another run folder
        key.append(["predict-test", args.diagnostic])
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return Path("runs") / "finetune" / f"{cfg.task}-{digest}"


def best_run(summary):
    """The record path of the best run of a grid: its best point, then that point's best seed."""
    best = summary["best"]
    seed = best_point([[v] for v in best["values"]], summary["higher_is_better"])
    return Path(best["records"][seed])


def copy_test_predictions(record, folder):
    """Copy a record's GLUE test files into the submission folder -> {file name: copied path}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    copied = {}
    for name, path in record["test_predictions"].items():
        shutil.copyfile(path, folder / name)
        copied[name] = str(folder / name)
    return copied


def check_inputs(args, cfg, out):
    """The data files, the vocabulary and every output location, before TensorFlow starts."""
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {args.seeds}")
    check_writable_dir(out, "--out")
    if args.predict_test:
        check_writable_dir(args.predict_test, "--predict-test")
    if args.diagnostic and not Path(args.diagnostic).is_file():
        raise BertbenchError(f"--diagnostic file not found: {args.diagnostic}; pass GLUE's diagnostic.tsv")
    if args.random_init:
        check_vocab(args.vocab, cfg.lowercase)
    if cfg.source == "files":
        check_task_files(cfg.task, args.data_dir, test=bool(args.predict_test))


def main(args):
    settings = configs(args)
    cfg = settings["finetune"]
    if bool(args.init) == bool(args.random_init):
        raise BertbenchError("give exactly one of --init CKPT_DIR or --random-init (with --model)")
    if args.init:
        find_checkpoint(args.init)
    if args.diagnostic and not args.predict_test:
        raise ConfigError("--diagnostic is for the test predictions of mnli: add --predict-test DIR")
    out = _out_dir(args, cfg)
    check_inputs(args, cfg, out)
    kwargs = dict(data_dir=args.data_dir, strategy=args.strategy, model_cfg=settings.get("model"),
                  vocab=args.vocab, verbose=not args.quiet, predict_test=bool(args.predict_test),
                  diagnostic=args.diagnostic)
    if args.grid or args.seeds > 1:
        grid = DEFAULT_GRID if args.grid else {"learning_rate": [cfg.learning_rate]}
        summary = finetune_grid(cfg, args.init, out, grid=grid, seeds=range(args.seeds), **kwargs)
        shown = {"best": summary["best"]["point"], "main_metric": summary["main_metric"],
                 "mean": summary["best"]["mean"], "std": summary["best"]["std"],
                 "metrics_mean": summary["best"]["metrics_mean"], "out": str(out)}
        record = json.loads(best_run(summary).read_text(encoding="utf-8")) if args.predict_test else None
    else:
        record = finetune(cfg, args.init, out, **kwargs)
        shown = {**record["metrics"], "out": str(out)}
    if args.predict_test:
        shown["test_predictions"] = copy_test_predictions(record, args.predict_test)
        for note in record.get("test_notes", []):
            print(f"bertbench: note: {note}", file=sys.stderr)
    print(json.dumps(shown, indent=2))
    return 0
