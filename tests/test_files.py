"""bertbench.files: atomic writes with the usual umask-based modes (files 0666 & ~umask, folders
0777 & ~umask), so results and checkpoints can be shared on a cluster."""

import os

import pytest

from bertbench.files import make_temp_dir, write_json_atomic, write_lines_atomic, write_text_atomic


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_files_and_folders_get_umask_modes(tmp_path, umask):
    write_text_atomic(tmp_path / "a" / "t.txt", "x\n")
    write_json_atomic(tmp_path / "j.json", {"a": 1})
    assert write_lines_atomic(tmp_path / "l.jsonl", (str(i) for i in range(3))) == 3
    for name in ("a/t.txt", "j.json", "l.jsonl"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask
    staging = make_temp_dir(tmp_path / "runs", prefix=".encoder.tmp-")
    assert staging.is_dir() and staging.parent == tmp_path / "runs" and staging.name.startswith(".encoder.tmp-")
    assert staging.stat().st_mode & 0o777 == 0o777 & ~umask
    assert make_temp_dir(tmp_path / "runs", prefix=".encoder.tmp-") != staging
    assert (tmp_path / "l.jsonl").read_text() == "0\n1\n2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "j.json", "l.jsonl", "runs"]  # no temp left


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")

    def lines():
        yield "new"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_lines_atomic(target, lines())
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
