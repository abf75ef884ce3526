"""Files and folders as bertbench writes them: atomically, with the usual umask-based modes.

    write_json_atomic("results/x/records/abc.json", record)
    count = write_lines_atomic("features.jsonl", lines)
    tmp = make_temp_dir(out.parent, prefix=".encoder.tmp-")   # fill it, then os.replace(tmp, out)

A temporary file beside the target, fsync, os.replace: readers see the old file or the new one,
never half of either. The temporary file is removed when the write fails, and a failure of that
cleanup never hides the error that caused it. Files get 0666 & ~umask and folders 0777 & ~umask
(0644 / 0755 under the common umask 022), as `open` and `mkdir` give them: results and checkpoints
can be shared on a cluster. (`tempfile.mkstemp`/`mkdtemp` would make them 0600 / 0700.)

Reading a user's file: `read_text_utf8` / `read_json_utf8` (a one-line error naming the file and the
byte offset for text that is not UTF-8). Every command checks its outputs before any work starts:
`check_writable_dir(path, flag)` / `check_writable_file(path, flag)` (an existing file where a folder
is expected, a folder where a file is expected, a location that cannot be written), creating nothing.
"""

import contextlib
import json
import os
import uuid
from pathlib import Path

from bertbench.errors import BertbenchError


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


# ---- reading user files, checking output locations before any work starts -------------------------


def read_text_utf8(path, encoding="utf-8"):
    """The text of a user's file; a BertbenchError naming the file and the byte offset when it is not
    UTF-8 (encoding "utf-8-sig" drops a BOM). Newlines are kept as they are (as `newline=""`)."""
    path = Path(path)
    try:
        return path.read_bytes().decode(encoding)
    except UnicodeDecodeError as err:
        raise BertbenchError(f"{path} is not UTF-8 text (byte {err.start}); re-encode it as UTF-8") from None
    except IsADirectoryError:
        raise BertbenchError(f"{path} is a folder, not a file; pass the file's path") from None
    except OSError as err:
        raise BertbenchError(f"cannot read {path} ({err.strerror}); check the path and its permissions") from None


def read_json_utf8(path, encoding="utf-8"):
    """The parsed JSON of a user's file; one-line errors for bytes that are not UTF-8 and bad JSON."""
    text = read_text_utf8(path, encoding)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise BertbenchError(f"{path}, line {err.lineno}: invalid JSON ({err.msg}, column {err.colno}); "
                             f"fix the file") from None


def _check_creatable(path, flag):
    """The nearest existing folder above `path` must be a writable folder (nothing is created)."""
    parent = Path(os.path.abspath(path)).parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise BertbenchError(f"{flag} {path}: {parent} is a file, not a folder; choose another location")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BertbenchError(f"{flag} {path}: {parent} is not writable; choose a writable location")


def check_writable_dir(path, flag):
    """Raise a BertbenchError unless folder `path` exists and is writable or can be created. Call it before
    any work starts: a run never finds out at its end that it cannot write its results."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BertbenchError(f"{flag} {path} is a file, but a folder is expected; pass a folder path")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise BertbenchError(f"{flag} {path} is not writable; choose a writable folder")
        return
    _check_creatable(path, flag)


def check_writable_file(path, flag):
    """Raise a BertbenchError unless file `path` can be written (replaced if it exists)."""
    path = Path(path)
    if path.is_dir():
        raise BertbenchError(f"{flag} {path} is a folder, but a file is expected; pass a file path")
    if path.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
        raise BertbenchError(f"{flag} {path}: {path.parent} is not writable; choose a writable location")
    _check_creatable(path, flag)
