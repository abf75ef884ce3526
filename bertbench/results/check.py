"""The regression check (the `check` command's work): a scale's suite against a calibrated baseline.

The suites are data (suites.py: SUITES, one per scale), each a few cells of an experiment plus the
held-out MLM perplexity of its pretrainings, compared with `results/baselines/<scale>.json`.
The suite runs into a temporary results folder and, unless `--runs DIR` is given, a temporary runs
folder (never the cache: a regression check must recompute). With `--runs DIR` an interrupted check
resumes: its finished runs are reused and an interrupted pretraining resumes from its checkpoints.
Before it starts, the check prints its plan and the runner's estimate of its wall time.

Calibration (`check --calibrate K`) runs the suite with fine-tuning seeds 0..K-1 (each variant is
pretrained once: the pretraining seed is not a fine-tuning seed) and stores, per metric, the mean,
the observed SD over the K seeds (ddof=1), n, the direction (`evaluation.metrics.higher_is_better`,
the only source) and the tolerance

    tolerance = max(floor, Z * sd * sqrt(1 + 1/n)),   Z = 3

the half-width of a prediction interval for ONE new run around the mean of n runs: with sd known and
normal errors, an unchanged independent run falls below the band with probability 0.13% (0.27% on
either side). With sd estimated from n runs, (new - mean) / (sd * sqrt(1 + 1/n)) is Student's t with
n - 1 degrees of freedom, so that rate is t.sf(3, n - 1): 4.8% at n = 3, 2.0% at n = 5
(tests/test_check.py checks this by simulation against scipy). Floors: FINETUNE_FLOOR = 1.0 point for
fine-tuning scores (all in %; 2-4 examples of a 200-400-example ci dev set), which decides when the
seeds agree (sd ~ 0, e.g. every seed predicts the majority class); RELATIVE_FLOOR = 2% of the mean for
pretraining metrics (held-out perplexity: one value per variant, n = 1, sd = 0, so the floor is the
tolerance; 2% of a perplexity is 0.02 nats of held-out loss). The breaks of
tests/test_check_regressions.py move it by 6-16%. The floor relies on same-seed reproduction: a rerun
on the same machine and packages is bit-identical (ci: 825.29 for `bert`, again and again), while other
pretraining seeds give 825, 696, 861, 901 (SD 11%), so numerics that differ enough (other packages or
CPU) could move it like a seed would; `check` notes when the environment differs from calibration's.

`check` runs the suite with fine-tuning seed 0 only (CHECK_SEEDS): a K-th of the calibration's
fine-tuning cost, and on unchanged code it reproduces a calibration run (training is deterministic
given its seeds), so CI false alarms need nondeterminism, not an unlucky seed. It compares each
value with mean +- tolerance: outside the band on the worse side, or missing (a run failed, or an
error such as a diverged pretraining stopped the suite), is a regression (exit 1); outside on the
better side is reported, not a failure. Each row says by how many calibration SDs the value moved
((value - mean) / sd; "n/a" when sd is 0).

The baseline file is validated before anything runs (missing, malformed JSON, wrong shape: one line,
exit 2). Baselines of the old format (schema_version 1: one `value` + hand-set `tolerance` per
seed-0 metric) are not read: the message says to recalibrate.
"""

import json
import math
import tempfile
from pathlib import Path
from typing import NamedTuple

from bertbench import files
from bertbench.errors import BertbenchError, ConfigError
from bertbench.evaluation.metrics import higher_is_better
from bertbench.results import provenance, records
from bertbench.results.estimate import estimate_lines
from bertbench.results.runner import Runner, data_root, plan_states
from bertbench.results.suites import (  # noqa: F401 - the suites are check's vocabulary
    BASELINE, CHECK_SEEDS, RESULTS, SELECTED, SUITE, SUITE_KEYS, SUITES, BaselineError, baseline_path, seed0_ids,
    selected_points, suite_of, suite_plan)

BASELINE_VERSION = 2  # 1: value + hand-set tolerance per seed-0 metric (no longer read)
PRETRAIN_METRICS = ("heldout.lm_perplexity",)  # pretraining summary keys checked
Z = 3.0
FINETUNE_FLOOR = 1.0  # points (fine-tuning scores are %)
RELATIVE_FLOOR = 0.02  # of the mean, for pretraining metrics (no fine-tuning-seed variance)
FORMULA = ("tolerance = max(floor, z * sd * sqrt(1 + 1/n)) with z = 3 (prediction interval of one new run "
           "around the mean of n calibration runs); floor = 1.0 point for fine-tuning scores, 2% of the mean "
           "for pretraining metrics (one value per variant, sd = 0)")
ENTRY_NUMBERS = ("mean", "sd", "n", "tolerance")


class SuiteRun(NamedTuple):
    """What one run of the suite measured (`run_suite`)."""
    values: dict  # collect() of its records: {metric key: [value per seed]}
    failed: int  # runs that failed or were skipped
    ids: list  # its seed-0 runs' ids: content hashes of their resolved configs
    points: dict | None  # a "selected" suite's grid points, given (checking) or chosen (calibrating)


class Row(NamedTuple):
    """One line of the check's table."""

    key: str
    mean: float | None
    sd: float | None
    tolerance: float | None
    value: float | None
    status: str  # "ok", "better", "REGRESSION", "MISSING" or "new"

    @property
    def sds(self):
        """(value - mean) / sd, or None when there is no sd to divide by (sd 0, missing, new)."""
        if self.value is None or self.mean is None or not self.sd:
            return None
        return (self.value - self.mean) / self.sd


# ---------------------------------------------------------------------------------------------
# Metrics of a suite run, and their calibration


def direction(key):
    """higher_is_better of a check key ('bert/MRPC/accuracy', 'bert/pretrain/heldout.lm_perplexity'):
    its last part names the metric, and the metric registry decides."""
    return higher_is_better(key.rsplit("/", 1)[-1])


def is_pretrain(key):
    return key.split("/")[1] == "pretrain"


def collect(recs):
    """{metric key: [value per fine-tuning seed, in seed order]} from a suite's records; a pretraining
    metric has one value (the variant is pretrained once)."""
    found = {}
    for r in recs:
        if r.get("status") != "ok" or r.get("role") == "selection":  # (grid-selection runs choose, not report)
            continue
        if r.get("kind") == "finetune":
            main = r.get("main_metric") or {}
            if main.get("value") is not None:
                found.setdefault(f"{r['variant']}/{r['column']}/{main['name']}", []).append((r["seed"], main["value"]))
        else:
            for name in PRETRAIN_METRICS:
                if name in (r.get("metrics") or {}):
                    found.setdefault(f"{'+'.join(r['variants'])}/pretrain/{name}", []).append((0, r["metrics"][name]))
    return {key: [value for _, value in sorted(pairs)] for key, pairs in sorted(found.items())}


def floor(key, mean):
    return RELATIVE_FLOOR * abs(mean) if is_pretrain(key) else FINETUNE_FLOOR


def tolerance(sd, n, floor_value, z=Z):
    """max(floor, z * sd * sqrt(1 + 1/n)): the band half-width for one new run (module docstring)."""
    return max(floor_value, z * sd * math.sqrt(1.0 + 1.0 / n))


def calibrate_entry(key, values):
    """A baseline entry from the calibration values of one metric."""
    n = len(values)
    mean = math.fsum(values) / n
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    low = floor(key, mean)
    tol = tolerance(sd, n, low)
    return {"mean": mean, "sd": sd, "n": n, "values": list(values), "higher_is_better": direction(key),
            "floor": low, "tolerance": tol,
            "formula": f"max({low:.4g}, {Z:g} * {sd:.4g} * sqrt(1 + 1/{n})) = {tol:.4g}"}


ENVIRONMENT_HARDWARE = ("cpu_model", "cpu_isa", "cpu_cores", "accelerators")


def environment_of(packages, hardware):
    """What the numerics of a same-seed run depend on besides the code: packages, CPU, accelerators (of
    `hardware`, provenance's dict: only the keys it has; older records lack cpu_isa)."""
    return {"packages": packages, **{k: hardware[k] for k in ENVIRONMENT_HARDWARE if k in hardware}}


def environment():
    """This machine's `environment_of`."""
    return environment_of(provenance.package_versions(), provenance.hardware())


def new_baseline(values, suite, seeds, run_ids=(), points=None):
    """The baseline dict of a calibration run: {key: [values]} from `collect`, the ids of its seed-0 runs,
    and for a "selected" suite each cell's chosen grid point ({"variant/column": point})."""
    return {"schema_version": BASELINE_VERSION, "suite": dict(suite), "run_ids": list(run_ids),
            **({"points": points} if points is not None else {}),
            "calibration_seeds": list(range(seeds)), "check_seeds": list(range(CHECK_SEEDS)), "z": Z,
            "formula": FORMULA, "created": records.now_iso(), "git": provenance.git_info(),
            "environment": environment(),
            "metrics": {key: calibrate_entry(key, vals) for key, vals in sorted(values.items())}}


# ---------------------------------------------------------------------------------------------
# The baseline file, validated before anything runs


def _number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_entry(path, key, entry):
    fix = f"recalibrate with `bertbench check --calibrate 3 --baseline {path}`"
    if not isinstance(entry, dict):
        raise BaselineError(f"{path}: metric '{key}' is not an object; {fix}")
    for name in ENTRY_NUMBERS:
        if not _number(entry.get(name)):
            raise BaselineError(f"{path}: metric '{key}' has no numeric '{name}' (got {entry.get(name)!r}); {fix}")
    if entry["sd"] < 0 or entry["tolerance"] < 0 or entry["n"] < 1:
        raise BaselineError(f"{path}: metric '{key}' has a negative sd/tolerance or n < 1; {fix}")
    try:
        higher = direction(key)
    except BertbenchError as err:
        raise BaselineError(f"{path}: metric '{key}': {err}") from None
    if entry.get("higher_is_better", higher) != higher:
        raise BaselineError(f"{path}: metric '{key}' says higher_is_better={entry['higher_is_better']}, but the "
                            f"metric registry says {higher}; fix the baseline file")


def _check_suite(path, suite):
    if not isinstance(suite, dict) or not isinstance(suite.get("experiment"), str) or \
            not isinstance(suite.get("scale"), str) or set(suite) - set(SUITE_KEYS):
        raise BaselineError(f"{path}: 'suite' must be an object with 'experiment' and 'scale' (and 'only', "
                            f"'columns'); recalibrate with `bertbench check --calibrate 3 --baseline {path}`")
    for name in ("only", "columns"):
        if suite.get(name) is not None and not (isinstance(suite[name], list)
                                                and all(isinstance(x, str) for x in suite[name])) or \
                not (isinstance(suite.get("grid") or {}, dict) or suite.get("grid") == SELECTED):
            raise BaselineError(f"{path}: suite '{name}' must be a list of names and 'grid' an object (or "
                                f"\"{SELECTED}\"); fix or recalibrate the baseline")


def how_to_calibrate(path, suite):
    """The commands that create the baseline of `suite` at `path` (for error messages)."""
    scale = "" if suite is None else f" --scale {suite['scale']}"
    fresh = f"`bertbench check{scale} --calibrate 3 --baseline {path}`"
    if not scale:
        return fresh
    return (f"{fresh}, or from the records of `bertbench run {suite['experiment']}{scale} --results RESULTS` "
            f"with `bertbench check{scale} --calibrate-from-records RESULTS --baseline {path}`")


def load_baseline(path, suite=None):
    """The baseline at `path`, checked; a BaselineError (exit 2) names what is wrong and the fix. With
    `suite` (the scale's), a baseline of another scale is refused too."""
    path = Path(path)
    if not path.is_file():
        raise BaselineError(f"no baseline at {path}; create it with {how_to_calibrate(path, suite)}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BaselineError(f"{path}: not valid JSON ({err}); recalibrate with `bertbench check --calibrate 3`") \
            from None
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict) or not data["metrics"]:
        raise BaselineError(f"{path}: no 'metrics' object; recalibrate with `bertbench check --calibrate 3`")
    if data.get("schema_version") == 1 or any(isinstance(e, dict) and "value" in e and "mean" not in e
                                              for e in data["metrics"].values()):
        raise BaselineError(f"{path} is an uncalibrated baseline of the old format (one value + a hand-set "
                            f"tolerance per metric); replace it with `bertbench check --calibrate 3`")
    _check_suite(path, data.get("suite"))
    points = data.get("points")
    if data["suite"].get("grid") == SELECTED and not (isinstance(points, dict) and points and all(
            isinstance(k, str) and isinstance(v, dict) for k, v in points.items())):
        raise BaselineError(f"{path}: its suite chooses each cell's grid point (\"{SELECTED}\") but 'points' is not "
                            f"an object of \"variant/column\": {{key: value}}; recalibrate the baseline")
    if suite is not None and data["suite"]["scale"] != suite["scale"]:
        raise BaselineError(f"{path} is the baseline of scale '{data['suite']['scale']}', not '{suite['scale']}'; "
                            f"pass --scale {data['suite']['scale']}, or the {suite['scale']} baseline with --baseline")
    for key, entry in data["metrics"].items():
        _check_entry(path, key, entry)
    return data


# ---------------------------------------------------------------------------------------------
# Running the suite, comparing, printing


def plan_lines(plan, results, runs, history=RESULTS):
    """What the check will run, and the runner's estimate of how long (from this machine's records in
    `history`), said before it starts."""
    states = plan_states(plan, records.records_dir(results, plan.experiment.name, plan.scale.name), runs)
    reused = sum(1 for state in states.values() if state == "reused")
    line = (f"check {plan.experiment.name} @ {plan.scale.name}: {len(plan.pretrains)} pretraining + "
            f"{len(plan.finetunes)} fine-tuning runs")
    if reused:
        line += f"; {reused} finished earlier in {runs}: reused, not re-measured"
    return [line] + estimate_lines(plan, states, history)


def run_suite(suite=None, seeds=CHECK_SEEDS, backend=None, out=print, workdir=None, runs=None, data_dir=None,
              history=RESULTS, points=None):
    """Run the suite with fine-tuning seeds 0..seeds-1 into a fresh temporary results folder, its runs in
    `runs` (resumable) or a temporary folder. Returns a SuiteRun: the seed-0 ids let a baseline know
    whether the suite's settings changed since it was calibrated."""
    suite = suite or SUITE
    plan = suite_plan(suite, seeds, data_dir, points)
    data_path = data_root(plan.scale, data_dir)  # no data for a `small` suite: one line, nothing run
    if runs is not None:
        files.check_writable_dir(runs, "--runs")
    with tempfile.TemporaryDirectory(prefix="bertbench-check-", dir=workdir) as tmp:
        results = Path(tmp) / "results"
        runs = Path(runs) if runs is not None else Path(tmp) / "runs"
        for line in plan_lines(plan, results, runs, history):
            out(line)
        runner = Runner(plan, results, runs, backend=backend, data_dir=data_path, out=out)
        try:
            counts = runner.run()
        except BertbenchError as err:  # e.g. a diverged pretraining: the code under test stopped the suite
            out(f"error: the suite stopped: {err}")
            counts = {**runner.counts, "failed": runner.counts["failed"] + 1}
        if counts["failed"] or counts["skipped"]:
            out(f"warning: {counts['failed']} run(s) failed, {counts['skipped']} skipped")
        recs = records.load_records(results, plan.experiment.name, plan.scale.name)
        if suite.get("grid") == SELECTED and points is None:  # calibrated: the points the selection chose
            points = selected_points(plan, records.records_dir(results, plan.experiment.name, plan.scale.name))
            plan = suite_plan(suite, seeds, data_dir, points) if points else plan
        return SuiteRun(collect(recs), counts["failed"] + counts["skipped"], seed0_ids(plan), points)


def judge(entry, value, higher):
    """'ok', 'better' or 'REGRESSION' of one value against its calibrated band."""
    gain = (value - entry["mean"]) if higher else (entry["mean"] - value)  # > 0 means better
    slack = 1e-9 * max(1.0, abs(entry["mean"]))  # a change of exactly the tolerance passes despite rounding
    if gain < -entry["tolerance"] - slack:
        return "REGRESSION"
    return "better" if gain > entry["tolerance"] + slack else "ok"


def compare(metrics, now):
    """Rows of the baseline's `metrics` against `now` ({key: value}), and whether anything regressed."""
    rows = []
    for key, entry in sorted(metrics.items()):
        value = now.get(key)
        status = "MISSING" if value is None else judge(entry, value, direction(key))
        rows.append(Row(key, entry["mean"], entry["sd"], entry["tolerance"], value, status))
    rows += [Row(key, None, None, None, value, "new") for key, value in sorted(now.items()) if key not in metrics]
    return rows, any(r.status in ("REGRESSION", "MISSING") for r in rows)


def format_rows(rows):
    """The check's table: a pure function of the rows."""
    def num(x):
        return "–" if x is None else f"{x:.2f}"

    width = max([len(r.key) for r in rows] + [6])
    head = ["mean", "sd", "tolerance", "now", "change", "SDs"]
    lines = [f"{'metric':<{width}}  " + "  ".join(f"{h:>9}" for h in head) + "  status"]
    for r in rows:
        change = None if r.value is None or r.mean is None else r.value - r.mean
        sds = "–" if change is None else ("n/a" if r.sds is None else f"{r.sds:+.2f}")
        cells = [num(r.mean), num(r.sd), num(r.tolerance), num(r.value),
                 "–" if change is None else f"{change:+.2f}", sds]
        lines.append(f"{r.key:<{width}}  " + "  ".join(f"{c:>9}" for c in cells) + f"  {r.status}")
    return "\n".join(lines)


def write_baseline(baseline, baseline_path, out=print):
    """Write a calibrated baseline and print its bands; exit status 0."""
    if baseline["calibration_seeds"] == [0]:
        out("note: 1 seed measures no fine-tuning variance: every tolerance is its floor")
    files.write_json_atomic(baseline_path, baseline)
    rows = [Row(k, e["mean"], e["sd"], e["tolerance"], None, "calibrated") for k, e in baseline["metrics"].items()]
    out(format_rows(rows))
    out(f"baseline written: {baseline_path} ({len(baseline['metrics'])} metrics, "
        f"{len(baseline['calibration_seeds'])} fine-tuning seed(s); {FORMULA})")
    return 0


def calibrate(seeds, baseline_path=BASELINE, suite=None, backend=None, out=print, workdir=None, runs=None,
              data_dir=None):
    """Run the suite with `seeds` fine-tuning seeds and write the baseline; exit status 0."""
    if not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--calibrate needs at least 1 seed, got {seeds}; use e.g. --calibrate 3")
    suite = suite or SUITE
    measured = run_suite(suite, seeds, backend, out, workdir, runs, data_dir)
    if measured.failed or not measured.values:
        raise BertbenchError(f"calibration: {measured.failed} run(s) failed or were skipped, no baseline written; fix the "
                             f"errors above and rerun `bertbench check --scale {suite['scale']} --calibrate {seeds}`")
    baseline = new_baseline(measured.values, suite, seeds, measured.ids, measured.points)
    return write_baseline(baseline, baseline_path, out)


def run_check(baseline_path=BASELINE, backend=None, out=print, workdir=None, scale=None, runs=None, data_dir=None,
              history=RESULTS):
    """Exit status: 0 when nothing regressed, 1 on a regression (the baseline is read and checked first;
    with `scale`, it must be that scale's)."""
    baseline = load_baseline(baseline_path, suite_of(scale) if scale is not None else None)
    measured = run_suite(baseline["suite"], CHECK_SEEDS, backend, out, workdir, runs, data_dir, history,
                         baseline.get("points"))
    ids = measured.ids
    now = {key: vals[0] for key, vals in measured.values.items()}  # seed 0 (one pretraining value per variant)
    rows, regressed = compare(baseline["metrics"], now)
    if baseline.get("run_ids") not in (None, ids):
        out("note: the suite's settings changed since calibration (other run ids): a difference may come from "
            "them, not the code; recalibrate after an intended change")
    stored, here = baseline.get("environment"), environment()
    if stored is not None and stored != {k: here.get(k) for k in stored}:  # on the keys it has (older: no cpu_isa)
        out("note: calibrated with other packages or hardware (see 'environment' in the baseline): same-seed runs "
            "may differ numerically; if only that moved a metric, recalibrate on this machine")
    out(format_rows(rows))
    out(f"band: mean +- tolerance from {baseline_path} ({baseline.get('formula', FORMULA)})")
    out("REGRESSION: see the rows above" if regressed else "check passed")
    return 1 if regressed else 0
