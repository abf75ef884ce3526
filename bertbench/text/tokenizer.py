"""WordPiece tokenization equal to google-research/bert's `FullTokenizer`, run with tensorflow-text.

Words come from the original BasicTokenizer (`bertbench.text.basic`, its steps as TF ops), then
greedy longest-match-first WordPiece with '##' suffixes; words longer than 100 characters become
[UNK].

tensorflow-text's end-to-end tokenizers do not match the original: `BertTokenizer(lower_case=True)`
applies NFKC case folding ('ß' -> 'ss', full-width 'Ａ' -> 'a', '…' -> '...') and
`FastBertTokenizer(lower_case_nfd_strip_accents=True)` has its own character tables and counts the
100-character limit in bytes; on the MiniLM vocabulary each gave other ids than the original on 28
of 3,919 Wikipedia paragraphs (uncased) and on 6-7 of our 20 hard strings. So the WordPiece step
alone runs on tensorflow-text's `FastWordpieceTokenizer(no_pretokenization=True)` (LinMaxMatch,
which equals greedy MaxMatch), after our own BasicTokenizer. Character offsets come from the
Python port of the same steps (`basic.words_with_spans`).

The word-length limit is 100 characters, as in Hugging Face's port and the MiniLM oracle;
google-research/bert's `WordpieceTokenizer` default is 200 (pass `max_chars_per_word=200`).
"""

import re
from pathlib import Path

import numpy as np

from bertbench.errors import BertbenchError
from bertbench.resources import sample_path
from bertbench.text.basic import tf_basic_words, words_with_spans

SPECIAL_TOKENS = {"cls_id": "[CLS]", "sep_id": "[SEP]", "pad_id": "[PAD]", "mask_id": "[MASK]",
                  "unk_id": "[UNK]"}
_SPECIAL_FORM = re.compile(r"^\[[^\[\]\s]+\]$")  # [CLS], [unused12], ...
_BATCH = 2048  # texts per tensorflow-text call in the eager helpers


def read_vocab(vocab_path):
    """Tokens of a vocabulary file, one per line (line i -> id i), as the original `load_vocab`."""
    path = Path(vocab_path)
    if not path.is_file():
        raise BertbenchError(f"vocabulary file not found: {path}; pass an existing vocab.txt "
                             f"(one WordPiece token per line) or 'sample' for the bundled one")
    tokens = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    seen = {}
    for line_no, token in enumerate(tokens, 1):
        if not token:
            raise BertbenchError(f"{path}:{line_no}: empty vocabulary line; every line must hold "
                                 f"one token")
        if token in seen:
            raise BertbenchError(f"{path}:{line_no}: duplicate token {token!r} (first on line "
                                 f"{seen[token]}); every token must appear once")
        seen[token] = line_no
    return tokens


class WordPieceTokenizer:
    """BERT WordPiece tokenizer over a vocab.txt; ids equal google-research/bert FullTokenizer's."""

    def __init__(self, vocab_path, lowercase=True, max_chars_per_word=100):
        self.vocab_path = str(vocab_path)
        self.lowercase = bool(lowercase)
        self.max_chars_per_word = int(max_chars_per_word)
        self.vocab = read_vocab(vocab_path)
        self.vocabulary_size = len(self.vocab)
        self._token_to_id = {token: i for i, token in enumerate(self.vocab)}
        for attr, token in SPECIAL_TOKENS.items():
            if token not in self._token_to_id:
                raise BertbenchError(f"vocabulary {self.vocab_path} has no {token} token; a BERT "
                                     f"vocabulary needs {', '.join(SPECIAL_TOKENS.values())}")
            setattr(self, attr, self._token_to_id[token])
        self.special_ids = frozenset(i for i, t in enumerate(self.vocab) if _SPECIAL_FORM.match(t))
        self._graph = None  # built on first use: TensorFlow is imported lazily

    # ---- graph path (tensorflow-text) ------------------------------------------------------
    def _wordpiece(self):
        if self._graph is None:
            import tensorflow as tf
            import tensorflow_text as tf_text

            with tf.init_scope():  # built eagerly even when first called while tracing tf.data
                self._graph = tf_text.FastWordpieceTokenizer(
                    vocab=self.vocab, suffix_indicator="##", unknown_token="[UNK]",
                    no_pretokenization=True, token_out_type=tf.int32,
                    # our own character limit applies before; UTF-8 takes <= 4 bytes a character
                    max_bytes_per_word=4 * self.max_chars_per_word + 4)
        return self._graph

    def tf_words(self, strings):
        """BasicTokenizer words, tf.string [batch] -> RaggedTensor [batch, (words)]; words longer
        than `max_chars_per_word` characters are replaced by '[UNK]' (as WordPiece would)."""
        import tensorflow as tf

        words = tf_basic_words(strings, self.lowercase)
        flat = words.flat_values
        too_long = tf.strings.length(flat, unit="UTF8_CHAR") > self.max_chars_per_word
        return words.with_flat_values(tf.where(too_long, tf.constant("[UNK]"), flat))

    def tf_tokenize(self, strings):
        """Ids inside TF graphs/tf.data: tf.string [batch] -> int32 RaggedTensor [batch, (ids)].

        A scalar string gives a 1-D int32 tensor of ids. No special tokens are added.
        """
        import tensorflow as tf

        strings = tf.convert_to_tensor(strings, dtype=tf.string)
        if strings.shape.rank == 0:
            return self.tf_tokenize(tf.expand_dims(strings, 0))[0]
        pieces = self._wordpiece().tokenize(self.tf_words(strings))
        return pieces.merge_dims(-2, -1)  # [batch, (words), (pieces)] -> [batch, (pieces)]

    # ---- eager helpers -----------------------------------------------------------------------
    def tokenize(self, texts):
        """list[str] -> list[list[int]] of WordPiece ids (no special tokens)."""
        texts = _as_list(texts)
        out = []
        for i in range(0, len(texts), _BATCH):
            ragged = self.tf_tokenize(texts[i:i + _BATCH])
            out.extend(_ragged_to_lists(ragged))
        return out

    def tokenize_words(self, words):
        """Pre-split words (e.g. CoNLL tokens) -> WordPiece ids of each word: list[list[int]]."""
        return self.tokenize(words)

    def tokenize_with_offsets(self, texts):
        """(ids, starts, ends): per text, lists of ids and code-point offsets into the text.

        `text[start:end]` is the span of the original text a piece came from (end exclusive).
        """
        texts = _as_list(texts)
        per_text = [words_with_spans(t, self.lowercase) for t in texts]
        unique = sorted({w for words in per_text for w, _, _ in words})
        pieces = dict(zip(unique, self._wordpiece_words(unique)))
        all_ids, all_starts, all_ends = [], [], []
        for words in per_text:
            ids, starts, ends = [], [], []
            for word, w_starts, w_ends in words:
                word_ids = pieces[word]
                ids.extend(word_ids)
                if len(word) > self.max_chars_per_word or word_ids == [self.unk_id]:
                    starts.append(w_starts[0])
                    ends.append(w_ends[-1])
                    continue
                pos = 0  # position in the normalised word
                for k, token_id in enumerate(word_ids):
                    length = len(self.vocab[token_id]) - (2 if k else 0)  # '##' suffix marker
                    starts.append(w_starts[pos])
                    ends.append(w_ends[pos + length - 1])
                    pos += length
            all_ids.append(ids)
            all_starts.append(starts)
            all_ends.append(ends)
        return all_ids, all_starts, all_ends

    def _wordpiece_words(self, words):
        """Already normalised words -> WordPiece ids of each (the character limit applied)."""
        import tensorflow as tf

        out = []
        for i in range(0, len(words), _BATCH):
            chunk = [w if len(w) <= self.max_chars_per_word else "[UNK]"
                     for w in words[i:i + _BATCH]]
            out.extend(_ragged_to_lists(self._wordpiece().tokenize(tf.constant(chunk, tf.string))))
        return out

    def id_to_token(self, ids):
        """Token strings of `ids` (an int gives one string)."""
        if isinstance(ids, (int, np.integer)):
            return self.vocab[int(ids)]
        return [self.vocab[int(i)] for i in ids]

    def token_to_id(self, token):
        return self._token_to_id.get(token, self.unk_id)

    # ---- packing -----------------------------------------------------------------------------
    def pack(self, ids_a, ids_b=None, max_seq_length=128):
        """[CLS] A [SEP] (B [SEP]) padded to max_seq_length -> dict of int32 numpy [seq] arrays.

        Pairs are truncated longest-first exactly as google-research/bert `_truncate_seq_pair`
        (pop from A when it is strictly longer, else from B); a single segment keeps its first
        max_seq_length - 2 ids.
        """
        ids_a = list(ids_a)
        ids_b = None if ids_b is None else list(ids_b)
        if ids_b is None:
            if max_seq_length < 2:
                raise BertbenchError(f"max_seq_length={max_seq_length} leaves no room for [CLS] "
                                     f"and [SEP]; use at least 2")
            ids_a = ids_a[:max_seq_length - 2]
        else:
            if max_seq_length < 3:
                raise BertbenchError(f"max_seq_length={max_seq_length} is too short for a pair; "
                                     f"use at least 3")
            truncate_seq_pair(ids_a, ids_b, max_seq_length - 3)
        tokens = [self.cls_id] + ids_a + [self.sep_id]
        segments = [0] * len(tokens)
        if ids_b is not None:
            tokens += ids_b + [self.sep_id]
            segments += [1] * (len(ids_b) + 1)
        pad = max_seq_length - len(tokens)
        return {
            "token_ids": np.asarray(tokens + [self.pad_id] * pad, dtype=np.int32),
            "segment_ids": np.asarray(segments + [0] * pad, dtype=np.int32),
            "padding_mask": np.asarray([1] * len(tokens) + [0] * pad, dtype=np.int32),
        }

    def pack_batch(self, list_a, list_b=None, max_seq_length=128):
        """Batched `pack`: lists of id lists -> dict of int32 numpy [n, seq] arrays."""
        if list_b is not None and len(list_b) != len(list_a):
            raise BertbenchError(f"pack_batch got {len(list_a)} first segments but {len(list_b)} "
                                 f"second segments; pass lists of equal length")
        rows = [self.pack(a, None if list_b is None else list_b[i], max_seq_length)
                for i, a in enumerate(list_a)]
        keys = ("token_ids", "segment_ids", "padding_mask")
        if not rows:
            return {k: np.zeros((0, max_seq_length), dtype=np.int32) for k in keys}
        return {k: np.stack([r[k] for r in rows]) for k in keys}


def truncate_seq_pair(tokens_a, tokens_b, max_length):
    """In place, as google-research/bert: pop from the longer list (B on ties) until they fit."""
    while len(tokens_a) + len(tokens_b) > max_length:
        if len(tokens_a) > len(tokens_b):
            tokens_a.pop()
        else:
            tokens_b.pop()


def load_tokenizer(vocab="sample", lowercase=True):
    """A WordPieceTokenizer over the bundled vocabulary ("sample") or a vocab.txt path."""
    if vocab == "sample":
        vocab = sample_path("vocab_uncased.txt" if lowercase else "vocab_cased.txt")
    return WordPieceTokenizer(vocab, lowercase=lowercase)


def _as_list(texts):
    if isinstance(texts, str):
        raise BertbenchError("tokenizer methods take a list of strings, got one string; wrap it "
                             "in a list")
    return [t.decode("utf-8") if isinstance(t, bytes) else t for t in texts]


def _ragged_to_lists(ragged):
    """int RaggedTensor [batch, (n)] -> list of Python int lists, without per-element TF calls."""
    values = ragged.flat_values.numpy().tolist()
    bounds = ragged.row_splits.numpy().tolist()
    return [values[bounds[i]:bounds[i + 1]] for i in range(len(bounds) - 1)]
