"""Run records: atomic JSON files, provenance (git, packages, hardware) and per-run lock files.

One JSON file per finished run (schema: results/README.md). Files are written to a temporary name
in the same folder and renamed with os.replace, so a reader (or a killed writer) never sees half a
record. A lock file per run (created with O_CREAT|O_EXCL) keeps two runners from running the same
thing; a lock whose process is gone (same host, pid not alive) is stale and is broken.
"""

import datetime
import functools
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

from bertbench.errors import BertbenchError

SCHEMA_VERSION = 1
PACKAGES = ("tensorflow", "keras", "keras-hub", "tensorflow-text", "numpy", "pandas")


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


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


# ---------------------------------------------------------------------------------------------
# Provenance


@functools.lru_cache(maxsize=None)
def git_info(repo=None):
    """{"commit": sha or None, "dirty": bool or None} of the checkout holding bertbench.

    `dirty` is about the code that ran: changes under results/ (which runs themselves write) are
    not counted."""
    repo = repo or str(Path(__file__).resolve().parents[2])

    def git(*args):
        out = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None

    try:
        commit = git("rev-parse", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!results") if commit else None
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": None if status is None else bool(status)}


@functools.lru_cache(maxsize=None)
def package_versions():
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb():
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _accelerators():
    """GPU/TPU names: from TensorFlow when it is already loaded (never imported just for this),
    else from nvidia-smi when present."""
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        try:
            return [f"{d.device_type}:{tf.config.experimental.get_device_details(d).get('device_name', d.name)}"
                    for kind in ("GPU", "TPU") for d in tf.config.list_physical_devices(kind)]
        except Exception:  # device queries differ across TF builds; provenance must never fail a run
            pass
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
        return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []
    except (OSError, subprocess.SubprocessError):
        return []


@functools.lru_cache(maxsize=None)
def _static_hardware():
    return {"cpu_model": _cpu_model(), "cpu_cores": os.cpu_count(), "memory_gb": _memory_gb(),
            "hostname": socket.gethostname(), "platform": platform.platform()}


def hardware():
    return {**_static_hardware(), "accelerators": _accelerators()}


def provenance():
    """git, package versions and hardware for a record."""
    return {"git": git_info(), "packages": package_versions(), "hardware": hardware()}


# ---------------------------------------------------------------------------------------------
# Locks


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
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
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


def elapsed(start):
    return round(time.perf_counter() - start, 3)
