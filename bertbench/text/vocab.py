"""Learning a WordPiece vocabulary (the `vocab` command's library part; the command is
bertbench.commands.vocab).

Words are cut exactly as `bertbench.text.tokenizer` cuts them (the original BERT BasicTokenizer, as TF
ops: `bertbench.text.basic.tf_basic_words`), so the learned pieces fit the normalisation the tokenizer applies
(uncased: lower-cased, accents stripped; cased: as written). The pieces are then learned with
tensorflow-text's WordPiece learner (`wordpiece_tokenizer_learner_lib.learn`, the algorithm behind
`bert_vocab_from_dataset`, which we do not call because its BasicTokenizer applies NFKC case
folding, unlike the original BERT tokenizer). The learner is deterministic given the word counts,
which we pass sorted by (count desc, word).

    python -m bertbench vocab --corpus bertbench/data/sample/corpus --size 8192 --out vocab.txt
"""

import collections
import csv
import json
from pathlib import Path

from bertbench.errors import BertbenchError
from bertbench.files import write_text_atomic
from bertbench.text.basic import tf_basic_words
from bertbench.text.corpus import read_documents

RESERVED = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_BATCH = 4096  # texts per tensorflow-text call when counting words
# GLUE train.tsv text columns (header names; CoLA has no header: column 3).
GLUE_TEXT_COLUMNS = {"CoLA": (3,), "SST-2": ("sentence",), "MRPC": ("#1 String", "#2 String"),
                     "QNLI": ("question", "sentence"), "RTE": ("sentence1", "sentence2"),
                     "STS-B": ("sentence1", "sentence2"), "WNLI": ("sentence1", "sentence2"),
                     "MNLI": ("sentence1", "sentence2"), "QQP": ("question1", "question2")}


def count_words(texts, lowercase=True):
    """Counter word -> count of the tokenizer's words (before WordPiece) over `texts`."""
    import tensorflow as tf

    texts = list(texts)
    counts = collections.Counter()
    for i in range(0, len(texts), _BATCH):
        words = tf_basic_words(tf.constant(texts[i:i + _BATCH]), lowercase)
        counts.update(words.flat_values.numpy().tolist())
    return collections.Counter({w.decode("utf-8"): c for w, c in counts.items()})


def learn_vocabulary(texts, size, lowercase=True, reserved=RESERVED, min_count=2):
    """A WordPiece vocabulary (list of at most `size` tokens, `reserved` first) learned on `texts`.

    Every character of the (up to 1,000) most frequent characters gets a token and a '##' token, so
    text made of them never becomes [UNK]. Tokens below `min_count` occurrences are never learned.
    """
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

    reserved = list(reserved)
    if size <= len(reserved):
        raise BertbenchError(f"vocabulary size {size} leaves no room beside the {len(reserved)} "
                             f"reserved tokens; use a larger --size (BERT uses 30522)")
    counts = count_words(texts, lowercase)
    if not counts:
        raise BertbenchError("no words found to learn a vocabulary from; give a corpus with text")
    word_counts = sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))  # deterministic order
    vocab = learner.learn(word_counts, size, reserved, lower_thresh=min_count)
    return trim_vocabulary(vocab, size, reserved, counts)


def trim_vocabulary(vocab, size, reserved, word_counts):
    """`vocab` cut to at most `size` tokens, keeping the most frequent.

    The learner's binary search over a count threshold may end above the requested size (many
    pieces share one count, so no threshold lands inside it). Its output is ordered reserved tokens,
    the single characters, then the learned pieces by count (descending): we keep the reserved
    tokens, every character with its '##' form (so no text becomes [UNK]), and the most frequent
    pieces up to `size`. If even the characters do not fit, the most frequent characters are kept.
    """
    if len(vocab) <= size:
        return vocab
    budget = size - len(reserved)
    chars = collections.Counter()
    for word, count in word_counts.items():
        for char in word:
            chars[char] += count
    alphabet = [t for t in vocab[len(reserved):] if len(t.removeprefix("##")) == 1]
    if len(alphabet) > budget:  # the characters alone overflow: keep the most frequent, both forms
        ranked = sorted(alphabet, key=lambda t: (-chars[t.removeprefix("##")], t.removeprefix("##"), t))
        keep = set(ranked[:budget])
    else:
        pieces = [t for t in vocab[len(reserved):] if len(t.removeprefix("##")) != 1]
        keep = set(alphabet) | set(pieces[:budget - len(alphabet)])
    return list(reserved) + [t for t in vocab[len(reserved):] if t in keep]


def write_vocab(vocab, out):
    """Write one token per line, atomically (temp file in the same folder, then rename)."""
    write_text_atomic(out, "".join(token + "\n" for token in vocab))


def corpus_texts(paths, max_lines=None):
    """Paragraph lines of the corpora at `paths` (files or folders; see bertbench.text.corpus)."""
    texts = []
    for path in paths:
        for document in read_documents(path, sentence_split=False):
            for line in document:
                if max_lines is not None and len(texts) >= max_lines:
                    return texts
                texts.append(line)
    return texts


def task_texts(data_dir):
    """Texts of the train splits under a data root: glue/<TASK>/train.tsv, squad/train-*.json,
    conll2003/eng.train. Duplicates (e.g. SQuAD v1.1 paragraphs repeated in v2.0) are dropped."""
    root = Path(data_dir)
    if not root.is_dir():
        raise BertbenchError(f"task data folder not found: {root}; pass a data root holding "
                             f"glue/, squad/ or conll2003/")
    texts = []
    for task, columns in GLUE_TEXT_COLUMNS.items():
        path = root / "glue" / task / "train.tsv"
        if path.is_file():
            texts += _glue_texts(path, columns)
    for path in sorted((root / "squad").glob("train-*.json")):
        for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
            for paragraph in article["paragraphs"]:
                texts.append(paragraph["context"])
                texts += [qa["question"] for qa in paragraph["qas"]]
    conll = root / "conll2003" / "eng.train"
    if conll.is_file():
        texts += _conll_sentences(conll)
    return list(dict.fromkeys(t for t in texts if t.strip()))


def _glue_texts(path, columns):
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if isinstance(columns[0], str):
        header, rows = rows[0], rows[1:]
        missing = [c for c in columns if c not in header]
        if missing:
            raise BertbenchError(f"{path}: header has no column {missing[0]!r}; expected the GLUE "
                                 f"layout of download_glue_data.py")
        columns = [header.index(c) for c in columns]
    return [row[c] for row in rows for c in columns if c < len(row)]


def _conll_sentences(path):
    sentences, words = [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        parts = line.split()
        if parts and parts[0] != "-DOCSTART-":
            words.append(parts[0])
        elif words:
            sentences.append(" ".join(words))
            words = []
    return sentences
