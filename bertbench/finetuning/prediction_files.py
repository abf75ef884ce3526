"""What the official prediction files of several kinds share.

The GLUE-submission layout (`index<TAB>prediction`, one row per gold example, in the gold file's
order) serves classification, regression and multiple choice; SQuAD's are JSON objects keyed by
question id (bertbench.finetuning.span); CoNLL's is conlleval input (bertbench.finetuning.tagging).
"""

import json
from pathlib import Path

from bertbench.errors import BertbenchError
from bertbench.files import write_text_atomic
from bertbench.tasks.base import data_error, read_tsv, require_file


def require_gold(spec, gold):
    """The gold file `bertbench score` needs for `spec` (every kind but tagging needs one)."""
    if not gold:
        raise BertbenchError(f"score {spec.name} needs --data GOLD (the task's dev file in its official format)")
    return require_file(gold, "gold file", tfds=False)


def write_index_file(stem, indices, column):
    """`<stem>.tsv` with header `index<TAB>prediction`; `indices` are positions in the split's file."""
    path = Path(stem).with_suffix(".tsv")
    rows = "".join(f"{i}\t{c}\n" for i, c in zip(indices, column, strict=True))
    write_text_atomic(path, "index\tprediction\n" + rows)
    return path


def read_index_file(path, num_examples, parse):
    """A GLUE-submission TSV -> predictions in index order; parse(value, path, line) checks one."""
    rows = [(line, row) for line, row in read_tsv(path) if row]
    if not rows or [c.strip() for c in rows[0][1]] != ["index", "prediction"]:
        raise data_error(path, 1, "header must be 'index<TAB>prediction'", "one row per gold example")
    by_index = {}
    for line, row in rows[1:]:
        if len(row) != 2 or not row[0].strip().isdigit():
            raise data_error(path, line, "expected '<index><TAB><prediction>' with an integer index")
        index = int(row[0])
        if index in by_index:
            raise data_error(path, line, f"index {index} appears twice")
        by_index[index] = parse(row[1].strip(), path, line)
    if sorted(by_index) != list(range(num_examples)):
        raise data_error(path, None, f"{len(by_index)} predictions with indices "
                         f"{_span(sorted(by_index))} for {num_examples} gold examples",
                         f"give exactly indices 0..{num_examples - 1}")
    return [by_index[i] for i in range(num_examples)]


def parse_label(labels):
    """A `parse` for read_index_file: the value must be one of `labels` (kept as the string)."""
    def parse(value, path, line):
        if value not in labels:
            raise data_error(path, line, f"prediction {value!r} is not one of {', '.join(labels)}")
        return value
    return parse


def _span(indices):
    return f"{indices[0]}..{indices[-1]}" if indices else "(none)"


def read_json_map(path, kind, what):
    """A JSON object {question id: value}, each value of type `kind` (str, or float for numbers)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise data_error(path, err.lineno, f"invalid JSON ({err.msg})") from err
    if not isinstance(data, dict):
        raise data_error(path, None, "expected a JSON object {question id: value}")
    for qid, value in data.items():
        ok = isinstance(value, str) if kind is str else (isinstance(value, (int, float))
                                                        and not isinstance(value, bool))
        if not ok:
            shown = repr(value) if len(repr(value)) < 60 else repr(value)[:57] + "..."
            raise data_error(path, None, f"value for {qid!r} is {shown}, expected {what}",
                             "the file must map each question id to its value")
    return {qid: kind(value) for qid, value in data.items()}


def check_ids(gold_ids, found, path, required=None):
    """The keys of `found` (read from `path`) must be gold question ids, and include every id of
    `required` (default: every gold id)."""
    missing = sorted((gold_ids if required is None else required) - set(found))
    extra = sorted(set(found) - gold_ids)
    if missing or extra:
        parts = ([f"{len(missing)} gold question(s) missing, e.g. {missing[0]}"] if missing else []) + \
                ([f"{len(extra)} unknown id(s), e.g. {extra[0]}"] if extra else [])
        raise data_error(path, None, "; ".join(parts), "give one entry per question of the gold file")
