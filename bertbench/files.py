"""Atomic file writes: readers see the old file or the new one, never half of either.

    write_json_atomic("results/x/records/abc.json", record)

A temporary file beside the target, fsync, os.replace. The temporary file is removed when the write
fails, and a failure of that cleanup never hides the error that caused it.
"""

import contextlib
import json
import os
import uuid
from pathlib import Path


def write_text_atomic(path, text):
    """Write `text` (UTF-8, "\\n" newlines) to `path` via a temporary file + os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path, data):
    """Write `data` as indented, key-sorted JSON to `path`, atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=True) + "\n")
