"""`bertbench pretrain`: pretrain an encoder (MLM+NSP, MLM or LTR) on a corpus (bertbench.pretraining.loop)."""

import json

from bertbench.cli import configs_from_args
from bertbench.config import PretrainConfig, model_preset
from bertbench.model.strategy import STRATEGIES
from bertbench.pretraining.loop import pretrain


def add_arguments(parser):
    parser.add_argument("--model", default="tiny", help="model preset (see `bertbench models`)")
    parser.add_argument("--objective", default=None, help="mlm+nsp (BERT, the default), mlm (No NSP), ltr")
    parser.add_argument("--steps", type=int, default=None, help="training steps")
    parser.add_argument("--corpus", default=None, help="corpus file or folder (default: bundled sample)")
    parser.add_argument("--vocab", default=None, help="vocab.txt (default: bundled sample vocabulary)")
    parser.add_argument("--out", required=True, help="output directory (rerun to resume)")
    parser.add_argument("--strategy", default="default", choices=STRATEGIES, help="tf.distribute strategy")
    parser.add_argument("--config", default=None, help="TOML file with [model] and [pretrain] tables")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. --set pretrain.batch_size=32 --set model.dropout=0")


def configs(args):
    """(ModelConfig, PretrainConfig): the preset, then --config, then the flags, then --set.

    --steps also lowers the default warmup (10% of the steps, at most the paper's 10,000); a warmup
    from --config or --set still wins.
    """
    base = PretrainConfig()
    if args.steps is not None:
        base = PretrainConfig(warmup_steps=min(base.warmup_steps, max(args.steps // 10, 0)))
    flags = {"pretrain.objective": args.objective, "pretrain.num_steps": args.steps,
             "pretrain.corpus": args.corpus, "pretrain.vocab": args.vocab}
    out = configs_from_args(args, {"model": model_preset(args.model), "pretrain": base}, flags)
    return out["model"], out["pretrain"]


def main(args):
    model_cfg, cfg = configs(args)
    summary = pretrain(model_cfg, cfg, args.out, strategy=args.strategy)
    shown = {k: summary[k] for k in ("steps", "tokens_seen", "train_wall_time_s", "heldout") if k in summary}
    print(json.dumps(shown, indent=2))
    return 0
