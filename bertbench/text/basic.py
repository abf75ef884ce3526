"""The original BERT BasicTokenizer (google-research/bert `tokenization.py`), ported twice: as TF ops
(`tf_basic_words`, what the tokenizer and the vocabulary learner run) and in Python keeping where
every character came from (`words_with_spans`, for character offsets).

The original is: drop NUL, U+FFFD and control characters (Cc/Cf but tab, newline, carriage return);
map whitespace to ' '; put spaces around CJK ideographs; split on whitespace; if uncased:
`str.lower()`, NFD, drop combining marks (Mn); split off punctuation (ASCII punctuation ranges +
Unicode P*).

The TF path builds those steps from TF ops (`regex_replace`, ICU `lower` and NFD, `regex_split`)
with character classes computed from Python's `unicodedata` (what the original uses). ICU's case
tables (TF 2.21) predate Python 3.11's Unicode 14: the ~40 newer capitals it leaves alone are
lower-cased by explicit replacements first (found at start-up, so another Python version adapts).
Tests compare every assigned code point with the original; the one known gap is final-sigma context
next to those ~40 letters.

The fast path (`fast_patterns`, `tf_fast_normalize`) keeps the cleaning and normalisation and leaves
the splits to tensorflow-text's FastWordpiece pre-tokenizer, whose tables are measured on every
character at start-up (`pretokenizer_classes`) and corrected or routed to the exact path where they
differ from the original's.
"""

import functools
import re
import unicodedata


@functools.lru_cache(maxsize=None)
def _graph_patterns(lowercase):
    """RE2 patterns of the BasicTokenizer steps (and lowercase fix-ups when `lowercase`)."""
    import tensorflow as tf

    classes = char_classes()
    fixes = []  # characters whose lowercase ICU's (older) Unicode tables do not know
    if lowercase:
        cased = sorted(classes["cased"])
        with tf.init_scope():  # eager even when first called while tracing
            icu = tf.strings.lower(" ".join(cased), encoding="utf-8").numpy().decode("utf-8")
        fixes = [(re2_class(c), c.lower(), c) for c, low in zip(cased, icu.split(" "))
                 if low != c.lower()]
    return {"delete": re2_class(classes["delete"]), "space": re2_class(classes["space"]),
            "cjk": re2_class(classes["cjk"]), "mark": re2_class(classes["mark"]),
            "delim": f"{re2_class(classes['whitespace'])}+|{re2_class(classes['punct'])}",
            "keep": re2_class(classes["punct"]), "fixes": tuple(f[:2] for f in fixes),
            "fix_chars": "".join(f[2] for f in fixes)}


def tf_basic_words(strings, lowercase=True):
    """The original BasicTokenizer as TF ops: tf.string [batch] -> RaggedTensor [batch, (words)]."""
    import tensorflow as tf
    import tensorflow_text as tf_text

    g = _graph_patterns(bool(lowercase))
    x = tf.strings.regex_replace(strings, g["delete"], "")
    x = tf.strings.regex_replace(x, g["space"], " ")
    x = tf.strings.regex_replace(x, g["cjk"], " \\0 ")
    if lowercase:
        # str.lower() on the whole text equals the original's per-word lower(): words are
        # separated by whitespace, which is neither cased nor case-ignorable (final sigma).
        for pattern, lower in g["fixes"]:
            x = tf.strings.regex_replace(x, pattern, lower)
        x = tf.strings.lower(x, encoding="utf-8")
        x = tf_text.normalize_utf8(x, "NFD")
        x = tf.strings.regex_replace(x, g["mark"], "")
    return tf_text.regex_split(x, g["delim"], g["keep"])


# ---- the fast path: the cleaning and normalisation as TF ops, the splits left to FastWordpiece ----
@functools.lru_cache(maxsize=None)
def pretokenizer_classes():
    """(spaces, words): the characters tensorflow-text's FastWordpieceTokenizer pre-tokenizer
    (`no_pretokenization=False`) splits on, and those it makes words of their own (its punctuation
    and CJK tables, from its ICU), measured on every assigned character: "aXa" is one word (1 piece,
    [UNK]) when X joins, "a a" when X is a space (2), "a X a" when X is a word of its own (3)."""
    import tensorflow as tf
    import tensorflow_text as tf_text

    chars = sorted(char_classes()["assigned"])
    with tf.init_scope():  # eager even when first called while tracing
        probe = tf_text.FastWordpieceTokenizer(vocab=["[UNK]", "a"], unknown_token="[UNK]",
                                               no_pretokenization=False, token_out_type=tf.int32)
        counts = probe.tokenize(tf.constant([f"a{c}a" for c in chars])).row_lengths().numpy()
    return (frozenset(c for c, n in zip(chars, counts) if n == 2),
            frozenset(c for c, n in zip(chars, counts) if n not in (1, 2)))  # anything else splits


@functools.lru_cache(maxsize=None)
def fast_patterns(lowercase, vocab_chars):
    """What the fast path needs: the old path's patterns, `separators` (whitespace but ' ', mapped
    to ' ' as the original does), `isolate` (the original's punctuation that the pre-tokenizer would
    leave inside a word: spaced out after normalising), `fallback` (characters the pre-tokenizer
    splits on but the original does not: such texts take the exact path), `ascii_ok` (on ASCII the
    pre-tokenizer alone splits like the original) and `ascii_split_deleted` (deleted ASCII controls
    that it splits on, '\\x0b' '\\x0c': texts with them are not ASCII-fast), `special` (what a
    text must not hold to be tokenized after lower-casing its ASCII letters alone). The passes
    for rare characters (the capitals ICU cannot lower-case, CJK ideographs the pre-tokenizer does
    not know) are left out where no token of the vocabulary (`vocab_chars`: the characters of its
    tokens) holds what they normalise to: a word with one is [UNK], and its text takes the exact path."""
    c, g = char_classes(), _graph_patterns(bool(lowercase))
    spaces, words = pretokenizer_classes()
    separators = (c["space"] | c["whitespace"]) - c["delete"]  # all become ' ' first
    original_words = c["punct"] | c["cjk"]
    kept = c["assigned"] - c["delete"] - separators  # what the pre-tokenizer sees besides ' '
    isolate = frozenset(x for x in kept & original_words if x not in spaces and x not in words)
    fallback = frozenset(x for x in kept if (x in spaces or x in words) and x not in original_words)
    fallback |= (kept & original_words & spaces)
    ascii_chars = {chr(i) for i in range(128)}
    ascii_ok = (" " in spaces and not (isolate | fallback) & ascii_chars
                and all(x in spaces for x in separators & ascii_chars))
    norm = (lambda x: unicodedata.normalize("NFD", x.lower())) if lowercase else (lambda x: x)
    # the original splits on whitespace and spaces out CJK before normalising; needless where the
    # pre-tokenizer splits on the normalised character alike (canonical decompositions are stable)
    separators = {x for x in separators if not all(y in spaces for y in norm(x))}
    cjk = {x for x in c["cjk"] if not (len(norm(x)) == 1 and norm(x) in words)}
    in_vocab = lambda x: not vocab_chars.isdisjoint(unicodedata.normalize("NFD", x))
    special = {x for x in c["assigned"] - ascii_chars if norm(x) != x} | c["delete"] | isolate | fallback
    special |= separators | cjk | (c["mark"] if lowercase else set())
    fast_cjk, fixes = {x for x in cjk if in_vocab(norm(x))}, g["fixes"]
    fixes = tuple(f for f, x in zip(fixes, g["fix_chars"]) if in_vocab(x)) if lowercase else ()
    return {**g, "separators": re2_class(separators) if separators else "", "fast_fixes": fixes,
            "cjk": re2_class(fast_cjk) if fast_cjk else "", "isolate": re2_class(isolate) if isolate else "",
            "fallback": re2_class(fallback) if fallback else "", "ascii_ok": ascii_ok,
            "special": re2_class(special), "ascii_deleted": "".join(sorted(c["delete"] & ascii_chars)),
            "ascii_split_deleted": "".join(sorted(c["delete"] & ascii_chars & (spaces | words)))}


def tf_fast_normalize(strings, lowercase, vocab_chars):
    """The original's cleaning and normalisation without its splits: tf.string [batch] ->
    (tf.string [batch] for the pre-tokenizer, bool [batch]: the text must take the exact path; None
    where no character calls for it)."""
    import tensorflow as tf
    import tensorflow_text as tf_text

    g = fast_patterns(bool(lowercase), vocab_chars)
    x = tf.strings.regex_replace(strings, g["delete"], "")
    if g["separators"]:
        x = tf.strings.regex_replace(x, g["separators"], " ")
    if g["cjk"]:
        x = tf.strings.regex_replace(x, g["cjk"], " \\0 ")  # before NFD, as the original
    if lowercase:
        if g["fast_fixes"]:  # one pass per capital, only when a batch holds one of them
            capitals = "|".join(pattern for pattern, _ in g["fast_fixes"])
            needed = tf.reduce_any(tf.strings.regex_full_match(x, f"(?s).*(?:{capitals}).*"))
            x = tf.cond(needed, lambda: _lower_fixes(x, g["fast_fixes"]), lambda: x)
        x = tf.strings.lower(x, encoding="utf-8")
        x = tf_text.normalize_utf8(x, "NFD")
        x = tf.strings.regex_replace(x, g["mark"], "")
    if g["isolate"]:
        x = tf.strings.regex_replace(x, g["isolate"], " \\0 ")
    exact = tf.strings.regex_full_match(x, "(?s).*" + g["fallback"] + ".*") if g["fallback"] else None
    return x, exact


def _lower_fixes(x, fixes):
    import tensorflow as tf

    for pattern, lower in fixes:
        x = tf.strings.regex_replace(x, pattern, lower)
    return x


# ---- character classes of the original BasicTokenizer (from Python's unicodedata) -------------
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
_ASCII_PUNCT = ((33, 47), (58, 64), (91, 96), (123, 126))  # all non-alphanumeric printable ASCII


@functools.lru_cache(maxsize=None)
def char_classes():
    """name -> frozenset of characters, as google-research/bert's predicates decide them.

    delete: NUL, U+FFFD and control (Cc/Cf but tab/newline/CR); space: ' ', tab, newline, CR and
    Zs; cjk: the CJK ideograph blocks; mark: Mn; punct: ASCII punctuation ranges and P*;
    whitespace: what `str.split()` splits on; cased: characters that `str.lower()` changes;
    assigned: every assigned character but private-use ones.
    """
    by_category = {}
    for ch in map(chr, range(0x110000)):
        by_category.setdefault(unicodedata.category(ch), []).append(ch)
    del by_category["Cs"]  # surrogates cannot occur in UTF-8 text
    spans = lambda ranges: {chr(cp) for lo, hi in ranges for cp in range(lo, hi + 1)}
    punct = spans(_ASCII_PUNCT).union(*(v for k, v in by_category.items() if k.startswith("P")))
    letters = [c for k in ("Lu", "Lt", "Nl", "So") for c in by_category.get(k, [])]
    return {
        "delete": frozenset(by_category["Cc"] + by_category["Cf"] + ["\ufffd"]) - set("\t\n\r"),
        "space": frozenset(by_category["Zs"] + list(" \t\n\r")),
        "cjk": frozenset(spans(_CJK_RANGES)),
        "mark": frozenset(by_category["Mn"]),
        "punct": frozenset(punct),
        "whitespace": frozenset(c for c in map(chr, range(0x3001)) if c.isspace()),  # <= U+3000
        "cased": frozenset(c for c in letters if c.lower() != c),
        "assigned": frozenset(c for k, v in by_category.items() if k not in ("Cn", "Co") for c in v),
    }


def _code_point_ranges(chars):
    """Sorted (lo, hi) inclusive code-point ranges covering exactly `chars`."""
    cps = sorted(ord(c) for c in chars)
    ranges, start = [], 0
    for i in range(1, len(cps) + 1):
        if i == len(cps) or cps[i] != cps[i - 1] + 1:
            ranges.append((cps[start], cps[i - 1]))
            start = i
    return ranges


def re2_class(chars):
    """A RE2 character class `[\\x{..}-\\x{..}...]` matching exactly `chars`."""
    body = "".join(f"\\x{{{lo:x}}}-\\x{{{hi:x}}}" for lo, hi in _code_point_ranges(chars))
    return "[" + body + "]"


def py_class(chars, negate=False):
    """A Python `re` character class matching exactly `chars` (or all others when `negate`)."""
    body = "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in _code_point_ranges(chars))
    return ("[^" if negate else "[") + body + "]"


# ---- the BasicTokenizer in Python, keeping where each character came from ----------------------
def _normalize_token(chars, positions, lowercase):
    """A whitespace token -> (normalised chars, start offset, end offset per normalised char)."""
    if not lowercase:
        return chars, positions, [p + 1 for p in positions]
    mark = char_classes()["mark"]

    def norm(text):  # the original: lower(), NFD, drop Mn
        return [c for c in unicodedata.normalize("NFD", text.lower()) if c not in mark]

    whole = norm("".join(chars))
    per_char = [norm(c) for c in chars]
    if sum(map(len, per_char)) != len(whole):
        # reordered marks around a kept one (very rare): every character gets the token's span
        return whole, [positions[0]] * len(whole), [positions[-1] + 1] * len(whole)
    starts, ends = [], []  # lengths agree: per-character origins, the whole token's characters
    for part, pos in zip(per_char, positions):  # (they differ only by final sigma: ς vs σ)
        if not part and ends:  # a dropped mark belongs to the character before it
            ends[-1] = pos + 1
        starts.extend([pos] * len(part))
        ends.extend([pos + 1] * len(part))
    return whole, starts, ends


@functools.lru_cache(maxsize=None)
def _python_patterns():
    """Python `re` patterns of the offsets path: whitespace tokens, deletions, punctuation."""
    c = char_classes()
    # deleted characters (e.g. \x0b, \x85) join their neighbours even where str.split() would cut
    separators = c["space"] | (c["whitespace"] - c["delete"]) | c["cjk"]
    return (re.compile(f"{py_class(c['cjk'])}|{py_class(separators, negate=True)}+"),
            re.compile(py_class(c["delete"])),
            re.compile(f"{py_class(c['punct'])}|{py_class(c['punct'], negate=True)}+"))


def words_with_spans(text, lowercase):
    """The original BasicTokenizer's words of `text`, each as (word, starts, ends).

    starts[k]/ends[k] are the code-point offsets in `text` of the character that produced the k-th
    character of the normalised word (ends exclusive).
    """
    token_re, delete_re, split_re = _python_patterns()
    words = []
    for token in token_re.finditer(text):  # whitespace tokens (CJK ideographs on their own)
        s, chunk = token.start(), token.group()
        if delete_re.search(chunk) is None and (not lowercase or chunk.isascii()):
            norm = chunk.lower() if lowercase else chunk  # one character per original character
            for m in split_re.finditer(norm):
                a, b = s + m.start(), s + m.end()
                words.append((m.group(), range(a, b), range(a + 1, b + 1)))
            continue
        kept = [(ch, s + i) for i, ch in enumerate(chunk) if delete_re.match(ch) is None]
        if not kept:
            continue
        norm, starts, ends = _normalize_token([k[0] for k in kept], [k[1] for k in kept],
                                              lowercase)
        for m in split_re.finditer("".join(norm)):
            words.append((m.group(), starts[m.start():m.end()], ends[m.start():m.end()]))
    return words
