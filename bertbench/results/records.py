"""Run records: one JSON file per finished run, read back for caching, tables and checks.

One JSON file per finished run (schema: results/README.md), written atomically with
`bertbench.files.write_json_atomic` (a reader, or a killed writer, never sees half a record). What a
record says about the machine and code that produced it is in `provenance.py`; the per-run lock
files that keep two runners from running the same thing are in `locks.py`.
"""

import datetime
import json
import time
from pathlib import Path

from bertbench.errors import BertbenchError
from bertbench.evaluation import per_example
from bertbench.files import read_text_utf8

SCHEMA_VERSION = 1


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def elapsed(start):
    """Seconds since `start` (a time.perf_counter() value), rounded to ms."""
    return round(time.perf_counter() - start, 3)


def read_json(path):
    """A record (or run.json) as a dict; a one-line error naming the file when it is not UTF-8 JSON of an object."""
    path = Path(path)
    try:
        record = json.loads(read_text_utf8(path))
    except json.JSONDecodeError as err:
        raise BertbenchError(f"{path}: not valid JSON ({err}); delete it and rerun to recompute") from None
    if not isinstance(record, dict):
        raise BertbenchError(f"{path}: a record must be a JSON object, got a {type(record).__name__}; "
                             f"delete it and rerun to recompute")
    return record


# What a table needs of an ok record, per kind (older records lack the statistics fields: those are optional).
REQUIRED = {"finetune": ("experiment", "variant", "column"), "pretrain": ("experiment", "variants"),
            "random_init": ("experiment", "variants")}


def check_record(path, record):
    """`record` if its status (and, when ok, its kind and the fields a table reads) are there; else a
    one-line error naming the file and the field."""
    status, kind = record.get("status"), record.get("kind")
    problem = None
    if not isinstance(status, str):
        problem = "no 'status'"
    elif status == "ok" and kind not in REQUIRED:
        problem = f"'kind' is {kind!r}, not one of {', '.join(REQUIRED)}"
    elif status == "ok":
        missing = [name for name in REQUIRED[kind] if record.get(name) is None]
        problem = f"no {', '.join(repr(m) for m in missing)}" if missing else None
    if problem:
        raise BertbenchError(f"{path}: not a run record ({problem}); delete it and rerun to recompute")
    return record


def read_ok(path):
    """The record at `path` if it exists and has status ok, else None."""
    path = Path(path)
    if not path.is_file():
        return None
    record = read_json(path)
    return record if record.get("status") == "ok" else None


def records_dir(results, experiment, scale):
    return Path(results) / experiment / scale / "records"


def load_records(results, experiment, scale):
    """Every record of an experiment at a scale (temporary files are skipped)."""
    folder = records_dir(results, experiment, scale)
    return [read_json(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def check_records(results, experiment, scale):
    """The number of records of an experiment at a scale, each checked (`table` names a damaged one
    rather than skip it); a one-line error when there are none."""
    folder = records_dir(results, experiment, scale)
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not paths:
        raise BertbenchError(f"no run records for {experiment} at scale {scale} in {folder}; run "
                             f"`bertbench run {experiment} --scale {scale}` first, or pass the "
                             f"--results folder that holds them")
    for path in paths:
        check_record(path, read_json(path))
    return len(paths)


def column_statistics(col, output, value):
    """The record fields the tables' statistics read, for column `col`: per-example rows of its metric
    (or None when the metric has no per-example form), the majority-class baseline of that metric,
    and whether the run collapsed (one prediction for everything, or no better than the baseline)."""
    rows = output.get("example_rows") or {}
    form = rows.get("form")
    example_rows = ({"form": form, "metric": col.metric, "rows": rows["rows"]}
                    if form and per_example.has_rows(form, col.metric) else None)
    majority = (output.get("majority_baseline") or {}).get(col.metric)
    reason = None
    if output.get("single_prediction"):
        reason = "predicts a single class"
    elif value is not None and majority is not None and (
            value <= majority if col.higher_is_better else value >= majority):
        reason = "at or below the majority baseline"
    return {"example_rows": example_rows, "baselines": {"majority": majority},
            "collapsed": reason is not None, "collapse_reason": reason}
