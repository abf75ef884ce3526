"""`bertbench vocab`: learn a WordPiece vocabulary from corpora and task data (bertbench.text.vocab)."""

from bertbench.resources import resolve_data_dir
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


def main(args):
    texts = corpus_texts(args.corpus, args.max_lines)
    n_corpus = len(texts)
    if args.task_data:
        texts += task_texts(resolve_data_dir(args.task_data))
    vocab = learn_vocabulary(texts, args.size, lowercase=not args.cased)
    write_vocab(vocab, args.out)
    print(f"wrote {len(vocab)} tokens to {args.out} ({'cased' if args.cased else 'uncased'}; "
          f"{n_corpus} corpus lines, {len(texts) - n_corpus} task texts)")
    return 0
