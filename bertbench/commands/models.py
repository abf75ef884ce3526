"""`bertbench models`: the model presets with L / H / A, feed-forward size and parameter count."""

from bertbench.errors import BertbenchError
from bertbench.model.presets import format_table, preset_rows


def add_arguments(parser):
    parser.add_argument("--vocab-size", type=int, default=30522,
                        help="vocabulary size used for the counts (default: 30522, bert-base-uncased)")
    parser.add_argument("--max-seq-length", type=int, default=512,
                        help="position-embedding table size used for the counts (default: 512)")


def main(args):
    if args.vocab_size <= 0 or args.max_seq_length <= 0:
        raise BertbenchError("--vocab-size and --max-seq-length must be positive integers")
    print(format_table(preset_rows(args.vocab_size, args.max_seq_length)))
    return 0
