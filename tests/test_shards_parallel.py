"""`run --shard I/N` as a scheduler would use it (a Slurm array job, docs/SCALE.md): two shards as
parallel processes on one --results/--runs folder, then `table`; the merged table is the one a single
process writes. The fake backend (tests/helpers.py:FakeBackend) stands in for the ML: its metrics are
a function of each run's config, so equal tables mean every run was done once, with its own config."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FAKE = f"{REPO / 'tests' / 'helpers.py'}:FakeBackend"
DEADLINE_S = 180


def bertbench(folder, *args, popen=False):
    cmd = [sys.executable, "-m", "bertbench", *args]
    env = {**os.environ, "FAKE_MARKERS": str(folder / "markers"), "FAKE_SLEEP": "0.02"}
    if popen:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=DEADLINE_S)


def run_args(folder, *extra):
    return ["run", "ablation_nsp", "--results", str(folder / "results"), "--runs", str(folder / "runs"),
            "--backend", FAKE, "--quiet", *extra]


def table(folder):
    proc = bertbench(folder, "table", "ablation_nsp", "--results", str(folder / "results"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.slow
def test_two_parallel_shards_give_the_table_of_one_process(tmp_path):
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    proc = bertbench(single, *run_args(single))
    assert proc.returncode == 0, proc.stderr[-2000:]
    procs = [bertbench(sharded, *run_args(sharded, "--shard", f"{i}/2"), popen=True) for i in range(2)]
    try:
        for p in procs:
            _, err = p.communicate(timeout=DEADLINE_S)
            assert p.returncode == 0, err[-2000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    one = table(single)
    assert "MRPC" in one and one == table(sharded)
    done = sorted(p.name.split(".")[1] for p in (sharded / "markers").glob("*.done.*"))
    assert done == sorted(set(done))  # no run executed twice
    assert done == sorted(p.name.split(".")[1] for p in (single / "markers").glob("*.done.*"))
    starts = {p.name.split(".")[3] for p in (sharded / "markers").glob("pretrain.*.start.*")}
    assert len(starts) == 2  # both shards pretrained: the work was split
