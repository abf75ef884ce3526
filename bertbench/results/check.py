"""The ci-scale regression check (the `check` command's work): run a small suite, compare it with the baseline.

The suite is a small fixed subset chosen to be fast (minutes on 2 cores): ablation_nsp's `bert` and
`no_nsp` variants at ci scale, fine-tuned on MRPC and SST-2 with seed 0, plus their held-out MLM
perplexity. It runs into a temporary results and runs folder (never the cache: a regression check
must recompute). Each baseline metric carries its own tolerance; its direction comes from the metric
registry (`bertbench.evaluation.metrics`), and a baseline file that says otherwise is rejected. A
metric that is worse than baseline - tolerance (or missing) is a regression: exit status 1.
"""

import tempfile
from pathlib import Path

from bertbench import files
from bertbench.errors import BertbenchError
from bertbench.evaluation.metrics import higher_is_better
from bertbench.results import provenance, records
from bertbench.results.runner import Runner, data_root, make_plan

BASELINE = Path(__file__).resolve().parents[2] / "results" / "baselines" / "ci.json"
SUITE = {"experiment": "ablation_nsp", "scale": "ci", "only": ["bert", "no_nsp"], "columns": ["MRPC", "SST-2"],
         "seeds": 1}
PRETRAIN_METRICS = ("heldout.lm_perplexity",)  # pretraining summary keys checked
# Defaults for new metrics (edit per metric in the baseline file): fine-tuning scores are percentages
# (bertbench.evaluation.metrics); 3 points is ~8 dev examples of 256 at ci scale. Perplexity: 5% of the baseline.
FINETUNE_TOLERANCE = 3.0
PERPLEXITY_RELATIVE_TOLERANCE = 0.05


def direction(key):
    """higher_is_better of a check key ('bert/MRPC/seed0/accuracy', 'bert/pretrain/heldout.lm_perplexity'):
    its last part names the metric, and the metric registry decides."""
    return higher_is_better(key.rsplit("/", 1)[-1])


def collect(recs):
    """{metric key: (value, higher_is_better)} from the suite's records."""
    out = {}
    for r in recs:
        if r.get("status") != "ok":
            continue
        if r.get("kind") == "finetune":
            main = r.get("main_metric") or {}
            if main.get("value") is not None:
                out[f"{r['variant']}/{r['column']}/seed{r['seed']}/{main['name']}"] = main["value"]
        else:
            for name in PRETRAIN_METRICS:
                if name in (r.get("metrics") or {}):
                    out[f"{'+'.join(r['variants'])}/pretrain/{name}"] = r["metrics"][name]
    return {key: (value, direction(key)) for key, value in out.items()}


def run_suite(backend=None, out=print, workdir=None):
    """Run the suite into a fresh temporary folder; returns collect() of its records."""
    plan = make_plan(SUITE["experiment"], SUITE["scale"], seeds=SUITE["seeds"], only=SUITE["only"],
                     columns=SUITE["columns"])
    with tempfile.TemporaryDirectory(prefix="bertbench-check-", dir=workdir) as tmp:
        runner = Runner(plan, Path(tmp) / "results", Path(tmp) / "runs", backend=backend,
                        data_dir=data_root(plan.scale, None), out=out)
        counts = runner.run()
        if counts["failed"] or counts["skipped"]:
            out(f"warning: {counts['failed']} run(s) failed, {counts['skipped']} skipped")
        return collect(records.load_records(Path(tmp) / "results", plan.experiment.name, plan.scale.name))


def compare(baseline, now):
    """Rows (metric, baseline, now, tolerance, status) and whether anything regressed."""
    rows, regressed = [], False
    for key, entry in sorted(baseline.items()):
        base, tol, higher = entry["value"], entry["tolerance"], direction(key)
        if entry.get("higher_is_better", higher) != higher:
            raise BertbenchError(f"baseline metric '{key}' says higher_is_better={entry['higher_is_better']}, "
                                 f"but the metric registry says {higher}; fix the baseline file")
        if key not in now:
            rows.append((key, base, None, tol, "MISSING"))
            regressed = True
            continue
        value = now[key][0]
        gain = (value - base) if higher else (base - value)  # > 0 means better
        slack = 1e-9 * max(1.0, abs(base))  # a change of exactly the tolerance passes despite rounding
        status = "REGRESSION" if gain < -tol - slack else ("better" if gain > tol + slack else "ok")
        regressed |= status == "REGRESSION"
        rows.append((key, base, value, tol, status))
    rows += [(key, None, value, None, "new") for key, (value, _) in sorted(now.items()) if key not in baseline]
    return rows, regressed


def format_rows(rows):
    def num(x):
        return "–" if x is None else f"{x:.4f}"

    width = max([len(r[0]) for r in rows] + [6])
    lines = [f"{'metric':<{width}}  {'baseline':>9}  {'now':>9}  {'tolerance':>9}  status"]
    lines += [f"{k:<{width}}  {num(b):>9}  {num(v):>9}  {num(t):>9}  {s}" for k, b, v, t, s in rows]
    return "\n".join(lines)


def new_baseline(now, previous=None):
    """A baseline dict from fresh metrics, keeping the tolerances already in `previous`."""
    old = (previous or {}).get("metrics", {})
    metrics = {}
    for key, (value, higher) in sorted(now.items()):
        default = FINETUNE_TOLERANCE if higher else abs(value) * PERPLEXITY_RELATIVE_TOLERANCE
        metrics[key] = {"value": value, "higher_is_better": higher,
                        "tolerance": old.get(key, {}).get("tolerance", default)}
    return {"schema_version": records.SCHEMA_VERSION, "suite": SUITE, "created": records.now_iso(),
            "git": provenance.git_info(), "packages": provenance.package_versions(), "metrics": metrics}


def run_check(baseline_path=BASELINE, update=False, backend=None, out=print, workdir=None):
    """Exit status: 0 when nothing regressed (or after --update-baseline), 1 on a regression."""
    baseline_path = Path(baseline_path)
    previous = records.read_json(baseline_path) if baseline_path.is_file() else None
    if previous is None and not update:
        raise BertbenchError(f"no baseline at {baseline_path}; create it with `bertbench check --update-baseline`")
    now = run_suite(backend, out, workdir)
    if not now:
        raise BertbenchError("the check suite produced no metrics; see the run errors above")
    if update:
        files.write_json_atomic(baseline_path, new_baseline(now, previous))
        out(f"baseline written: {baseline_path} ({len(now)} metrics)")
        return 0
    rows, regressed = compare(previous["metrics"], now)
    out(format_rows(rows))
    out("REGRESSION: see the rows above" if regressed else "check passed")
    return 1 if regressed else 0
