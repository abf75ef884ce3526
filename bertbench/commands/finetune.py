"""`bertbench finetune --task T (--init CKPT | --random-init [--model P])`: fine-tune and score on dev.

Prints the dev metrics (or, with --grid / --seeds N, the best grid point) as JSON. Settings: the
flags below, then `--set finetune.<field>=<value>` (and `model.<field>` with --random-init).
"""

import hashlib
import json
from pathlib import Path

from bertbench.cli import configs_from_args
from bertbench.config import FinetuneConfig, model_preset, to_dict
from bertbench.errors import BertbenchError, ConfigError
from bertbench.finetuning.grid import DEFAULT_GRID, finetune_grid
from bertbench.finetuning.loop import finetune
from bertbench.model.strategy import STRATEGIES
from bertbench.tasks import get_task


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
    parser.add_argument("--source", default=None, help="files (standard layouts, the default) or tfds")
    parser.add_argument("--strategy", default="default", choices=STRATEGIES, help="tf.distribute strategy")
    parser.add_argument("--out", default=None, help="output dir (default: runs/finetune/<task>-<hash>)")
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
    key = json.dumps([to_dict(cfg), args.init, args.model if args.random_init else None, args.vocab,
                      args.data_dir, args.grid, args.seeds], sort_keys=True)
    return Path("runs") / "finetune" / f"{cfg.task}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def main(args):
    settings = configs(args)
    cfg = settings["finetune"]
    if bool(args.init) == bool(args.random_init):
        raise BertbenchError("give exactly one of --init CKPT_DIR or --random-init (with --model)")
    if args.init and not Path(args.init).expanduser().is_dir():
        raise BertbenchError(f"--init {args.init}: directory not found; pass an encoder checkpoint folder")
    out = _out_dir(args, cfg)
    kwargs = dict(data_dir=args.data_dir, strategy=args.strategy, model_cfg=settings.get("model"),
                  vocab=args.vocab)
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
