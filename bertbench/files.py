"""Files and folders as bertbench writes them: atomically, with the usual umask-based modes.

    write_json_atomic("results/x/records/abc.json", record)
    count = write_lines_atomic("features.jsonl", lines)
    tmp = make_temp_dir(out.parent, prefix=".encoder.tmp-")   # fill it, then os.replace(tmp, out)

A temporary file beside the target, fsync, os.replace: readers see the old file or the new one,
never half of either. The temporary file is removed when the write fails, and a failure of that
cleanup never hides the error that caused it. Files get 0666 & ~umask and folders 0777 & ~umask
(0644 / 0755 under the common umask 022), as `open` and `mkdir` give them: results and checkpoints
can be shared on a cluster. (`tempfile.mkstemp`/`mkdtemp` would make them 0600 / 0700.)
"""

import contextlib
import json
import os
import uuid
from pathlib import Path


def _temp_name(path):
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


@contextlib.contextmanager
def atomic_text_file(path):
    """A text file (UTF-8, "\\n" newlines) open for writing in place of `path`: it replaces `path`
    when the block ends without an error, and is removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path, text):
    """Write `text` (UTF-8, "\\n" newlines) to `path` via a temporary file + os.replace."""
    with atomic_text_file(path) as f:
        f.write(text)


def write_lines_atomic(path, lines):
    """Write each string of the iterable `lines` plus "\\n" to `path`, atomically; returns the count.
    The lines are streamed: a generator of a large output never sits in memory."""
    count = 0
    with atomic_text_file(path) as f:
        for line in lines:
            f.write(line + "\n")
            count += 1
    return count


def write_json_atomic(path, data):
    """Write `data` as indented, key-sorted JSON to `path`, atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=True) + "\n")


def make_temp_dir(parent, prefix):
    """A new, uniquely named folder in `parent` (created if needed) with mode 0777 & ~umask, the
    staging folder of an atomic folder write (fill it, then os.replace it onto the target)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        path = parent / f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            path.mkdir()
            return path
        except FileExistsError:  # a 32-bit clash with a live folder: draw another name
            continue
