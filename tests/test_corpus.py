import gzip

import pytest

from bertbench.text.corpus import CorpusStats, corpus_files, read_documents, split_heldout, split_sentences
from bertbench.errors import BertbenchError

PLAIN = """Mr. Smith went to Washington. He arrived at 3 p.m. on Monday.
The U.S. capital was busy.

|}
Second document, one sentence per line.
Another line here.

***
---

Third document.
"""

WIKITEXT = """ 
 = Homarus gammarus = 
 
 Homarus gammarus is a lobster . It weighs 5 @.@ 1 kilograms and is blue @-@ black . 
 
 = = Description = = 
 
 The <unk> is generally blue above . 
 
 = Frank Headlam = 
 
 = = = Early life = = = 
 Frank was born in 1914 . He joined the RAAF in 1934 . 
"""

WIKIEXTRACTOR = """<doc id="12" url="http://en.wikipedia.org/wiki?curid=12" title="Anarchism">
Anarchism

Anarchism is a political philosophy. It advocates stateless societies.
Etymology and terminology.
</doc>
stray text outside any document
<doc id="25" url="http://en.wikipedia.org/wiki?curid=25" title="Empty">
Empty

</doc>
<doc id="39" url="http://en.wikipedia.org/wiki?curid=39" title="Albedo">
Albedo
Albedo is the reflecting power of a surface. It is a ratio.
</doc>
"""


def _write(path, text, gz=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_plain_text_documents_sentences_and_counts(tmp_path):
    path = _write(tmp_path / "plain.txt", PLAIN)
    path.write_bytes(path.read_bytes() + b"\xff\xfe bad bytes\nlast line of the third document.\n")
    reader = read_documents(path)
    docs = list(reader)
    assert docs == [
        ["Mr. Smith went to Washington.", "He arrived at 3 p.m. on Monday.", "The U.S. capital was busy."],
        ["Second document, one sentence per line.", "Another line here."],
        ["Third document.", "last line of the third document."],
    ]
    # "|}", "***", "---" have no letter/digit; the undecodable line is skipped too; the document made
    # only of "***" and "---" is empty.
    assert reader.stats == CorpusStats(files=1, lines=13, documents=3, sentences=7, skipped_documents=1,
                                       skipped_lines=4)


def test_sentence_split_off_keeps_lines(tmp_path):
    docs = list(read_documents(_write(tmp_path / "plain.txt", PLAIN), sentence_split=False))
    assert docs[0] == ["Mr. Smith went to Washington. He arrived at 3 p.m. on Monday.",
                       "The U.S. capital was busy."]


def test_wikitext_titles_start_documents_and_markers_stay(tmp_path):
    reader = read_documents(_write(tmp_path / "wiki.valid.tokens", WIKITEXT))
    docs = list(reader)
    assert docs == [
        ["Homarus gammarus is a lobster .", "It weighs 5 @.@ 1 kilograms and is blue @-@ black .",
         "The <unk> is generally blue above ."],
        ["Frank was born in 1914 .", "He joined the RAAF in 1934 ."],
    ]
    assert reader.stats.skipped_lines == 0 and reader.stats.documents == 2


@pytest.mark.parametrize("gz", [False, True])
def test_wikiextractor_blocks_title_skipped_stray_line_counted(tmp_path, gz):
    reader = read_documents(_write(tmp_path / ("wiki_00.gz" if gz else "wiki_00"), WIKIEXTRACTOR, gz))
    docs = list(reader)
    assert docs == [
        ["Anarchism is a political philosophy.", "It advocates stateless societies.",
         "Etymology and terminology."],
        ["Albedo is the reflecting power of a surface.", "It is a ratio."],
    ]
    assert (reader.stats.documents, reader.stats.skipped_documents, reader.stats.skipped_lines) == (2, 1, 1)


def test_folder_is_read_recursively_in_sorted_order(tmp_path):
    _write(tmp_path / "b" / "z.txt", "From b slash z.\n")
    _write(tmp_path / "a" / "y" / "x.gz", WIKIEXTRACTOR, gz=True)
    _write(tmp_path / "a" / "b.txt", "From a slash b.\n")
    _write(tmp_path / ".hidden" / "c.txt", "Never read.\n")
    names = [p.relative_to(tmp_path).as_posix() for p in corpus_files(tmp_path)]
    assert names == ["a/b.txt", "a/y/x.gz", "b/z.txt"]
    firsts = [doc[0] for doc in read_documents(tmp_path)]
    assert firsts == ["From a slash b.", "Anarchism is a political philosophy.",
                      "Albedo is the reflecting power of a surface.", "From b slash z."]
    assert [d[0] for d in read_documents(tmp_path, max_documents=2)] == firsts[:2]


def test_user_errors_are_one_line(tmp_path):
    with pytest.raises(BertbenchError, match="corpus not found"):
        read_documents(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BertbenchError, match="holds no files"):
        read_documents(tmp_path / "empty")
    bad = tmp_path / "broken.gz"
    bad.write_bytes(gzip.compress(b"Some text.\n" * 100)[:-30])
    with pytest.raises(BertbenchError, match="broken.gz: cannot read"):
        list(read_documents(bad))


def test_splitter_handles_abbreviations():
    assert split_sentences("Dr. Watson met Mr. Holmes in London. They talked until 5 p.m. Then they left.") == [
        "Dr. Watson met Mr. Holmes in London.", "They talked until 5 p.m.", "Then they left."]


def test_real_wikiextractor_shard(shared_data):
    path = shared_data / "corpus" / "enwiki_wikiextractor_2015" / "AA" / "wiki_00.gz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    reader = read_documents(path)
    docs = list(reader)
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    titles = [line.split('title="')[1].split('"')[0] for line in lines if line.startswith("<doc ")]
    assert len(docs) == len(titles) == 38  # MANIFEST: 38 docs
    assert docs[0][0].startswith("Anarchism is a political philosophy")
    assert all(doc[0] != title for doc, title in zip(docs, titles))  # the title line is skipped
    paragraphs = sum(1 for line in lines if line.strip() and not line.startswith(("<doc ", "</doc>")))
    assert reader.stats.sentences > 2 * (paragraphs - len(titles))  # paragraphs were split
    assert reader.stats.skipped_documents == 0


def test_real_wikitext_document_count(shared_data):
    path = shared_data / "corpus" / "wikitext-2" / "test.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    docs = list(read_documents(path))
    assert len(docs) == 62  # ` = Title = ` lines in the file (grep -c '^ = [^=].* = $')
    assert any("@-@" in s for d in docs for s in d)


def test_split_heldout_is_a_seeded_document_partition():
    docs = [[f"sentence {i}."] for i in range(200)]
    train, held = split_heldout(docs, 0.1, seed=3)
    assert len(held) == 20 and len(train) == 180
    assert sorted(map(tuple, train + held)) == sorted(map(tuple, docs))
    assert train == sorted(train, key=docs.index)  # corpus order kept
    assert split_heldout(docs, 0.1, seed=3) == (train, held)
    assert split_heldout(docs, 0.1, seed=4)[1] != held
    assert len(split_heldout(docs[:5], 0.01, seed=0)[1]) == 1  # at least one held-out document
    assert split_heldout(docs, 0.0, seed=0) == (docs, [])
    with pytest.raises(BertbenchError, match="fraction"):
        split_heldout(docs, 1.5, seed=0)
