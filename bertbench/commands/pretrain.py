"""`bertbench pretrain`: pretrain an encoder (MLM+NSP, MLM or LTR) on a corpus (bertbench.pretraining.loop).

    bertbench pretrain --scale ci --out runs/tiny          # the ci scale's settings: ~1 min on 2 cores
    bertbench pretrain --corpus data/ --out runs/records   # TFRecords of `pretrain-data` (or the original's)
"""

import dataclasses
import json
from pathlib import Path

from bertbench.cli import configs_from_args
from bertbench.config import PretrainConfig, model_preset
from bertbench.errors import BertbenchError, unknown_name
from bertbench.experiments.plan import resolve_configs
from bertbench.experiments.schema import load_scales
from bertbench.files import check_writable_dir
from bertbench.model.strategy import STRATEGIES
from bertbench.pretraining.checkpoints import clear_run
from bertbench.pretraining.loop import pretrain
from bertbench.resources import DATA_ENV, resolve_data_dir
from bertbench.text.corpus import corpus_files
from bertbench.text.tokenizer import check_vocab


def add_arguments(parser):
    parser.add_argument("--scale", default=None, metavar="SCALE",
                        help="start from an experiment scale's model and pretraining settings "
                             "(experiments/_scales.toml): 'ci' = tiny model, batch 32, seq 64 -> 128, "
                             "600 steps, learning rate 1e-3, a few minutes on 2 CPU cores; 'small', 'base' "
                             "(default: none, the paper's pretraining settings and the tiny model)")
    parser.add_argument("--model", default=None,
                        help="model preset (see `bertbench models`; default: the scale's, else tiny)")
    parser.add_argument("--objective", default=None,
                        help="mlm+nsp (BERT), mlm (No NSP) or ltr (default: mlm+nsp)")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps; also lowers the warmup to 10%% of them (default: the scale's, "
                             "else the paper's 1,000,000)")
    parser.add_argument("--corpus", default=None,
                        help="text corpus file or folder (plain text, WikiText, WikiExtractor, .gz), or a folder "
                             "of TFRecord shards written by `pretrain-data` or google-research/bert's "
                             "create_pretraining_data.py (detected by content) (default: the bundled sample)")
    parser.add_argument("--vocab", default=None,
                        help="vocab.txt; for TFRecords the one they were written with "
                             "(default: the bundled sample vocabulary)")
    parser.add_argument("--out", required=True,
                        help="output folder: encoder/, ckpt/, logs/ (TensorBoard), metrics.jsonl, summary.json; "
                             "rerun the same command to resume")
    parser.add_argument("--strategy", default="default", choices=STRATEGIES, help="tf.distribute strategy")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help=f"data root for the ${{data}} paths of --scale small/base (default: ${DATA_ENV})")
    parser.add_argument("--config", default=None,
                        help="TOML file with [model] and [pretrain] tables (default: none)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. --set pretrain.batch_size=32 --set model.dropout=0 "
                             "(repeatable; default: none)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (it shows on a terminal only)")
    parser.add_argument("--overwrite", action="store_true",
                        help="clear the --out folder of an earlier pretraining run (with another config) and "
                             "start over; without it a rerun resumes, and one with another config is refused")


def scale_configs(name, data_dir=None):
    """(ModelConfig, PretrainConfig) of an experiment scale's model.* and pretrain.* settings, its
    `${data}` paths under the data root (--data-dir, $BERTBENCH_DATA)."""
    scales = load_scales()
    if name not in scales:
        raise unknown_name("scale", name, scales)
    flat = {k: v for k, v in scales[name].set.items() if k.split(".")[0] in ("model", "pretrain")}
    if any("${data}" in str(v) for v in flat.values()):
        root = resolve_data_dir(data_dir, required_by=f"scale '{name}'")
        flat = {k: v.replace("${data}", str(root)) if isinstance(v, str) else v for k, v in flat.items()}
    model_cfg, pretrain_cfg, _ = resolve_configs(flat, f"scale '{name}'")
    return model_cfg, pretrain_cfg


def configs(args):
    """(ModelConfig, PretrainConfig): the scale (or the tiny preset and the paper's settings), then
    --config, then the flags, then --set.

    --steps also lowers the warmup (10% of the steps, at most the base's); a warmup from --config or
    --set still wins.
    """
    if getattr(args, "scale", None):
        model_base, base = scale_configs(args.scale, getattr(args, "data_dir", None))
    else:
        model_base, base = model_preset("tiny"), PretrainConfig()
    if args.steps is not None:
        base = dataclasses.replace(base, warmup_steps=min(base.warmup_steps, max(args.steps // 10, 0)))
    flags = {"model.preset": args.model, "pretrain.objective": args.objective, "pretrain.num_steps": args.steps,
             "pretrain.corpus": args.corpus, "pretrain.vocab": args.vocab}
    out = configs_from_args(args, {"model": model_base, "pretrain": base}, flags)
    return out["model"], out["pretrain"]


def check_inputs(cfg, out):
    """Every input and the output folder, before TensorFlow starts (a bad one costs no work)."""
    check_writable_dir(out, "--out")
    check_vocab(cfg.vocab, cfg.lowercase)
    corpus_files(cfg.corpus)  # there, and a folder holds files
    if cfg.corpus != "sample" and Path(cfg.corpus).is_file() and Path(cfg.corpus).stat().st_size == 0:
        raise BertbenchError(f"corpus {cfg.corpus} is empty; pass a text corpus (or TFRecord shards) to train on")


def main(args):
    model_cfg, cfg = configs(args)
    check_inputs(cfg, args.out)  # before anything is cleared or written
    if getattr(args, "overwrite", False):
        clear_run(args.out)  # only a folder that looks like a pretraining run's, only what it wrote
    summary = pretrain(model_cfg, cfg, args.out, strategy=args.strategy, verbose=not getattr(args, "quiet", False))
    shown = {k: summary[k] for k in ("steps", "tokens_seen", "train_wall_time_s", "heldout", "unigram_baseline")
             if k in summary}
    out = Path(args.out)
    shown.update(encoder=str(out / "encoder"), tensorboard=f"tensorboard --logdir {out / 'logs'}")
    print(json.dumps(shown, indent=2))
    return 0
