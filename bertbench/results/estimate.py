"""How long a plan will take on this machine, from the runs this machine has already recorded.

    estimate_lines(plan, states, "results")   # -> ["estimated wall time on this machine (vm): ~14 min ..."]

Pretraining: seconds per training FLOP (`pretraining.accounting.estimate_flops`), the median over this
host's recorded pretraining runs, times the FLOPs of each run still to do. Fine-tuning: the median
wall time of this host's recorded runs of the same task and train cap (else of all its fine-tuning
runs). No estimate without a measurement: token counts alone say nothing about a machine.
"""

import socket
import statistics
from pathlib import Path

from bertbench.errors import BertbenchError
from bertbench.pretraining.accounting import estimate_flops
from bertbench.results.records import read_json


def host_records(results, host=None):
    """Every ok record under `results` (all experiments and scales) measured on `host` (this one)."""
    host = host or socket.gethostname()
    out = []
    for path in sorted(Path(results).glob("*/*/records/*.json")):
        try:
            record = read_json(path)
        except BertbenchError:  # a damaged record is `table`'s to report, not the estimate's
            continue
        if isinstance(record, dict) and record.get("status") == "ok" and \
                (record.get("hardware") or {}).get("hostname") == host:
            out.append(record)
    return out


def _seconds_per_flop(history):
    rates = [r["wall_time_s"] / r["output"]["estimated_flops"] for r in history
             if r.get("kind") == "pretrain" and (r.get("output") or {}).get("estimated_flops")
             and r.get("wall_time_s")]
    return (statistics.median(rates), len(rates)) if rates else (None, 0)


def _finetune_seconds(history, ft):
    runs = [r for r in history if r.get("kind") == "finetune" and r.get("wall_time_s")]
    same = [r["wall_time_s"] for r in runs if r.get("task") == ft.task and
            ((r.get("config") or {}).get("finetune") or {}).get("max_train_examples") == ft.finetune.max_train_examples]
    pool = same or [r["wall_time_s"] for r in runs]
    return statistics.median(pool) if pool else None


def estimate_lines(plan, states, results="results", host=None):
    """One or two lines: the plan's remaining wall time on this machine, or why there is no estimate."""
    host = host or socket.gethostname()
    history = host_records(results, host)
    per_flop, measured = _seconds_per_flop(history)
    todo_pre = [p for p in plan.pretrains if states[p.id] == "to run" and p.kind == "pretrain"]
    todo_ft = [f for f in plan.finetunes if states[f.id] == "to run"]
    if not todo_pre and not todo_ft:
        return []
    pre_s = sum(estimate_flops(p.model, p.pretrain) for p in todo_pre) * per_flop if per_flop else None
    ft_times = [_finetune_seconds(history, f) for f in todo_ft]
    if (todo_pre and pre_s is None) or any(t is None for t in ft_times):
        return [f"no time estimate: this machine ({host}) has not recorded a "
                f"{'pretraining' if todo_pre and pre_s is None else 'fine-tuning'} run in {results} yet"]
    total = (pre_s or 0.0) + sum(ft_times)
    parts = ([f"pretraining ~{_minutes(pre_s)} ({_runs(len(todo_pre))}, from {measured} measured)"] if todo_pre else []) + \
            ([f"fine-tuning ~{_minutes(sum(ft_times))} ({_runs(len(todo_ft))})"] if todo_ft else [])
    return [f"estimated wall time on this machine ({host}): ~{_minutes(total)}: " + ", ".join(parts)]


def _minutes(seconds):
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _runs(n):
    return f"{n} run" + ("" if n == 1 else "s")
