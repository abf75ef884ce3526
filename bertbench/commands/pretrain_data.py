"""`bertbench pretrain-data`: write statically masked pretraining instances as TFRecord shards
(bertbench.pretraining.tfrecords)."""

from bertbench.cli import configs_from_args
from bertbench.config import INPUT_FORMATS, PretrainConfig
from bertbench.errors import ConfigError
from bertbench.files import check_writable_dir
from bertbench.pretraining.tfrecords import write_pretraining_data
from bertbench.text.corpus import corpus_files
from bertbench.text.tokenizer import check_vocab, load_tokenizer


def add_arguments(parser):
    parser.add_argument("--corpus", required=True,
                        help="text corpus file or folder (plain text, WikiText, WikiExtractor, .gz), or 'sample'")
    parser.add_argument("--vocab", default="sample", help="vocab.txt path, or 'sample' (bundled)")
    parser.add_argument("--out", required=True, help="output folder for the shards and summary.json")
    parser.add_argument("--objective", default="mlm+nsp", help="mlm+nsp (default), mlm, or ltr")
    parser.add_argument("--input-format", default="auto", choices=INPUT_FORMATS,
                        help="segment_pairs ([CLS] A [SEP] B [SEP]), doc_sentences (one document's sentences packed "
                             "as one segment, RoBERTa's DOC-SENTENCES; no NSP) or auto (pairs for mlm+nsp, else packed)")
    parser.add_argument("--max-seq-length", type=int, default=128, help="tokens per instance, [CLS]/[SEP] included")
    parser.add_argument("--dupe-factor", type=int, default=10, help="masked copies of the corpus")
    parser.add_argument("--masked-lm-prob", type=float, default=0.15, help="fraction of tokens chosen for prediction")
    parser.add_argument("--masking", default="0.8,0.1,0.1", help="MASK,SAME,RND fractions summing to 1")
    parser.add_argument("--whole-word-masking", action="store_true", help="mask every piece of a chosen word together")
    parser.add_argument("--num-shards", type=int, default=1, help="TFRecord files to spread the instances over")
    parser.add_argument("--seed", type=int, default=0, help="seed of the instances, masks and shuffling")
    parser.add_argument("--cased", action="store_true", help="keep case (needs a cased vocabulary)")
    parser.add_argument("--max-documents", type=int, default=None, metavar="N",
                        help="read at most N documents (default: all)")


def config(args):
    """A validated PretrainConfig from the command's flags."""
    try:
        masking = tuple(float(x) for x in args.masking.split(","))
    except ValueError:
        masking = ()
    if len(masking) != 3:
        raise ConfigError(f"--masking {args.masking!r} must be three comma-separated fractions, "
                          f"e.g. 0.8,0.1,0.1")
    if args.max_documents is not None and args.max_documents < 1:
        raise ConfigError(f"--max-documents must be at least 1, got {args.max_documents}")
    flags = {"pretrain.objective": args.objective, "pretrain.input_format": args.input_format, "pretrain.corpus": str(args.corpus),
             "pretrain.vocab": str(args.vocab), "pretrain.lowercase": not args.cased,
             "pretrain.max_seq_length": args.max_seq_length, "pretrain.masked_lm_prob": args.masked_lm_prob,
             "pretrain.masking": masking, "pretrain.whole_word_masking": args.whole_word_masking,
             "pretrain.dupe_factor": args.dupe_factor, "pretrain.seed": args.seed}
    return configs_from_args(args, {"pretrain": PretrainConfig()}, flags)["pretrain"]


def main(args):
    cfg = config(args)
    if args.num_shards < 1:
        raise ConfigError(f"--num-shards must be at least 1, got {args.num_shards}")
    check_writable_dir(args.out, "--out")
    check_vocab(cfg.vocab, cfg.lowercase)
    corpus_files(cfg.corpus)  # there, and a folder holds files
    tokenizer = load_tokenizer(cfg.vocab, cfg.lowercase)
    summary = write_pretraining_data(cfg, tokenizer, args.out, args.num_shards, args.max_documents)
    print(f"wrote {summary['instances']} instances ({summary['tokens']} tokens, "
          f"{summary['documents']} documents) to {args.out} in {len(summary['shards'])} shard(s); "
          f"selection {summary.get('selection_rate', 0):.4f}, "
          + (f"IsNext {summary['is_next_fraction']:.3f}" if cfg.segment_pairs else "one segment each (no pairs)"))
    return 0
