"""GLUE: the `download_glue_data.py` layout (`<root>/glue/<TASK>/{train,dev,test}.tsv`) and TFDS `glue/*`.

Columns are those of the google-research/bert (and Hugging Face) GLUE processors. Files are read with
`quoting=csv.QUOTE_NONE` as those processors do (quotes are text in GLUE). Every row must have as many
columns as the header (CoLA train/dev have no header: 4 columns), and every label must be one of the
task's labels; anything else is a BertbenchError naming the file and line.

Proxy: `qnli_devsplit` splits QNLI dev.tsv (QNLI train.tsv is not available here) by question, with
a fixed seed, 80% of the questions for training and 20% for evaluation, so that no question appears
in both halves.
"""

import dataclasses
import random
from pathlib import Path

from bertbench.resources import resolve_data_dir
from bertbench.tasks import tfds_source
from bertbench.tasks.base import PairExample, data_error, read_tsv, require_file

DEVSPLIT_SEED = 0  # fixed: the proxy's split is part of its definition
DEVSPLIT_TRAIN_FRACTION = 0.8


@dataclasses.dataclass(frozen=True)
class GlueFormat:
    folder: str  # folder under <root>/glue/
    labels: tuple  # () for STS-B (float scores in [0, 5])
    columns: tuple  # (text_a, text_b or None, label) column indices in train/dev rows
    test_columns: tuple  # (text_a, text_b or None) in test rows
    tfds_name: str
    tfds_fields: tuple  # (text_a feature, text_b feature or None)
    tfds_labels: tuple = ()  # TFDS ClassLabel names in index order, when they are not "0", "1"
    header: bool = True  # CoLA train/dev have none
    files: tuple = (("train", "train.tsv"), ("dev", "dev.tsv"), ("test", "test.tsv"))


_NLI2 = ("entailment", "not_entailment")
FORMATS = {
    "cola": GlueFormat("CoLA", ("0", "1"), (3, None, 1), (1, None), "glue/cola", ("sentence", None),
                       header=False),
    "sst2": GlueFormat("SST-2", ("0", "1"), (0, None, 1), (1, None), "glue/sst2", ("sentence", None)),
    "mrpc": GlueFormat("MRPC", ("0", "1"), (3, 4, 0), (3, 4), "glue/mrpc", ("sentence1", "sentence2")),
    "stsb": GlueFormat("STS-B", (), (7, 8, -1), (7, 8), "glue/stsb", ("sentence1", "sentence2")),
    "qqp": GlueFormat("QQP", ("0", "1"), (3, 4, 5), (1, 2), "glue/qqp", ("question1", "question2")),
    "mnli": GlueFormat("MNLI", ("contradiction", "entailment", "neutral"), (8, 9, -1), (8, 9),
                       "glue/mnli", ("premise", "hypothesis"),
                       tfds_labels=("entailment", "neutral", "contradiction"),
                       files=(("train", "train.tsv"), ("dev_matched", "dev_matched.tsv"),
                              ("dev_mismatched", "dev_mismatched.tsv"), ("test", "test_matched.tsv"))),
    "qnli": GlueFormat("QNLI", _NLI2, (1, 2, -1), (1, 2), "glue/qnli", ("question", "sentence"),
                       tfds_labels=_NLI2),
    "rte": GlueFormat("RTE", _NLI2, (1, 2, -1), (1, 2), "glue/rte", ("sentence1", "sentence2"),
                      tfds_labels=_NLI2),
    "wnli": GlueFormat("WNLI", ("0", "1"), (1, 2, -1), (1, 2), "glue/wnli", ("sentence1", "sentence2")),
}
TFDS_SPLITS = {"train": "train", "dev": "validation", "test": "test", "dev_matched": "validation_matched",
               "dev_mismatched": "validation_mismatched"}


def glue_path(task, split, data_dir=None):
    """Path of a GLUE task file in the standard layout."""
    fmt = FORMATS[task]
    return resolve_data_dir(data_dir) / "glue" / fmt.folder / dict(fmt.files)[split]


def parse_label(task, value, path, line):
    """A label string checked against the task's labels; STS-B scores become floats in [0, 5]."""
    fmt = FORMATS[task]
    if not fmt.labels:
        try:
            score = float(value)
        except ValueError:
            score = None
        if score is None or not 0.0 <= score <= 5.0:
            raise data_error(path, line, f"STS-B score {value!r} is not a number in [0, 5]")
        return score
    if value not in fmt.labels:
        raise data_error(path, line, f"label {value!r} is not one of {', '.join(fmt.labels)}",
                         "check the file is the task's standard GLUE TSV")
    return value


def read_glue_file(task, split, path):
    """PairExamples of one GLUE TSV file; test files carry label None."""
    fmt = FORMATS[task]
    require_file(path, f"GLUE {fmt.folder} {split} file")
    rows = [(line, row) for line, row in read_tsv(path) if row]  # blank lines carry no example
    if not rows:
        raise data_error(path, None, "file is empty", "expected the task's standard GLUE TSV")
    has_header = fmt.header or split == "test"
    expected = len(rows[0][1]) if has_header else 4
    if has_header:
        rows = rows[1:]
    cols = fmt.test_columns + (None,) if split == "test" else fmt.columns
    examples = []
    for index, (line, row) in enumerate(rows):
        if len(row) != expected:
            raise data_error(path, line, f"expected {expected} tab-separated columns, found {len(row)}",
                             "GLUE files are read without quoting; a stray tab breaks a row")
        text_b = row[cols[1]] if cols[1] is not None else None
        label = parse_label(task, row[cols[2]], path, line) if cols[2] is not None else None
        examples.append(PairExample(f"{split}-{index}", row[cols[0]], text_b, label))
    return examples


def split_by_question(examples, seed=DEVSPLIT_SEED, train_fraction=DEVSPLIT_TRAIN_FRACTION):
    """(train, eval) halves of QNLI rows with no question in both; deterministic for a seed."""
    questions = sorted({ex.text_a for ex in examples})
    random.Random(seed).shuffle(questions)
    n_train = min(max(round(train_fraction * len(questions)), 1), len(questions) - 1)  # both non-empty
    train_questions = set(questions[:n_train])
    train = [ex for ex in examples if ex.text_a in train_questions]
    held = [ex for ex in examples if ex.text_a not in train_questions]
    return train, held


def tfds_to_example(task, record, guid):
    """A PairExample from one TFDS `glue/<task>` record (a dict of numpy/bytes/str values)."""
    fmt = FORMATS[task]

    def text(value):
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    field_a, field_b = fmt.tfds_fields
    label = record.get("label", -1)
    if not fmt.labels:
        label = float(label) if label is not None and float(label) >= 0 else None
    elif int(label) < 0:
        label = None  # TFDS marks unlabeled test rows with -1
    else:
        label = fmt.tfds_labels[int(label)] if fmt.tfds_labels else str(int(label))
    return PairExample(guid, text(record[field_a]), text(record[field_b]) if field_b else None, label)


def load(name, split, data_dir=None, source="files"):
    """The loader behind every GLUE TaskSpec (and `qnli_devsplit`)."""
    if name == "qnli_devsplit":
        if split == "test":
            return load("qnli", "test", data_dir, source)
        train, held = split_by_question(load("qnli", "dev", data_dir, source))
        return train if split == "train" else held
    if source == "tfds":
        tfds_split = "test_matched" if (name, split) == ("mnli", "test") else TFDS_SPLITS[split]
        records = tfds_source.load_records(FORMATS[name].tfds_name, tfds_split, data_dir)
        return [tfds_to_example(name, rec, f"{split}-{i}") for i, rec in enumerate(records)]
    return read_glue_file(name, split, glue_path(name, split, data_dir))


def read_gold(name, path):
    """The examples of a GLUE dev TSV (for `bertbench score`; qnli_devsplit reads QNLI's layout)."""
    return read_glue_file("qnli" if name == "qnli_devsplit" else name, "dev", Path(path))
