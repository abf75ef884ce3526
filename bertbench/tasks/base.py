"""Shared pieces of the task loaders: example dataclasses, the task spec, file helpers.

Examples are small frozen dataclasses, one kind per task family. Labels stay in the dataset's own
spelling (strings for classification, floats for STS-B, tag strings for NER) so a record or a
prediction file says exactly what the data said; the model side maps them to ids with
`TaskSpec.labels.index(label)`.
"""

import csv
import dataclasses
import io
import sys
from pathlib import Path
from typing import Callable, Optional

from bertbench.errors import BertbenchError
from bertbench.evaluation.metrics import higher_is_better
from bertbench.files import read_text_utf8

SOURCES = ("files", "tfds")


@dataclasses.dataclass(frozen=True)
class PairExample:
    """A GLUE example: one sentence (text_b None) or a pair; label None on unlabeled test data."""

    guid: str
    text_a: str
    text_b: Optional[str]
    label: object  # str for classification, float for STS-B, None for test


@dataclasses.dataclass(frozen=True)
class SquadExample:
    """A SQuAD question; answers are (text, char_start) into `context`, empty when impossible."""

    qid: str
    question: str
    context: str
    answers: tuple  # ((text, char_start), ...)
    is_impossible: bool
    title: str


@dataclasses.dataclass(frozen=True)
class TaggingExample:
    """A CoNLL sentence; tags are IOB2 (converted on load); doc_id groups sentences of a document."""

    guid: str
    words: tuple
    tags: tuple
    doc_id: Optional[int]


@dataclasses.dataclass(frozen=True)
class ChoiceExample:
    """A SWAG example: context (segment A) and the full candidate continuations (segment B)."""

    guid: str
    context: str
    endings: tuple
    label: Optional[int]


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """A downstream task as data. `load(split, data_dir=None, source="files")` -> list of examples.

    `eval_splits` are the dev splits scored for the task (MNLI has two: matched and mismatched);
    `load("dev")` means the first of them. `kind` names the task kind of bertbench.finetuning.kinds
    (the one place that dispatches on it); the direction of `main_metric` comes from the metric
    registry (bertbench.evaluation.metrics), never from the task.
    """

    name: str
    kind: str
    labels: tuple  # label strings (classification, tagging); () for regression/span/choice
    metrics: tuple  # metric names, as bertbench.evaluation.metrics.METRICS spells them
    main_metric: str
    lowercase: bool  # default casing of the model for this task (False for NER, as in the paper)
    loader: Callable = dataclasses.field(repr=False, compare=False)
    eval_splits: tuple = ("dev",)
    description: str = ""
    # gold_reader(name, path) -> examples of a dev file in the task's official format (`bertbench score`)
    gold_reader: Callable = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.main_metric not in self.metrics:
            raise ValueError(f"task {self.name}: main_metric {self.main_metric!r} not in {self.metrics}")
        for name in self.metrics:
            higher_is_better(name)  # every reported metric has a direction in the registry

    @property
    def higher_is_better(self):
        """Direction of the main metric, from the metric registry."""
        return higher_is_better(self.main_metric)

    @property
    def splits(self):
        return ("train",) + tuple(self.eval_splits) + ("test",)

    def load(self, split, data_dir=None, source="files"):
        if source not in SOURCES:
            raise BertbenchError(f"unknown data source '{source}' for task {self.name}; "
                                 f"choose one of: {', '.join(SOURCES)}")
        if split == "dev":
            split = self.eval_splits[0]
        if split not in self.splits:
            raise BertbenchError(f"task {self.name} has no split '{split}'; choose one of: "
                                 f"{', '.join(self.splits)}")
        return self.loader(self.name, split, data_dir, source)

    def read_gold(self, path):
        """The examples of a gold (dev) file in the task's official format."""
        return self.gold_reader(self.name, require_file(path, "gold file", tfds=False))


def missing_file(path, what, tfds=True):
    """The BertbenchError for a data file that is not there, naming every way to provide it."""
    ways = "put the standard layout under a folder given with --data-dir or $BERTBENCH_DATA"
    ways += ", or use source='tfds' with a prepared TFDS dataset" if tfds else ""
    return BertbenchError(f"{what} not found: expected {path}; {ways}")


def require_file(path, what, tfds=True):
    path = Path(path)
    if not path.is_file():
        raise missing_file(path, what, tfds)
    return path


def read_tsv(path):
    """Rows of a GLUE TSV as lists of strings, read like the GLUE processors (no quoting).

    Returns [(line_number, row)]; a UTF-8 BOM (MRPC headers) is dropped by utf-8-sig.
    """
    csv.field_size_limit(sys.maxsize)
    reader = csv.reader(io.StringIO(read_text_utf8(path, "utf-8-sig"), newline=""), delimiter="\t",
                        quoting=csv.QUOTE_NONE)
    return [(reader.line_num, row) for row in reader]


def data_error(path, line, problem, fix=""):
    where = f"{path}, line {line}" if line else str(path)
    return BertbenchError(f"{where}: {problem}" + (f"; {fix}" if fix else ""))
