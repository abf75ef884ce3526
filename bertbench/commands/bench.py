"""`bertbench bench pretrain`: benchmarks, speed measured side by side (bertbench.bench.pretrain)."""

from bertbench.bench.pretrain import PRECISIONS, WHATS, PretrainBench, bench_pretrain, check_model, format_report
from bertbench.cli import configs_from_args
from bertbench.config import model_preset
from bertbench.files import write_json_atomic


def add_arguments(parser):
    defaults = PretrainBench()
    parser.add_argument("what", choices=WHATS, help="what to benchmark")
    parser.add_argument("--model", default=defaults.model, help="model preset (see `bertbench models`)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="model.KEY=VALUE",
                        help="override a model setting, e.g. --set model.activation=gelu_approximate")
    parser.add_argument("--seq-length", type=int, default=defaults.seq_length, help="tokens per sequence")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="sequences per training step")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="timed training steps per model")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="untimed steps per model (tracing)")
    parser.add_argument("--rounds", type=int, default=defaults.rounds,
                        help="interleaved ours/peer rounds the timed steps are split over")
    parser.add_argument("--precision", default=defaults.precision, choices=PRECISIONS,
                        help="Keras dtype policy of both models")
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
                         jit=args.jit, vocab_size=args.vocab_size, vocab=args.vocab, corpus=args.corpus,
                         matmul_size=args.matmul_size, matmul_repeats=args.matmul_repeats,
                         pipeline_batches=args.pipeline_batches, seed=args.seed)
    opts.check()  # before TensorFlow loads: bad arguments fail fast
    model_cfg = configs_from_args(args, {"model": model_preset(args.model)})["model"]
    check_model(opts, model_cfg)
    return opts, model_cfg


def main(args):
    opts, model_cfg = options(args)
    result = bench_pretrain(opts, model_cfg, log=lambda msg: print(msg, flush=True))
    print()
    print(format_report(result))
    if args.json:
        write_json_atomic(args.json, result)
        print(f"wrote {args.json}")
    return 0
