"""GLUE benchmark submission: test-set predictions in the server's files, and the zip of a set.

The GLUE server (gluebenchmark.com) takes one zip holding, at its top level, the 11 files of its
sample submission, each `index<TAB>prediction` with that header and one row per test example
(index = the test file's `index` column, i.e. its row number):

    file         predicted by             rows      prediction
    CoLA.tsv     cola                      1,063    0 / 1
    SST-2.tsv    sst2                      1,821    0 / 1
    MRPC.tsv     mrpc                      1,725    0 / 1
    STS-B.tsv    stsb                      1,379    a float (similarity, 0-5)
    QQP.tsv      qqp                     390,965    0 / 1
    MNLI-m.tsv   mnli (test_matched)       9,796    entailment / neutral / contradiction
    MNLI-mm.tsv  mnli (test_mismatched)    9,847    entailment / neutral / contradiction
    QNLI.tsv     qnli (or qnli_devsplit)   5,463    entailment / not_entailment
    RTE.tsv      rte                       3,000    entailment / not_entailment
    WNLI.tsv     wnli                        146    0 / 1
    AX.tsv       mnli, on the diagnostic   1,104    entailment / neutral / contradiction

Test data: `<root>/glue/<TASK>/test.tsv` (MNLI: `test_matched.tsv`, `test_mismatched.tsv`) and the
diagnostic set `<root>/glue/diagnostic/diagnostic.tsv` (`index<TAB>sentence1<TAB>sentence2`), the
layout of `download_glue_data.py`; or TFDS `glue/*` test splits (`glue/ax` for AX). An MNLI run
writes AX.tsv when the diagnostic file is there (or given); `finetuning.loop.finetune` does the
predicting, `bertbench submission DIR` checks a folder and zips it.
"""

import dataclasses
import os
import zipfile
from pathlib import Path

from bertbench.errors import BertbenchError
from bertbench.finetuning.prediction_files import parse_label, read_index_file
from bertbench.resources import resolve_data_dir
from bertbench.tasks import glue, tfds_source
from bertbench.tasks.base import PairExample, data_error, read_tsv, require_file

_BINARY, _NLI2 = ("0", "1"), ("entailment", "not_entailment")
_NLI3 = ("entailment", "neutral", "contradiction")
# file stem -> (task that predicts it, rows of the official test set, allowed values; None = floats)
FILES = {
    "CoLA": ("cola", 1063, _BINARY), "SST-2": ("sst2", 1821, _BINARY), "MRPC": ("mrpc", 1725, _BINARY),
    "STS-B": ("stsb", 1379, None), "QQP": ("qqp", 390965, _BINARY), "MNLI-m": ("mnli", 9796, _NLI3),
    "MNLI-mm": ("mnli", 9847, _NLI3), "QNLI": ("qnli", 5463, _NLI2), "RTE": ("rte", 3000, _NLI2),
    "WNLI": ("wnli", 146, _BINARY), "AX": ("mnli", 1104, _NLI3),
}
TASK_FILES = {"cola": ("CoLA",), "sst2": ("SST-2",), "mrpc": ("MRPC",), "stsb": ("STS-B",), "qqp": ("QQP",),
              "mnli": ("MNLI-m", "MNLI-mm", "AX"), "qnli": ("QNLI",), "qnli_devsplit": ("QNLI",),
              "rte": ("RTE",), "wnli": ("WNLI",)}


class IncompleteSubmission(BertbenchError):
    """A submission folder without one of the server's files (a usage error: exit 2)."""

    exit_code = 2


def diagnostic_path(data_dir=None):
    """Where the GLUE diagnostic set (AX) lies in the standard layout."""
    return resolve_data_dir(data_dir) / "glue" / "diagnostic" / "diagnostic.tsv"


def read_diagnostic(path):
    """PairExamples (label None) of the GLUE diagnostic file `index<TAB>sentence1<TAB>sentence2`."""
    require_file(path, "GLUE diagnostic file (for AX.tsv)", tfds=False)
    rows = [(line, row) for line, row in read_tsv(path) if row]
    if not rows or [c.strip() for c in rows[0][1]] != ["index", "sentence1", "sentence2"]:
        raise data_error(path, 1, "header must be 'index<TAB>sentence1<TAB>sentence2'",
                         "pass the GLUE diagnostic.tsv")
    examples = []
    for index, (line, row) in enumerate(rows[1:]):
        if len(row) != 3:
            raise data_error(path, line, f"expected 3 tab-separated columns, found {len(row)}",
                             "the file is read without quoting; a stray tab breaks a row")
        examples.append(PairExample(f"ax-{index}", row[1], row[2], None))
    return examples


def _mnli_extra(stem, data_dir, source, diagnostic):
    """Examples of MNLI-mm or AX; None for AX when no diagnostic set is there and none was given."""
    if source == "tfds":
        name, split = ("glue/mnli", "test_mismatched") if stem == "MNLI-mm" else ("glue/ax", "test")
        records = tfds_source.load_records(name, split, data_dir)
        return [glue.tfds_to_example("mnli", rec, f"{stem}-{i}") for i, rec in enumerate(records)]
    if stem == "MNLI-mm":
        path = glue.glue_path("mnli", "test", data_dir).with_name("test_mismatched.tsv")
        return glue.read_glue_file("mnli", "test", path)
    path = Path(diagnostic) if diagnostic else diagnostic_path(data_dir)
    if not diagnostic and not path.is_file():
        return None
    return read_diagnostic(path)


def glue_test_sets(spec, data_dir=None, source="files", diagnostic=None):
    """([(file stem, unlabelled examples)] a run of `spec` predicts for the server, [notes]).

    A note says what was left out (AX without a diagnostic file); a missing test file is an error.
    """
    if spec.name not in TASK_FILES:
        raise BertbenchError(f"test predictions for the GLUE server are for GLUE tasks "
                             f"({', '.join(TASK_FILES)}), not {spec.name}; drop --predict-test")
    sets, notes = [], []
    for stem in TASK_FILES[spec.name]:
        examples = (spec.load("test", data_dir=data_dir, source=source) if stem == TASK_FILES[spec.name][0]
                    else _mnli_extra(stem, data_dir, source, diagnostic))
        if examples is None:
            notes.append(f"AX.tsv not written: no {diagnostic_path(data_dir)}; pass the GLUE diagnostic "
                         f"file with --diagnostic PATH")
        else:
            sets.append((stem, examples))
    return sets, notes


def with_placeholder_labels(spec, examples):
    """Test examples with a stand-in label, so a kind's `encode` accepts them (targets unused)."""
    label = spec.labels[0] if spec.labels else 0.0
    return [dataclasses.replace(ex, label=label) for ex in examples]


def _parser(stem):
    values = FILES[stem][2]
    if values is not None:
        return parse_label(values)

    def parse_float(value, path, line):
        try:
            return float(value)
        except ValueError:
            raise data_error(path, line, f"prediction {value!r} is not a number") from None
    return parse_float


def check_submission(folder):
    """{file name: rows} of a complete, well-formed submission folder; else a one-line error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise IncompleteSubmission(f"submission folder not found: {folder}; write the test predictions "
                                   f"with `bertbench finetune --task T --init CKPT --predict-test {folder}`")
    missing = [stem for stem in FILES if not (folder / f"{stem}.tsv").is_file()]
    if missing:
        tasks = sorted({FILES[stem][0] for stem in missing})
        raise IncompleteSubmission(
            f"{folder} lacks {', '.join(s + '.tsv' for s in missing)} ({len(missing)} of {len(FILES)} GLUE "
            f"files); write them with `bertbench finetune --task {'|'.join(tasks)} --init CKPT "
            f"--predict-test {folder}` (AX.tsv comes with mnli)")
    counts = {}
    for stem, (task, rows, _) in FILES.items():
        path = folder / f"{stem}.tsv"
        with open(path, encoding="utf-8") as f:
            found = sum(1 for line in f if line.strip()) - 1
        if found != rows:
            raise data_error(path, None, f"{found} predictions, but the GLUE test set of {stem} has {rows}",
                             f"predict the whole test split with `bertbench finetune --task {task} "
                             f"--predict-test`")
        read_index_file(path, rows, _parser(stem))
        counts[path.name] = rows
    return counts


def zip_submission(folder, out):
    """Check `folder` and write the zip the server takes (the 11 files at its top level)."""
    counts = check_submission(folder)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in counts:
                archive.write(Path(folder) / name, arcname=name)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out, counts
