"""`bertbench bench pretrain|finetune|tokenize`: benchmarks, speed measured side by side (bertbench.bench.pretrain,
bertbench.bench.finetune, bertbench.bench.tokenize); each benchmark is a sub-choice with its own options."""

import argparse

from bertbench.bench import finetune as finetune_bench
from bertbench.bench import tokenize as tokenize_bench
from bertbench.bench.pretrain import (PEER_PRECISIONS, PRECISIONS, PretrainBench, bench_pretrain, check_model,
                                      format_report)
from bertbench.cli import configs_from_args
from bertbench.config import model_preset
from bertbench.files import check_writable_file, write_json_atomic


def add_arguments(parser):
    whats = parser.add_subparsers(dest="what", required=True, metavar="WHAT", help="what to benchmark")
    child = {"formatter_class": parser.formatter_class}
    pretrain = whats.add_parser("pretrain", help="pretraining: ours vs the keras-hub peer", **child)
    finetune = whats.add_parser("finetune", help="SST-2 fine-tuning: ours vs a keras-hub BertTextClassifier", **child)
    add_pretrain_arguments(pretrain)
    add_finetune_arguments(finetune)
    tokenize = whats.add_parser("tokenize", help="tokenizer MB/s: ours vs FastBertTokenizer (and HF tokenizers)", **child)
    add_tokenize_arguments(tokenize)
    for each in (pretrain, finetune, tokenize):  # after the benchmark's name, as every command takes it
        each.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                          help="show TensorFlow's C++ log lines (hidden by default)")


def _shared_arguments(parser, defaults, example, rows):
    """The model, its overrides and the timing of a bench (pretrain and finetune take the same)."""
    parser.add_argument("--model", default=defaults.model, help="model preset (see `bertbench models`)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="model.KEY=VALUE",
                        help=f"override a model setting, e.g. --set {example}")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help=f"{rows} per training step")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="timed training steps per model")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="untimed steps per model (tracing)")
    parser.add_argument("--rounds", type=int, default=defaults.rounds,
                        help="interleaved rounds the timed steps are split over")


def add_pretrain_arguments(parser):
    defaults = PretrainBench()
    _shared_arguments(parser, defaults, "model.activation=gelu_approximate", "sequences")
    parser.add_argument("--seq-length", type=int, default=defaults.seq_length, help="tokens per sequence")
    parser.add_argument("--precision", default=defaults.precision, choices=PRECISIONS,
                        help="Keras dtype policy of ours (auto: this machine's best, as `pretrain` picks it)")
    parser.add_argument("--peer-precision", default=defaults.peer_precision, choices=PEER_PRECISIONS,
                        help="the peer's policy; fastest: measured in float32 and mixed_bfloat16, the faster counts")
    parser.add_argument("--both-precisions", action="store_true",
                        help="measure ours and the peer each in float32 and mixed_bfloat16")
    parser.add_argument("--profile-steps", type=int, default=defaults.profile_steps,
                        help="steps of each model traced for the op-time breakdown (0: none)")
    parser.add_argument("--jit", action="store_true", help="XLA-compile the training step (jit_compile)")
    parser.add_argument("--vocab-size", type=int, default=defaults.vocab_size,
                        help="model vocabulary with synthetic ids (e.g. 30522); default: the bundled vocabulary")
    parser.add_argument("--vocab", default=defaults.vocab, help="vocab.txt of the corpus tokenizer (default: bundled)")
    parser.add_argument("--corpus", default=defaults.corpus, help="corpus file or folder (default: bundled sample)")
    parser.add_argument("--matmul-size", type=int, default=defaults.matmul_size, help="side of the square matmul")
    parser.add_argument("--matmul-repeats", type=int, default=defaults.matmul_repeats,
                        help="timings of each matmul shape; the fastest is the peak")
    parser.add_argument("--pipeline-batches", type=int, default=defaults.pipeline_batches,
                        help="batches timed through the input pipeline alone")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the models' weights and data")
    parser.add_argument("--json", default=None, metavar="OUT", help="write every figure to this JSON file")


def options(args):
    """The benchmark's options and its ModelConfig (the preset, then `--set model.KEY=VALUE`)."""
    opts = PretrainBench(model=args.model, seq_length=args.seq_length, batch_size=args.batch_size,
                         steps=args.steps, warmup=args.warmup, rounds=args.rounds, precision=args.precision,
                         peer_precision=args.peer_precision, both_precisions=args.both_precisions,
                         profile_steps=args.profile_steps, jit=args.jit, vocab_size=args.vocab_size,
                         vocab=args.vocab, corpus=args.corpus,
                         matmul_size=args.matmul_size, matmul_repeats=args.matmul_repeats,
                         pipeline_batches=args.pipeline_batches, seed=args.seed)
    opts.check()  # before TensorFlow loads: bad arguments fail fast
    if args.json:
        check_writable_file(args.json, "--json")  # not found out after the benchmark
    model_cfg = configs_from_args(args, {"model": model_preset(args.model)})["model"]
    check_model(opts, model_cfg)
    return opts, model_cfg


def main(args):
    return {"pretrain": main_pretrain, "finetune": main_finetune, "tokenize": main_tokenize}[args.what](args)


def main_pretrain(args):
    opts, model_cfg = options(args)
    return _report(bench_pretrain(opts, model_cfg, log=_log), format_report, args.json)


def _log(message):
    print(message, flush=True)


def _report(result, format_report, json_path):
    """Print a benchmark's report and write its JSON (`--json`, checked writable before the work)."""
    print()
    print(format_report(result))
    if json_path:
        write_json_atomic(json_path, result)
        print(f"wrote {json_path}")
    return 0


def add_finetune_arguments(parser):
    d = finetune_bench.FinetuneBench()
    _shared_arguments(parser, d, "model.num_layers=2", "rows")
    parser.add_argument("--max-seq-length", type=int, default=d.max_seq_length, help="tokens per row (padded)")
    parser.add_argument("--train-examples", type=int, default=d.train_examples, help="SST-2 train rows used")
    parser.add_argument("--eval-examples", type=int, default=d.eval_examples, help="dev rows predicted (0 = all)")
    parser.add_argument("--data-dir", default=d.data_dir, help="data root (default: $BERTBENCH_DATA, then the sample)")
    parser.add_argument("--vocab", default=d.vocab, help="vocab.txt of the tokenizer (default: bundled)")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of the models' weights and batches")
    parser.add_argument("--task", default=d.task, help="classification task measured (e.g. mrpc, a pair task)")
    parser.add_argument("--precision", default=d.precision, choices=PRECISIONS,
                        help="dtype policy of the measured models (auto: this machine's best, as `finetune` picks it)")
    parser.add_argument("--versus-float32", action="store_true",
                        help="measure ours in float32 and in --precision side by side (interleaved), no peer")
    parser.add_argument("--json", default=None, metavar="OUT", help="write every figure to this JSON file")


def main_finetune(args):
    opts = finetune_bench.FinetuneBench(
        model=args.model, max_seq_length=args.max_seq_length, batch_size=args.batch_size,
        train_examples=args.train_examples, eval_examples=args.eval_examples, steps=args.steps, warmup=args.warmup,
        rounds=args.rounds, data_dir=args.data_dir, vocab=args.vocab, seed=args.seed, task=args.task,
        precision=args.precision, versus_float32=args.versus_float32)
    opts.check()  # before TensorFlow loads: bad arguments fail fast
    if args.json:
        check_writable_file(args.json, "--json")
    model_cfg = configs_from_args(args, {"model": model_preset(args.model)})["model"]
    finetune_bench.check_model(opts, model_cfg)
    return _report(finetune_bench.bench_finetune(opts, model_cfg, log=_log), finetune_bench.format_report, args.json)


def add_tokenize_arguments(parser):
    d = tokenize_bench.TokenizeBench()
    parser.add_argument("--corpus", default=d.corpus, help="corpus file or folder (default: bundled sample)")
    parser.add_argument("--vocab", default=d.vocab, help="vocab.txt, uncased (default: bundled)")
    parser.add_argument("--repeats", type=int, default=d.repeats, help="timed passes per tokenizer, interleaved")
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="skip the exactness check against the google-research port (pure Python)")
    parser.add_argument("--json", default=None, metavar="OUT", help="write every figure to this JSON file")


def main_tokenize(args):
    opts = tokenize_bench.TokenizeBench(corpus=args.corpus, vocab=args.vocab, repeats=args.repeats,
                                        reference=args.reference)
    opts.check()  # before TensorFlow loads: bad arguments fail fast
    if args.json:
        check_writable_file(args.json, "--json")
    return _report(tokenize_bench.bench_tokenize(opts, log=_log), tokenize_bench.format_report, args.json)
