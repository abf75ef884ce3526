"""`bertbench vocab`: learn a WordPiece vocabulary from corpora and task data (bertbench.text.vocab)."""

from pathlib import Path

from bertbench.errors import BertbenchError
from bertbench.files import check_writable_file
from bertbench.resources import resolve_data_dir
from bertbench.text.corpus import corpus_files
from bertbench.text.vocab import corpus_texts, learn_vocabulary, task_texts, write_vocab


def add_arguments(parser):
    parser.add_argument("--corpus", action="append", required=True, metavar="PATH",
                        help="corpus file or folder (plain text, WikiText, WikiExtractor, .gz); "
                             "repeat to combine; 'sample' is the bundled corpus")
    parser.add_argument("--task-data", metavar="DIR",
                        help="also learn from the train splits under this data root "
                             "(glue/, squad/, conll2003/); 'sample' is the bundled one (default: none)")
    parser.add_argument("--size", type=int, default=8192, help="maximum vocabulary size")
    parser.add_argument("--out", required=True, help="vocabulary file to write (one token a line)")
    parser.add_argument("--cased", action="store_true", help="keep case and accents (default: uncased)")
    parser.add_argument("--max-lines", type=int, default=None, metavar="N",
                        help="read at most N corpus lines (paragraphs) (default: all)")


def check_arguments(args):
    """Sizes, inputs and the output file, before the corpus is read."""
    if args.size < 1:
        raise BertbenchError(f"--size must be at least 1, got {args.size}")
    if args.max_lines is not None and args.max_lines < 1:
        raise BertbenchError(f"--max-lines must be at least 1, got {args.max_lines}")
    check_writable_file(args.out, "--out")
    for corpus in args.corpus:
        corpus_files(corpus)  # there, and a folder holds files
    if args.task_data and args.task_data != "sample" and not Path(args.task_data).is_dir():
        raise BertbenchError(f"task data folder not found: {args.task_data}; pass a data root holding glue/, "
                             f"squad/ or conll2003/ to --task-data, or 'sample'")


def main(args):
    check_arguments(args)
    texts = corpus_texts(args.corpus, args.max_lines)
    n_corpus = len(texts)
    if args.task_data:
        texts += task_texts(resolve_data_dir(args.task_data))
    vocab = learn_vocabulary(texts, args.size, lowercase=not args.cased)
    write_vocab(vocab, args.out)
    print(f"wrote {len(vocab)} tokens to {args.out} ({'cased' if args.cased else 'uncased'}; "
          f"{n_corpus} corpus lines, {len(texts) - n_corpus} task texts)")
    return 0
