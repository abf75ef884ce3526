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

SCHEMA_VERSION = 1


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def elapsed(start):
    """Seconds since `start` (a time.perf_counter() value), rounded to ms."""
    return round(time.perf_counter() - start, 3)


def read_json(path):
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BertbenchError(f"{path}: not valid JSON ({err}); delete it and rerun to recompute") from None


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
