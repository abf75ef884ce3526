"""WordPiece vocabulary learning and the `vocab` command, on real text from the bundled corpus."""

import gzip
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from reference_tokenization import BasicTokenizer, FullTokenizer  # noqa: E402

from bertbench.cli import main  # noqa: E402
from bertbench.errors import BertbenchError  # noqa: E402
from bertbench.text.tokenizer import WordPieceTokenizer  # noqa: E402
from bertbench.text.vocab import RESERVED, corpus_texts, learn_vocabulary, task_texts, trim_vocabulary, write_vocab  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "bertbench/data/sample"
WIKI_SHARD = Path(__file__).resolve().parents[2] / "shared/data/corpus/enwiki_wikiextractor_2015/AA/wiki_00.gz"


@pytest.fixture(scope="module")
def lines():
    """~250 real Wikipedia paragraphs (accents, numbers, punctuation) from the bundled corpus."""
    with gzip.open(SAMPLE / "corpus/enwiki/wiki_01.gz", "rt", encoding="utf-8") as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith("<")][:150]


@pytest.fixture(scope="module")
def learned(lines):
    return {lower: learn_vocabulary(lines, 1000, lowercase=lower) for lower in (True, False)}


def test_specials_first_size_bounded_unique(learned):
    for vocab in learned.values():
        assert vocab[:5] == list(RESERVED)
        assert 800 < len(vocab) <= 1000 and len(set(vocab)) == len(vocab)
        assert any(t.startswith("##") and len(t) > 3 for t in vocab)  # real suffix pieces learned
    assert not any(c.isupper() for t in learned[True][5:] for c in t)  # uncased: lower-cased
    def accented(vocab):
        return {c for t in vocab for c in t if unicodedata.normalize("NFD", c) != c}

    assert not accented(learned[True]) and {"á", "ū"} <= accented(learned[False])
    assert any(c.isupper() for t in learned[False] for c in t)


def test_learned_vocab_round_trips_text(learned, lines, tmp_path):
    for lower, vocab in learned.items():
        path = tmp_path / f"vocab_{lower}.txt"
        write_vocab(vocab, path)
        tok = WordPieceTokenizer(path, lowercase=lower)
        ids = tok.tokenize(lines)
        ref = FullTokenizer(path, do_lower_case=lower)
        assert ids == [ref.ids(ln) for ln in lines]  # the learned file works with the original too
        basic = BasicTokenizer(lower)
        for line, line_ids in zip(lines, ids):
            words = basic.tokenize(line)
            pieces = tok.id_to_token(line_ids)
            assert "[UNK]" not in pieces, line  # every character of the text has a token
            text = " ".join(pieces).replace(" ##", "")
            assert text.split() == words


@pytest.mark.slow
def test_learning_is_deterministic_across_hash_seeds(learned, lines, tmp_path):
    """Same text -> same file, also in a process with another str-hash seed (set order)."""
    corpus = tmp_path / "lines.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code = ("import sys; from bertbench.text.vocab import learn_vocabulary; "
            "lines = open(sys.argv[1], encoding='utf-8').read().splitlines(); "
            "print('\\n'.join(learn_vocabulary(lines, 1000)))")
    # pytest runs with a random hash seed, so a fixed one differs from it (but with odds 2**-32)
    proc = subprocess.run([sys.executable, "-c", code, str(corpus)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONHASHSEED": "12345"}, check=True)
    assert proc.stdout.splitlines() == learned[True]


def test_overshooting_learner_is_trimmed_to_size_keeping_the_most_frequent():
    """300 words seen 3 times each: every piece has count 3, so no count threshold gives fewer than
    321 tokens and the learner overshoots any smaller size; the result is cut, not refused."""
    words = [a + b + c + d for a in "abcdefgh" for b in "abcdefgh" for c in "abcdefgh" for d in "abcdefgh"][:300]
    texts = [" ".join(words)] * 3
    vocab = learn_vocabulary(texts, 100)
    assert len(vocab) == 100 and vocab[:5] == list(RESERVED) and len(set(vocab)) == 100
    assert set("abcdefgh") | {"##" + c for c in "abcdefgh"} <= set(vocab)  # no text becomes [UNK]
    # the learner's own ranking (count, then alphabetical) decides which pieces stay
    full = learn_vocabulary(texts, 400)
    assert len(full) == 321 and vocab == [t for t in full if t in set(vocab)]
    pieces = lambda v: [t for t in v[5:] if len(t.removeprefix("##")) > 1]  # noqa: E731
    assert pieces(vocab) == pieces(full)[:100 - 5 - 16]


def test_trim_keeps_the_most_frequent_characters_when_they_alone_overflow():
    vocab = list(RESERVED) + ["a", "b", "c", "##a", "##b", "##c", "ab"]
    counts = {"aaa": 5, "bb": 1, "c": 2}  # characters: a 15, b 2, c 2
    trimmed = trim_vocabulary(vocab, 9, list(RESERVED), counts)
    assert trimmed == list(RESERVED) + ["a", "b", "##a", "##b"]  # ties broken alphabetically
    assert trim_vocabulary(vocab, 20, list(RESERVED), counts) == vocab


@pytest.mark.slow
@pytest.mark.skipif(not WIKI_SHARD.is_file(), reason=f"real Wikipedia shard not available ({WIKI_SHARD})")
def test_cli_on_a_real_wikipedia_shard_slice_trims_the_overshoot(tmp_path):
    """60 paragraphs of a real shard at size 800: the learner returns 1,031 tokens (it crashed the
    command before); the file holds exactly 800 and tokenizes that text without [UNK]."""
    out = tmp_path / "vocab.txt"
    assert main(["vocab", "--corpus", str(WIKI_SHARD), "--max-lines", "60", "--size", "800",
                 "--out", str(out)]) == 0
    vocab = out.read_text(encoding="utf-8").splitlines()
    assert len(vocab) == 800 and vocab[:5] == list(RESERVED) and len(set(vocab)) == 800
    tokenizer = WordPieceTokenizer(out, lowercase=True)
    ids = tokenizer.tokenize(corpus_texts([WIKI_SHARD], max_lines=60))
    assert "[UNK]" not in tokenizer.id_to_token([i for line in ids for i in line])


def test_size_too_small_and_empty_text_are_user_errors():
    with pytest.raises(BertbenchError, match="leaves no room"):
        learn_vocabulary(["some text"], 5)
    with pytest.raises(BertbenchError, match="no words"):
        learn_vocabulary(["  ", "\u200b"], 100)


def test_cli_writes_vocab_atomically(tmp_path, lines):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines[:80]) + "\n", encoding="utf-8")
    out = tmp_path / "out" / "vocab.txt"
    assert main(["vocab", "--corpus", str(corpus), "--size", "500", "--out", str(out),
                 "--max-lines", "60"]) == 0
    written = out.read_text(encoding="utf-8").splitlines()
    assert written == learn_vocabulary(lines[:60], 500)
    assert [p.name for p in out.parent.iterdir()] == ["vocab.txt"]  # no temp file left behind
    assert main(["vocab", "--corpus", str(corpus), "--size", "500", "--out", str(out),
                 "--cased", "--max-lines", "60"]) == 0
    assert out.read_text(encoding="utf-8").splitlines() != written


def test_cli_missing_corpus_is_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bertbench", "vocab", "--corpus",
                           str(tmp_path / "nope.txt"), "--out", str(tmp_path / "v.txt")],
                          capture_output=True, text=True)
    assert proc.returncode == BertbenchError.exit_code
    assert proc.stderr.strip().splitlines()[-1].startswith("bertbench vocab: error: corpus not found")
    assert not (tmp_path / "v.txt").exists()
    with pytest.raises(BertbenchError, match="task data folder not found"):
        task_texts(tmp_path / "missing")


def test_task_texts_reads_bundled_train_splits():
    texts = task_texts(SAMPLE)
    assert len(texts) == len(set(texts)) > 1000
    joined = "\n".join(texts)
    assert "Amrozi accused his brother" in joined  # MRPC train, first pair
    assert "EU rejects German call to boycott British lamb ." in texts  # CoNLL train sentence 1
    assert not any("\t" in t for t in texts)


def test_bundled_vocabularies_are_valid():
    for name, lower in (("vocab_uncased.txt", True), ("vocab_cased.txt", False)):
        tok = WordPieceTokenizer(SAMPLE / name, lowercase=lower)
        assert tok.vocab[:5] == list(RESERVED) and 7000 < tok.vocabulary_size <= 8192
        assert lower == (not any(c.isupper() for t in tok.vocab[5:] for c in t))
