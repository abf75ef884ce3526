"""CoNLL-2003 English NER: column files (`<root>/conll2003/eng.{train,testa,testb}` in IOB1, or
`<root>/conll2003/iob2/{train,valid,test}.txt` in IOB2) and TFDS `conll2003`.

Each non-blank line is `word ... tag` (the word first, the NER tag last); blank lines end sentences;
`-DOCSTART-` lines are document boundaries (at the start of each document in the standard files, at
the end in some circulated copies: either way they separate documents). Sentences keep a `doc_id`
so a model can fill its window with neighbouring sentences of the same document (the paper's
"maximal document context"). Tags are converted to IOB2 on load (`iob1_to_iob2` is the identity on
IOB2 input), so models always see one scheme; the metric (conlleval) reads either.
"""

import re

from bertbench.resources import resolve_data_dir
from bertbench.tasks import tfds_source
from bertbench.tasks.base import TaggingExample, data_error, missing_file

ENTITY_TYPES = ("PER", "ORG", "LOC", "MISC")
# IOB2 tag set, in the order TFDS uses (its ClassLabel `ner` feature).
TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
FILES = {  # split -> (IOB1 original, IOB2 copy), relative to <root>/conll2003/
    "train": ("eng.train", "iob2/train.txt"),
    "dev": ("eng.testa", "iob2/valid.txt"),
    "test": ("eng.testb", "iob2/test.txt"),
}
_TAG = re.compile(r"^(O|[BI]-.+)$")


def iob1_to_iob2(tags):
    """IOB1 -> IOB2: an I-X that follows O or another type starts an entity, so it becomes B-X.

    In IOB1, B-X only separates two adjacent entities of the same type and stays B-X.
    """
    out, prev = [], "O"
    for tag in tags:
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


def conll_path(split, data_dir=None):
    """The split's file: the IOB1 original if present, else the IOB2 copy."""
    folder = resolve_data_dir(data_dir) / "conll2003"
    original, iob2 = (folder / name for name in FILES[split])
    if original.is_file() or not iob2.is_file():
        return original if original.is_file() else None
    return iob2


def read_conll_file(path, split="train"):
    """TaggingExamples of a CoNLL column file (word first, tag last), tags converted to IOB2."""
    examples, words, labels, lines = [], [], [], []
    doc_id, doc_has_sentences = 0, False

    def end_sentence():
        nonlocal doc_has_sentences
        if words:
            examples.append(TaggingExample(f"{split}-{len(examples)}", tuple(words),
                                           tuple(iob1_to_iob2(labels)), doc_id))
            doc_has_sentences = True
            words.clear(), labels.clear(), lines.clear()

    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                end_sentence()
                continue
            if fields[0] == "-DOCSTART-":
                end_sentence()
                if doc_has_sentences:
                    doc_id, doc_has_sentences = doc_id + 1, False
                continue
            if len(fields) < 2:
                raise data_error(path, line_number,
                                 f"expected 'word ... tag' columns, found {line.strip()!r}")
            tag = fields[-1]
            if not _TAG.match(tag) or (tag != "O" and tag[2:] not in ENTITY_TYPES):
                raise data_error(path, line_number, f"tag {tag!r} is not O or B-/I- of "
                                 f"{'/'.join(ENTITY_TYPES)}", "the NER tag must be the last column")
            words.append(fields[0])
            labels.append(tag)
    end_sentence()
    return examples


def tfds_to_example(record, guid):
    """A TaggingExample from one TFDS `conll2003` record (`tokens`, `ner` ClassLabel ids)."""
    words = [w.decode("utf-8") if isinstance(w, bytes) else str(w) for w in record["tokens"]]
    tags = iob1_to_iob2([TAGS[int(i)] for i in record["ner"]])
    return TaggingExample(guid, tuple(words), tuple(tags), None)  # TFDS drops document boundaries


def load(name, split, data_dir=None, source="files"):
    if source == "tfds":
        tfds_split = {"train": "train", "dev": "dev", "test": "test"}[split]
        records = tfds_source.load_records("conll2003", tfds_split, data_dir)
        return [tfds_to_example(rec, f"{split}-{i}") for i, rec in enumerate(records)]
    path = conll_path(split, data_dir)
    if path is None:
        folder = resolve_data_dir(data_dir) / "conll2003"
        raise missing_file(f"{folder / FILES[split][0]} (or {folder / FILES[split][1]})",
                           f"CoNLL-2003 {split} file")
    return read_conll_file(path, split)


def read_gold(name, path):
    """The sentences of a CoNLL gold file (for `bertbench score`)."""
    return read_conll_file(path, "dev")
