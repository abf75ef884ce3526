"""`bertbench features`: per-token hidden states of chosen layers as JSON lines
(bertbench.model.extract_features)."""

import re

from bertbench.errors import BertbenchError
from bertbench.files import check_writable_file
from bertbench.model.checkpoint import load_encoder
from bertbench.model.extract_features import check_layers, extract_features, read_examples, write_jsonl_atomic


def add_arguments(parser):
    parser.add_argument("--init", required=True,
                        help="encoder checkpoint: a bertbench checkpoint folder or a Hugging Face BERT folder")
    parser.add_argument("--input", required=True, help="text file, one 'text_a' or 'text_a ||| text_b' per line")
    parser.add_argument("--out", required=True, help="output JSON-lines file")
    parser.add_argument("--layers", default=None,
                        help="comma-separated layer indexes: 0 = embeddings, -1 = last (default: the last "
                             "four hidden states, -1,-2,-3,-4, or all L+1 of an encoder with fewer than 4 layers)")
    parser.add_argument("--max-seq-length", type=int, default=None,
                        help="tokens per input, [CLS]/[SEP] included (default: 128, or the encoder's "
                             "position limit if smaller)")
    parser.add_argument("--batch-size", type=int, default=8, help="inputs per forward pass (default: 8)")
    # Let `--layers -1,-2` parse as a value: argparse only treats '-1' (not '-1,-2') as a number.
    parser._negative_number_matcher = re.compile(r"^-\.?\d")  # no option of ours looks like that


def parse_layers(text):
    """'-1,-2' -> [-1, -2]; one-line error for anything else."""
    try:
        layers = [int(part) for part in text.split(",")]
    except ValueError:
        raise BertbenchError(f"--layers {text!r} is not a comma-separated list of integers "
                             f"(e.g. -1,-2,-3,-4)") from None
    return layers


def default_layers(num_layers):
    """The original's -1,-2,-3,-4, cut to the L+1 hidden states an L-layer encoder has."""
    return [-k for k in range(1, min(4, num_layers + 1) + 1)]


def main(args):
    layers = parse_layers(args.layers) if args.layers is not None else None
    if args.max_seq_length is not None and args.max_seq_length < 3:
        raise BertbenchError(f"--max-seq-length must be at least 3, got {args.max_seq_length}")
    if args.batch_size < 1:
        raise BertbenchError(f"--batch-size must be at least 1, got {args.batch_size}")
    check_writable_file(args.out, "--out")
    examples = read_examples(args.input)
    loaded = load_encoder(args.init)
    if layers is None:
        layers = default_layers(loaded.model_cfg.num_layers)
        if len(layers) < 4:
            print(f"--layers not given: using {','.join(map(str, layers))}, all {len(layers)} hidden states "
                  f"of this {loaded.model_cfg.num_layers}-layer encoder (embeddings included)")
    check_layers(layers, loaded.model_cfg.num_layers)
    max_seq_length = args.max_seq_length or min(128, loaded.model_cfg.max_sequence_length)
    count = write_jsonl_atomic(
        extract_features(loaded, examples, layers, max_seq_length, args.batch_size), args.out)
    print(f"wrote features of {count} inputs (layers {layers}) to {args.out}")
    return 0
