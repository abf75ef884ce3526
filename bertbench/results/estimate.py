"""How long a plan will take on this machine, from the runs this machine has already recorded.

"This machine": the host name and the CPU's instruction set (provenance's `cpu_isa`), as records carry
them. Records from before that field count only where none with it match, and the line says so.

    estimate_lines(plan, states, "results")   # -> ["estimated wall time on this machine (vm, avx2): ~14 min ..."]

Pretraining: seconds per training FLOP (`pretraining.accounting.estimate_flops`), the median over this
host's recorded pretraining runs of the same model size and precision (else of the same size, else of
all), times the FLOPs of each run still to do. Fine-tuning: the median wall time of this host's
recorded runs of the same task and train cap, preferring the same model size and precision (else of
all its fine-tuning runs). No estimate without a measurement: token counts alone say nothing about a machine.
"""

import functools
import socket
import statistics
from pathlib import Path

from bertbench.config import to_dict
from bertbench.errors import BertbenchError
from bertbench.model.precision import choose_precision, cpu_flags
from bertbench.pretraining.accounting import estimate_flops
from bertbench.results.provenance import this_cpu_isa
from bertbench.results.records import read_json
from bertbench.results.states import undecided_candidates


def host_records(results, host=None, isa=None):
    """(records, unnamed): every ok record under `results` (all experiments and scales, archived ones too:
    results/archive/...) measured on `host` with a CPU of instruction set `isa` (default: this one's);
    where there is none, those of `host` that do not name their CPU's (older records), and unnamed=True."""
    host, isa = host or socket.gethostname(), isa or this_cpu_isa()
    same, unnamed = [], []
    for path in sorted(Path(results).glob("**/records/*.json")):
        try:
            record = read_json(path)
        except BertbenchError:  # a damaged record is `table`'s to report, not the estimate's
            continue
        if not isinstance(record, dict) or record.get("status") != "ok":
            continue
        hardware = record.get("hardware") or {}
        if hardware.get("hostname") != host:
            continue
        if hardware.get("cpu_isa") == isa:
            same.append(record)
        elif "cpu_isa" not in hardware:
            unnamed.append(record)
    return (same, False) if same else (unnamed, bool(unnamed))


def _shape(model, precision):
    """What makes seconds per FLOP differ on one machine: the model's width and depth (matmul
    efficiency) and the precision (bf16 matmuls run ~2x fp32 on CPUs with avx512_bf16)."""
    model = model if isinstance(model, dict) else to_dict(model)
    return model.get("num_layers"), model.get("hidden_dim"), precision


def _closest(runs, shape, rescale=False):
    """The values of the (shape, value) runs of the same shape, else of the same model size, else all;
    `rescale`: another size's value (seconds of a run) is scaled by the ratio of the sizes' L x H^2
    (their matmul FLOPs per token), e.g. a MiniLM-L6-H384 reference row estimated from mini (L4 H256) runs."""
    for match in (lambda key: key == shape, lambda key: key[:2] == shape[:2], lambda key: True):
        pool = [value * (_size_ratio(shape, key) if rescale else 1.0) for key, value in runs if match(key)]
        if pool:
            return pool
    return []


def _size_ratio(shape, key):
    """L x H^2 of `shape` over that of `key` (1 when either size is unknown)."""
    (layers, hidden), (key_layers, key_hidden) = shape[:2], key[:2]
    if not (layers and hidden and key_layers and key_hidden):
        return 1.0
    return layers * hidden ** 2 / (key_layers * key_hidden ** 2)


def _seconds(record):
    """A pretraining record's seconds for its whole run: its wall time, or, for a resumed run whose record
    has only its last process's, that process's training time scaled to all the steps."""
    out = record.get("output") or {}
    resumed, steps = out.get("resumed_from_step") or 0, out.get("steps") or 0
    if not resumed or record.get("wall_time_complete") or not out.get("train_wall_time_s") or steps <= resumed:
        return record.get("wall_time_s")
    return out["train_wall_time_s"] * steps / (steps - resumed)


def _seconds_per_flop(history, shape):
    timed = [(r, _seconds(r)) for r in history
             if r.get("kind") == "pretrain" and (r.get("output") or {}).get("estimated_flops")]
    rates = [(_shape((r.get("config") or {}).get("model") or {}, r["output"].get("precision")),
              seconds / r["output"]["estimated_flops"]) for r, seconds in timed if seconds]
    pool = _closest(rates, shape)
    return (statistics.median(pool), len(pool)) if pool else (None, 0)


def _finetune_seconds(history, ft, shape):
    runs = [r for r in history if r.get("kind") == "finetune" and r.get("wall_time_s")]
    timed = [(_shape((r.get("config") or {}).get("model") or {}, (r.get("output") or {}).get("precision")
                     or r.get("precision")), r["wall_time_s"], r) for r in runs]
    same = [(key, seconds) for key, seconds, r in timed if r.get("task") == ft.task and
            ((r.get("config") or {}).get("finetune") or {}).get("max_train_examples") == ft.finetune.max_train_examples]
    pool = _closest(same, shape, rescale=True) or _closest([(key, seconds) for key, seconds, _ in timed], shape, rescale=True)
    return statistics.median(pool) if pool else None


def estimate_lines(plan, states, results="results", host=None, isa=None):
    """One or two lines: the plan's remaining wall time on this machine, or why there is no estimate
    (grid-selection candidates count once per cell and seed: the point to be chosen)."""

    host, isa = host or socket.gethostname(), isa or this_cpu_isa()
    history, unnamed = host_records(results, host, isa)
    todo_pre = [p for p in plan.pretrains if states[p.id] == "to run" and p.kind == "pretrain"]
    todo_ft = [f for f in plan.finetunes if states[f.id] == "to run"] + undecided_candidates(plan, states)
    if not todo_pre and not todo_ft:
        return []
    rates = [_seconds_per_flop(history, _shape(p.model, _precision(p.pretrain.precision))) for p in todo_pre]
    measured = max([n for _, n in rates] or [0])
    pre_s = None if any(rate is None for rate, _ in rates) else \
        sum(estimate_flops(p.model, p.pretrain) * rate for p, (rate, _) in zip(todo_pre, rates, strict=True))
    models = {p.id: p.model for p in plan.pretrains}
    ft_times = [_finetune_seconds(history, f, _shape(models.get(f.pretrain_id) or {},
                                                     _precision(f.finetune.precision))) for f in todo_ft]
    if (todo_pre and pre_s is None) or any(t is None for t in ft_times):
        return [f"no time estimate: this machine ({host}, {isa}) has not recorded a "
                f"{'pretraining' if todo_pre and pre_s is None else 'fine-tuning'} run in {results} yet"]
    total = (pre_s or 0.0) + sum(ft_times)
    parts = ([f"pretraining ~{_minutes(pre_s)} ({_runs(len(todo_pre))}, from {measured} measured)"] if todo_pre else []) + \
            ([f"fine-tuning ~{_minutes(sum(ft_times))} ({_runs(len(todo_ft))})"] if todo_ft else [])
    caveat = (f" (from records that do not name their CPU's instruction set: if they ran on another CPU of this "
              f"host name than this {isa} one, this can be several times off)") if unnamed else ""
    return [f"estimated wall time on this machine ({host}, {isa}): ~{_minutes(total)}: " + ", ".join(parts) + caveat]


def _precision(name):
    """The policy a run would use here ("auto" resolved for this machine's CPU, without TensorFlow)."""
    return _auto_precision() if name == "auto" else name


@functools.lru_cache(maxsize=1)
def _auto_precision():
    """This CPU's "auto" (accelerators are another host's estimate): /proc/cpuinfo read once, not per run."""
    return choose_precision(False, (), cpu_flags())


def _minutes(seconds):
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _runs(n):
    return f"{n} run" + ("" if n == 1 else "s")
