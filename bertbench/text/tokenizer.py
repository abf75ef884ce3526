"""WordPiece tokenization equal to google-research/bert's `FullTokenizer`, run with tensorflow-text.

Words come from the original BasicTokenizer (`bertbench.text.basic`, its steps as TF ops), then
greedy longest-match-first WordPiece with '##' suffixes; words longer than 100 characters become
[UNK].

tensorflow-text's end-to-end tokenizers do not match the original: `BertTokenizer(lower_case=True)`
applies NFKC case folding ('ß' -> 'ss', full-width 'Ａ' -> 'a', '…' -> '...') and
`FastBertTokenizer(lower_case_nfd_strip_accents=True)` has its own character tables and counts the
100-character limit in bytes; on the MiniLM vocabulary each gave other ids than the original on 28
of 3,919 Wikipedia paragraphs (uncased) and on 6-7 of our 20 hard strings. Two paths, equal ids:

- exact path (`tf_tokenize`, the graph API): our own BasicTokenizer as TF ops (`basic.tf_basic_words`),
  then `FastWordpieceTokenizer(no_pretokenization=True)` (LinMaxMatch, which equals greedy MaxMatch)
  on its words;
- fast path (`tokenize`, what pretraining calls; ~7x the exact path, about FastBertTokenizer's speed):
  one `FastWordpieceTokenizer(no_pretokenization=False)` pass that splits and tokenizes, after only
  lower-casing the ASCII letters of plain texts (ASCII, or no character the normalisation would
  change) or our cleaning and normalisation without the splits (`basic.tf_fast_normalize`); its
  pre-tokenizer's whitespace and punctuation tables are measured against the original's on every
  character (`basic.fast_patterns`). A text whose ids hold an [UNK] (an unknown word, a word over
  the byte limit, a deleted control character inside a word) is redone on the exact path.

Character offsets come from the Python port of the same steps (`basic.words_with_spans`).

The word-length limit is 100 characters, as in Hugging Face's port and the MiniLM oracle;
google-research/bert's `WordpieceTokenizer` default is 200 (pass `max_chars_per_word=200`).
"""

import functools
import re
from pathlib import Path

import numpy as np

from bertbench.errors import BertbenchError
from bertbench.files import read_text_utf8
from bertbench.resources import sample_path
from bertbench.text.basic import fast_patterns, tf_basic_words, tf_fast_normalize, words_with_spans

SPECIAL_TOKENS = {"cls_id": "[CLS]", "sep_id": "[SEP]", "pad_id": "[PAD]", "mask_id": "[MASK]",
                  "unk_id": "[UNK]"}
_SPECIAL_FORM = re.compile(r"^\[[^\[\]\s]+\]$")  # [CLS], [unused12], ...
_BATCH = 2048  # texts per tensorflow-text call in the eager helpers
_FAST_BATCH = 8192  # texts per call of the fast path (what pretraining hands over at once)


def read_vocab(vocab_path):
    """Tokens of a vocabulary file, one per line (line i -> id i), as the original `load_vocab`."""
    path = Path(vocab_path)
    if not path.is_file():
        raise BertbenchError(f"vocabulary file not found: {path}; pass an existing vocab.txt "
                             f"(one WordPiece token per line) or 'sample' for the bundled one")
    tokens = [line.strip() for line in read_text_utf8(path).splitlines()]
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
        self._fast_graph = None
        self._ascii_unsafe = ""  # characters that keep a text off the ASCII branch

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
        """Ids inside TF graphs/tf.data, on the exact path: tf.string [batch] -> int32 RaggedTensor
        [batch, (ids)] (what `tokenize` gives, ~7x slower; `tokenize` redoes texts with it).

        A scalar string gives a 1-D int32 tensor of ids. No special tokens are added.
        """
        import tensorflow as tf

        strings = tf.convert_to_tensor(strings, dtype=tf.string)
        if strings.shape.rank == 0:
            return self.tf_tokenize(tf.expand_dims(strings, 0))[0]
        pieces = self._wordpiece().tokenize(self.tf_words(strings))
        return pieces.merge_dims(-2, -1)  # [batch, (words), (pieces)] -> [batch, (pieces)]

    # ---- fast path (eager) -------------------------------------------------------------------
    def _fast(self):
        """tf.function(texts [batch], ascii [batch]) -> (ids, row_splits, exact [batch])."""
        if self._fast_graph is None:
            import tensorflow as tf
            import tensorflow_text as tf_text

            vocab_chars = frozenset("".join(self.vocab))
            patterns = fast_patterns(self.lowercase, vocab_chars)
            with tf.init_scope():
                e2e = tf_text.FastWordpieceTokenizer(
                    vocab=self.vocab, suffix_indicator="##", unknown_token="[UNK]",
                    no_pretokenization=False, token_out_type=tf.int32,
                    max_bytes_per_word=self.max_chars_per_word)  # bytes >= characters
            # a deleted control inside a word makes it [UNK] (exact path) unless a token holds it
            held = vocab_chars & set(patterns["ascii_deleted"])
            self._ascii_unsafe = patterns["ascii_split_deleted"] + "".join(sorted(held))
            spec = [tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.bool)]
            self._fast_graph = tf.function(functools.partial(_fast_ids, e2e, self.lowercase, vocab_chars),
                                           input_signature=spec, autograph=False)
        return self._fast_graph

    def _ascii(self, texts):
        """bool [n]: ASCII texts without a control the plain branch would mishandle (usually all)."""
        joined = "".join(texts)
        rows = np.ones(len(texts), dtype=bool) if joined.isascii() else np.fromiter(
            map(str.isascii, texts), dtype=bool, count=len(texts))  # isascii() is O(1)
        for ch in self._ascii_unsafe:  # usually absent from the whole batch: no per-text scan
            if ch in joined:
                rows &= np.fromiter((ch not in t for t in texts), dtype=bool, count=len(texts))
        return rows

    def _tokenize_fast(self, texts):
        """One batch through the fast path; the texts it marks are redone on the exact path."""
        import tensorflow as tf

        fast = self._fast()
        ids, splits, exact = fast(tf.constant(texts, tf.string), tf.constant(self._ascii(texts)))
        ids, splits, exact = ids.numpy(), splits.numpy(), exact.numpy().copy()
        # [UNK]: an unknown word, a word over the byte limit, a deleted control inside one
        exact[np.searchsorted(splits, np.flatnonzero(ids == self.unk_id), side="right") - 1] = True
        ids, bounds = ids.tolist(), splits.tolist()
        out = [ids[bounds[i]:bounds[i + 1]] for i in range(len(texts))]
        redo = np.flatnonzero(exact).tolist()
        if redo:
            for i, row in zip(redo, ragged_to_lists(self.tf_tokenize([texts[i] for i in redo]))):
                out[i] = row
        return out

    # ---- eager helpers -----------------------------------------------------------------------
    def tokenize(self, texts):
        """list[str] -> list[list[int]] of WordPiece ids (no special tokens), on the fast path."""
        texts = _as_list(texts)
        out = []
        for i in range(0, len(texts), _FAST_BATCH):
            out.extend(self._tokenize_fast(texts[i:i + _FAST_BATCH]))
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
            out.extend(ragged_to_lists(self._wordpiece().tokenize(tf.constant(chunk, tf.string))))
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


def _fast_ids(e2e, lowercase, vocab_chars, texts, ascii_rows):
    """texts [batch] -> (ids, row_splits, exact [batch]): one FastWordpiece pass that splits too.

    Plain texts (`ascii_rows`, and the others without a `special` character: one that the
    cleaning or normalisation would change or that the pre-tokenizer would split otherwise) only get
    their ASCII letters lower-cased (`fast_patterns` checks that this is exact); the rest are cleaned
    and normalised by `tf_fast_normalize`, whose `exact` marks texts holding a character the
    pre-tokenizer splits on but the original does not (the caller adds those with an [UNK]).
    """
    import tensorflow as tf

    patterns = fast_patterns(lowercase, vocab_chars)
    rest = tf.where(tf.logical_not(ascii_rows))[:, 0]  # [n]
    special = tf.strings.regex_full_match(tf.gather(texts, rest), f"(?s).*{patterns['special']}.*")
    plain = tf.tensor_scatter_nd_update(ascii_rows, rest[:, None], tf.logical_not(special))
    rest = tf.where(tf.logical_not(plain) if patterns["ascii_ok"] else tf.ones_like(plain))  # [m, 1]
    x = tf.strings.lower(texts) if lowercase else texts  # bytewise: str.lower() on ASCII letters
    normalised, exact = tf_fast_normalize(tf.gather_nd(texts, rest), lowercase, vocab_chars)
    pieces = e2e.tokenize(tf.tensor_scatter_nd_update(x, rest, normalised))  # [batch, (ids)]
    exact = tf.zeros_like(plain) if exact is None else tf.tensor_scatter_nd_update(tf.zeros_like(plain), rest, exact)
    return pieces.flat_values, pieces.row_splits, exact


def truncate_seq_pair(tokens_a, tokens_b, max_length):
    """In place, as google-research/bert: pop from the longer list (B on ties) until they fit."""
    while len(tokens_a) + len(tokens_b) > max_length:
        if len(tokens_a) > len(tokens_b):
            tokens_a.pop()
        else:
            tokens_b.pop()


def check_vocab(vocab, lowercase=True):
    """Read and check the vocabulary `load_tokenizer` would use (no TensorFlow): before any work starts."""
    return read_vocab(sample_path("vocab_uncased.txt" if lowercase else "vocab_cased.txt")
                      if vocab == "sample" else vocab)


def load_tokenizer(vocab="sample", lowercase=True):
    """A WordPieceTokenizer over the bundled vocabulary ("sample") or a vocab.txt path."""
    if vocab == "sample":
        vocab = sample_path("vocab_uncased.txt" if lowercase else "vocab_cased.txt")
    return WordPieceTokenizer(vocab, lowercase=lowercase)


def _as_list(texts):
    if isinstance(texts, str):
        raise BertbenchError("tokenizer methods take a list of strings, got one string; wrap it "
                             "in a list")
    texts = list(texts)
    if any(issubclass(kind, bytes) for kind in set(map(type, texts))):
        texts = [t.decode("utf-8") if isinstance(t, bytes) else t for t in texts]
    return texts


def ragged_to_lists(ragged):
    """int RaggedTensor [batch, (n)] -> list of Python int lists, without per-element TF calls."""
    values = ragged.flat_values.numpy().tolist()
    bounds = ragged.row_splits.numpy().tolist()
    return [values[bounds[i]:bounds[i + 1]] for i in range(len(bounds) - 1)]
