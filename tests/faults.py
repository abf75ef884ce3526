"""Crash-recovery tests: run bertbench in a child process that SIGKILLs itself at a chosen point.

    proc = run_killed(["pretrain", "--scale", "ci", "--out", out], at=KillAt(
        "bertbench.pretraining.loop", "save_encoder", when="before"), env=env)
    assert proc.returncode == -signal.SIGKILL

A point is a function looked up on a module at call time (`module.function`, so patch the module whose
code calls it: `bertbench.pretraining.loop.save_encoder`, not `bertbench.model.checkpoint`), killed
`before` or `after` its `call`-th call, counting only the calls whose arguments' text contains `match`.
The patch lives only in the child; the product carries no fault hooks.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys

_CHILD = r"""
import importlib, json, os, signal, sys
spec = json.loads(sys.argv[1])
module = importlib.import_module(spec["module"])
original = getattr(module, spec["function"])
seen = [0]

def patched(*args, **kwargs):
    hit = spec["match"] is None or spec["match"] in repr((args, kwargs))
    if hit:
        seen[0] += 1
    kill = hit and seen[0] == spec["call"]
    if kill and spec["when"] == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    result = original(*args, **kwargs)
    if kill and spec["when"] == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    return result

setattr(module, spec["function"], patched)
from bertbench.cli import main
sys.exit(main(spec["argv"]))
"""


@dataclasses.dataclass(frozen=True)
class KillAt:
    module: str  # where the caller looks the function up
    function: str
    when: str = "before"  # "before" or "after" the call
    call: int = 1  # the n-th matching call
    match: str | None = None  # only calls whose repr(args, kwargs) contains this


def run_killed(argv, at, env=None, timeout=600, cwd=None):
    """Run `bertbench *argv` in a child that kills itself at `at`; returns the CompletedProcess."""
    spec = dict(dataclasses.asdict(at), argv=[str(a) for a in argv])
    return subprocess.run([sys.executable, "-c", _CHILD, json.dumps(spec)], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=timeout, cwd=cwd)


def run_cli(argv, env=None, timeout=600, cwd=None):
    """Run `python -m bertbench *argv` to the end; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "bertbench", *[str(a) for a in argv]], capture_output=True,
                          text=True, env=dict(os.environ, **(env or {})), timeout=timeout, cwd=cwd)


def was_killed(proc):
    return proc.returncode == -signal.SIGKILL


def leftovers(folder):
    """Temporary files and folders bertbench's atomic writes leave only when killed mid-write."""
    names = (".tmp", "_temp", ".tmp-", ".old-")
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if any(n in p.name for n in names))
