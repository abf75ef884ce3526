"""Records (atomic JSON, read back), provenance, and run locks (with stale-lock detection by pid)."""

import json
import os
import socket
import subprocess
import sys

import pytest

from bertbench import files
from bertbench.errors import BertbenchError
from bertbench.results import locks, provenance, records


def test_atomic_write_roundtrip_and_no_temp_left(tmp_path):
    path = tmp_path / "a" / "r.json"
    files.write_json_atomic(path, {"status": "ok", "x": [1, 2.5]})
    files.write_json_atomic(path, {"status": "ok", "x": 3})  # replaces
    assert records.read_json(path) == {"status": "ok", "x": 3}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_read_ok_and_malformed(tmp_path):
    assert records.read_ok(tmp_path / "missing.json") is None
    files.write_json_atomic(tmp_path / "f.json", {"status": "failed"})
    assert records.read_ok(tmp_path / "f.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(BertbenchError, match="bad.json: not valid JSON.*delete it and rerun") as err:
        records.read_json(tmp_path / "bad.json")
    assert "\n" not in str(err.value)


def test_load_records_skips_temp_files(tmp_path):
    folder = records.records_dir(tmp_path, "exp", "ci")
    files.write_json_atomic(folder / "a.json", {"status": "ok"})
    (folder / ".b.json.123.tmp").write_text("{half")
    assert records.load_records(tmp_path, "exp", "ci") == [{"status": "ok"}]
    assert records.load_records(tmp_path, "none", "ci") == []


def test_provenance_fields():
    prov = provenance.provenance()
    assert set(prov) == {"git", "packages", "hardware"}
    assert prov["packages"]["python"].count(".") == 2 and "numpy" in prov["packages"]
    assert prov["hardware"]["cpu_cores"] == os.cpu_count() and isinstance(prov["hardware"]["accelerators"], list)
    assert set(prov["git"]) == {"commit", "dirty"}
    assert records.now_iso().endswith("+00:00")


def test_lock_excludes_a_second_owner_and_releases(tmp_path):
    path = tmp_path / "run.lock"
    first, second = locks.RunLock(path), locks.RunLock(path)
    assert first.acquire() and not second.acquire()
    assert json.loads(path.read_text())["pid"] == os.getpid()
    first.release()
    assert not path.exists() and second.acquire()
    second.release()


def test_stale_lock_of_a_dead_process_is_broken(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # that process has exited
    path = tmp_path / "run.lock"
    path.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "since": "x"}))
    with locks.RunLock(path) as owned:
        assert owned and json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()
    # a live owner (our parent) and a lock from another host are respected
    path.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "since": "x"}))
    assert not locks.RunLock(path).acquire()
    path.write_text(json.dumps({"pid": pid, "host": "elsewhere.example", "since": "x"}))
    assert not locks.RunLock(path).acquire()


def test_empty_lock_is_stale_only_after_grace(tmp_path):
    path = tmp_path / "run.lock"
    path.write_text("")  # owner killed between create and write
    assert not locks.RunLock(path).acquire()
    old = path.stat().st_mtime - locks.EMPTY_LOCK_GRACE_S - 5
    os.utime(path, (old, old))
    lock = locks.RunLock(path)
    assert lock.acquire()
    lock.release()
