"""CoNLL-2003 loader: IOB1 -> IOB2, documents, the sample, the real files, errors, TFDS records."""

import pytest

from bertbench.errors import BertbenchError
from bertbench.tasks import conll, get_task
from bertbench.tasks.base import TaggingExample


@pytest.mark.parametrize("iob1, iob2", [
    (["I-PER", "I-PER", "O"], ["B-PER", "I-PER", "O"]),  # I- after the start: begins an entity
    (["I-PER", "I-PER", "B-PER", "I-PER"], ["B-PER", "I-PER", "B-PER", "I-PER"]),  # adjacent same type
    (["I-PER", "I-LOC", "I-LOC"], ["B-PER", "B-LOC", "I-LOC"]),  # type change starts an entity
    (["O", "I-ORG", "O", "I-ORG"], ["O", "B-ORG", "O", "B-ORG"]),
    (["B-MISC", "I-MISC"], ["B-MISC", "I-MISC"]),  # IOB2 input is unchanged
])
def test_iob1_to_iob2(iob1, iob2):
    assert conll.iob1_to_iob2(iob1) == iob2
    assert conll.iob1_to_iob2(iob2) == iob2  # idempotent


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_documents_at_start_or_end(tmp_path):
    body = "EU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\nPeter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\n\n"
    second = "BRUSSELS NNP I-NP I-LOC\n\n"
    at_start = _write(tmp_path / "a", f"-DOCSTART- -X- O O\n\n{body}-DOCSTART- -X- O O\n\n{second}")
    at_end = _write(tmp_path / "b", f"{body}-DOCSTART- -X- O O\n\n{second}-DOCSTART- -X- O O\n")
    for path in (at_start, at_end):
        examples = conll.read_conll_file(path, "dev")
        assert [ex.doc_id for ex in examples] == [0, 0, 1]
        assert examples[1] == TaggingExample("dev-1", ("Peter", "Blackburn"), ("B-PER", "I-PER"), 0)
        assert examples[0].tags == ("B-ORG", "O")


@pytest.mark.parametrize("line, message", [
    ("lonely\n", "line 2: expected 'word ... tag' columns"),
    ("Paris NNP I-NP I-CITY\n", "line 2: tag 'I-CITY' is not O or B-/I- of PER/ORG/LOC/MISC"),
    ("Paris NNP I-NP S-LOC\n", "line 2: tag 'S-LOC'"),
])
def test_malformed_lines(tmp_path, line, message):
    _write(tmp_path / "conll2003" / "eng.testa", "EU NNP I-NP I-ORG\n" + line)
    with pytest.raises(BertbenchError, match=message):
        get_task("conll2003").load("dev", tmp_path)


def test_iob2_layout_and_missing_files(tmp_path):
    _write(tmp_path / "conll2003" / "iob2" / "valid.txt", "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\n")
    assert get_task("conll2003").load("dev", tmp_path)[0].tags == ("B-ORG",)
    with pytest.raises(BertbenchError, match=r"eng\.train \(or .*iob2/train\.txt\).*--data-dir"):
        get_task("conll2003").load("train", tmp_path)


def test_tfds_record_conversion():
    record = {"tokens": [b"EU", b"rejects", b"German"], "pos": [22, 42, 16], "chunks": [11, 21, 11],
              "ner": [3, 0, 7]}
    assert conll.tfds_to_example(record, "train-0") == TaggingExample(
        "train-0", ("EU", "rejects", "German"), ("B-ORG", "O", "B-MISC"), None)


def test_bundled_sample():
    spec = get_task("conll2003")
    train, dev, test = (spec.load(s) for s in ("train", "dev", "test"))
    assert (len(train), len(dev), len(test)) == (1515, 559, 402)
    assert train[0].words[:3] == ("EU", "rejects", "German") and train[0].tags[:3] == ("B-ORG", "O", "B-MISC")
    assert train[-1].doc_id == 104  # 105 whole documents
    assert {t for ex in train for t in ex.tags} == set(conll.TAGS)


def test_real_files_iob1_conversion_equals_the_iob2_copies(shared_data):
    folder = shared_data / "conll2003"
    official = {"train": (14041, 203621, 946), "dev": (3250, 51362, 216), "test": (3453, 46435, 231)}
    for split, (original, iob2) in conll.FILES.items():
        a = conll.read_conll_file(folder / original, split)
        b = conll.read_conll_file(folder / iob2, split)
        assert (len(a), sum(len(ex.words) for ex in a), a[-1].doc_id + 1) == official[split]
        assert a == b  # same words, same IOB2 tags, same documents
