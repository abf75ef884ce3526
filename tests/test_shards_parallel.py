"""`run --shard I/N` as a scheduler would use it (a Slurm array job, docs/SCALE.md): two shards as
parallel processes on one --results/--runs folder, then `table`; the merged table is the one a single
process writes. `run --jobs 2`: the same on one machine, the runner starting its own processes. The
fake backend (tests/helpers.py:FakeBackend) stands in for the ML: its metrics are a function of each
run's config, so equal tables mean every run was done once, with its own config."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bertbench.cli import build_parser
from bertbench.commands.run import child_argv, runs_folder
from bertbench.results.jobs import THREAD_VARIABLES, child_environment

REPO = Path(__file__).resolve().parents[1]
FAKE = f"{REPO / 'tests' / 'helpers.py'}:FakeBackend"
DEADLINE_S = 180


def bertbench(folder, *args, popen=False, **env_vars):
    cmd = [sys.executable, "-m", "bertbench", *args]
    env = {**os.environ, "FAKE_MARKERS": str(folder / "markers"), "FAKE_SLEEP": "0.02", **env_vars}
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


def done_runs(folder):
    return sorted(p.name.split(".")[1] for p in (folder / "markers").glob("*.done.*"))


@pytest.mark.slow
def test_jobs_split_the_plan_over_processes_and_give_the_table_of_one(tmp_path):
    single, jobs = tmp_path / "single", tmp_path / "jobs"
    proc = bertbench(single, *run_args(single))
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = bertbench(jobs, *run_args(jobs, "--jobs", "2"), FAKE_PRETRAIN_SLEEP="0.5")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "starting 2 runners" in proc.stdout and "not re-measured" not in proc.stdout  # its runners measured them
    assert table(single) == table(jobs)
    assert done_runs(jobs) == sorted(set(done_runs(jobs))) == done_runs(single)  # each run once, all of them
    workers = {p.name.split(".")[3] for p in (jobs / "markers").glob("*.start.*")}
    assert len(workers) == 2  # both children worked, and the caller's own pass found nothing left
    again = bertbench(jobs, *run_args(jobs, "--jobs", "2"))
    assert again.returncode == 0 and f"{len(done_runs(single))} run(s) were not re-measured" in again.stdout
    assert done_runs(jobs) == done_runs(single)  # nothing ran again


def test_a_jobs_child_gets_every_option_of_the_run_but_jobs():
    given = ["run", "ablation_nsp", "--scale", "small", "--seeds", "3", "--pretrain-seeds", "2", "--data-dir", "d",
             "--only", "bert,no_nsp", "--column", "MRPC", "--baseline", "--reference-checkpoint", "ref",
             "--reference-name", "R", "--shard", "1/2", "--results", "res", "--runs", "rr", "--strategy", "mirrored",
             "--experiments", "ex", "--backend", "m:B", "--jobs", "2"]
    args = build_parser("run").parse_args(given)
    args.runs = runs_folder(args.results, args.runs)
    child = build_parser("run").parse_args(child_argv(args))
    skipped = {"jobs", "quiet", "runner_only"}
    assert {k: v for k, v in vars(child).items() if k not in skipped} == \
        {k: v for k, v in vars(args).items() if k not in skipped}
    assert child.jobs == 1 and child.quiet and child.runner_only and not args.runner_only
    # every option of `run` was given above, so a new one that child_argv forgets fails this test
    options = set(vars(build_parser("run").parse_args(["run", "ablation_nsp"]))) - {"command", "experiment"}
    assert options - {"dry_run", "quiet", "runner_only", "verbose"} <= {a.lstrip("-").replace("-", "_") for a in given}


def test_jobs_children_split_the_cores_and_keep_what_the_user_set():
    env = child_environment(2, cores=2, environ={"PATH": "/bin"})
    assert [env[v] for v in THREAD_VARIABLES] == ["1", "1", "1"] and env["PATH"] == "/bin"
    assert child_environment(4, cores=16, environ={})["TF_NUM_INTRAOP_THREADS"] == "4"
    assert child_environment(3, cores=2, environ={})["OMP_NUM_THREADS"] == "1"  # never 0 threads
    assert child_environment(2, cores=8, environ={"OMP_NUM_THREADS": "2"})["OMP_NUM_THREADS"] == "2"
