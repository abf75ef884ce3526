"""`run --jobs N`: N runner processes on one machine share a plan through the run locks.

Each child is the same `run` command (without --jobs) on the same --results/--runs folders; the runner's
per-run locks (results/locks.py) hand every pretraining group and fine-tuning run to exactly one of them,
as they do for runners started by hand or by a scheduler. Each child gets cores/N TensorFlow threads
(TF_NUM_INTRAOP_THREADS, TF_NUM_INTEROP_THREADS, OMP_NUM_THREADS, unless already set), so the children
do not fight over the cores. On 2 CPU cores, ci-scale models keep only ~1.3 cores busy in one process
(small matmuls, Python between ops); two one-thread processes keep both busy. The numbers do not depend
on the split: every run is seeded by its own config, and one thread gives the same records as two
(docs/BENCHMARKS.md, "End to end"). The caller's own pass then writes the tables (and runs whatever a
child left undone).

One machine only: across machines, use --shard I/N (experiments/shards.py) or start runners by hand.
"""

import os
import subprocess
import sys

THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")


def child_environment(jobs, cores=None, environ=None):
    """The environment of one of `jobs` children: cores // jobs threads (at least 1) where not set, and
    unbuffered output."""
    env = dict(os.environ if environ is None else environ)
    threads = str(max(1, (cores or os.cpu_count() or 1) // jobs))
    for name in THREAD_VARIABLES:
        env.setdefault(name, threads)
    env["PYTHONUNBUFFERED"] = "1"  # the children's lines reach a shared log as they happen, not in blocks
    return env


def start_children(argv, jobs, out=print):
    """Start `jobs` processes of `python -m bertbench <argv>` (output passed through); their Popens."""
    env = child_environment(jobs)
    out(f"starting {jobs} runners, {env['TF_NUM_INTRAOP_THREADS']} TensorFlow thread(s) each ...")
    return [subprocess.Popen([sys.executable, "-m", "bertbench", *argv], env=env) for _ in range(jobs)]


def wait_children(children, out=print):
    """Wait for every child; on an interrupt, stop them all. Their exit codes, in start order."""
    try:
        codes = [child.wait() for child in children]
    except KeyboardInterrupt:
        for child in children:
            child.terminate()
        for child in children:
            child.wait()
        raise
    for i, code in enumerate(codes):
        if code:
            out(f"runner {i + 1} of {len(children)} exited with status {code}; this pass finishes what it left")
    return codes


def run_children(argv, jobs, out=print):
    """Start `jobs` runners of `argv` and wait for them (the caller then runs its own pass)."""
    return wait_children(start_children(argv, jobs, out), out)
