"""Per-run lock files: two runners (processes, machines sharing a folder) never run the same thing.

A lock file per run, created with O_CREAT|O_EXCL, holds its owner's pid and host. A lock whose
process is gone (same host, pid not alive) is stale and is broken, under a short-lived breaker lock.
"""

import json
import os
import socket
import time
from pathlib import Path

from bertbench.results.records import now_iso


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read_owner(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


EMPTY_LOCK_GRACE_S = 60  # a lock left empty (owner killed between create and write) is stale after this


def _is_stale(owner, path):
    """A lock is stale when its owner ran on this host and that pid is gone, or when it has stayed
    unreadable for EMPTY_LOCK_GRACE_S. A lock from another host is treated as live (its pid means
    nothing here): remove it by hand if that host died."""
    if not owner:
        try:
            return time.time() - Path(path).stat().st_mtime > EMPTY_LOCK_GRACE_S
        except OSError:
            return False
    return owner.get("host") == socket.gethostname() and not _pid_alive(int(owner.get("pid", -1)))


class RunLock:
    """`with RunLock(path) as got:` -> got is True when this process owns the run, False when a live
    process does. Stale locks (dead pid on this host) are broken under a short-lived breaker lock, so
    two processes cannot both break one lock and then delete each other's fresh lock."""

    def __init__(self, path):
        self.path, self.owned = Path(path), False

    def _create(self, path):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)  # the umask decides
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump({"pid": os.getpid(), "host": socket.gethostname(), "since": now_iso()}, f)
        return True

    def acquire(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create(self.path):
                self.owned = True
                return True
            owner = _read_owner(self.path)
            if not _is_stale(owner, self.path) or not self._break(owner):
                return False
        return False

    def _break(self, owner):
        breaker = self.path.with_name(self.path.name + ".break")
        if not self._create(breaker):
            if _is_stale(_read_owner(breaker), breaker):  # a breaker killed mid-break
                breaker.unlink(missing_ok=True)
            return False
        try:
            if _read_owner(self.path) == owner:  # still the same stale lock: remove it
                self.path.unlink(missing_ok=True)
            return True
        finally:
            breaker.unlink(missing_ok=True)

    def release(self):
        if self.owned:
            self.path.unlink(missing_ok=True)
            self.owned = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
