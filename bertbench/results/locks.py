"""Per-run lock files: two runners (processes, machines sharing a folder) never run the same thing.

A lock file per run, created with O_CREAT|O_EXCL, holds its owner's pid and host. A lock whose
process is gone (same host, pid not alive) is stale and is broken, under a short-lived breaker lock.

The locks live in the runs folder, beside what they protect; the records live in the results folder.
A runner also claims its results folder (`ResultsClaim`, `<results>/<experiment>/<scale>/.runner-*.json`,
naming its runs folder by the id that folder keeps in `RUNS_ID_FILE`): a second runner on the same
results with another runs folder (say a relative --runs from another working directory) would not see
the first one's locks, so it is refused, unless both run different shards of the plan.
"""

import json
import os
import socket
import time
import uuid
from pathlib import Path

from bertbench.errors import BertbenchError
from bertbench.files import write_json_atomic
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


# ---------------------------------------------------------------------------------------------
# A runner's claim on a results folder

RUNS_ID_FILE = "runs_folder_id"  # in a runs folder: a random id, the same whatever path reaches it


def runs_folder_id(runs):
    """The id of the runs folder `runs`, created on first use (by a link, so a reader never sees half
    of it and two runners cannot both create one): the same folder reached by other paths, mounts or
    hosts has the same id; another folder has another."""
    runs = Path(runs)
    path = runs / RUNS_ID_FILE
    if not path.is_file():
        runs.mkdir(parents=True, exist_ok=True)
        for stale in runs.glob(f".{RUNS_ID_FILE}.*.tmp"):  # a runner killed while making one
            _remove_if_dead(stale)
        tmp = runs / f".{RUNS_ID_FILE}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.write_text(uuid.uuid4().hex + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:  # another runner made it first: theirs is the id
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text().strip()


def _shards_differ(a, b):
    """Different shards of one split ('0/2' and '1/2'): their plans share no run."""
    return bool(a and b) and a != b and a.split("/")[-1] == b.split("/")[-1]


def _remove_if_dead(path):
    """Remove the temporary file `path` (`.<name>.<pid>.<hex>.tmp`, bertbench.files) if its writer is gone."""
    pid = path.name.split(".")[-3] if path.name.count(".") >= 3 else ""
    if pid.isdigit() and not _pid_alive(int(pid)):
        path.unlink(missing_ok=True)


def remove_dead_temporaries(folder):
    """Remove the temporary files of atomic writes under `folder` whose process is gone: what a runner
    killed mid-write left. Call it only while no runner on another host writes there (a pid means
    nothing elsewhere): holding a ResultsClaim alone, or a run's lock for its folder."""
    for path in Path(folder).rglob(".*.tmp"):
        _remove_if_dead(path)


class ResultsClaim:
    """`with ResultsClaim(folder, runs, shard):` while a runner fills `folder` (<results>/<experiment>/
    <scale>) from the runs folder `runs`. Refused with a BertbenchError when a live runner fills it
    from another runs folder and the two are not different shards of one split. The claim is written
    before the others are read, so of two runners starting together at least one sees the other."""

    def __init__(self, folder, runs, shard=None):
        self.folder, self.runs, self.shard = Path(folder), Path(runs), shard
        self.alone = False  # no other live runner fills the folder (then its leftovers can be cleaned)
        self.path = self.folder / f".runner-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"

    def __enter__(self):
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "since": now_iso(),
                "runs": str(self.runs.resolve()), "runs_id": runs_folder_id(self.runs), "shard": self.shard}
        write_json_atomic(self.path, mine)
        try:
            others = [other for other in sorted(self.folder.glob(".runner-*.json")) if self._check(other, mine)]
            self.alone = not others
        except BaseException:
            self.path.unlink(missing_ok=True)
            raise
        return self

    def _check(self, other, mine):
        """True when `other` is a live runner's claim that may run beside this one; raises when not."""
        owner = _read_owner(other)
        if other == self.path:
            return False
        if owner and _is_stale(owner, other):  # a runner killed on this host
            other.unlink(missing_ok=True)
            return False
        if not owner or owner.get("runs_id") == mine["runs_id"] or _shards_differ(owner.get("shard"), self.shard):
            return True
        raise BertbenchError(
            f"{self.folder} is being filled by another runner (pid {owner.get('pid')} on {owner.get('host')}, "
            f"since {owner.get('since')}) from the runs folder {owner.get('runs')}, not {mine['runs']}: "
            f"pass --runs {owner.get('runs')} to share its work, or wait until it ends (if it is gone, "
            f"delete {other})")

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)
