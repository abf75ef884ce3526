"""`check`: the tolerance formula and the comparison by hand, calibration and the check with a fake backend
(no ML), and the baseline file validated before anything runs. Real code, real breaks:
tests/test_check_regressions.py."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bertbench import cli
from bertbench.backend import load_backend
from bertbench.errors import BertbenchError
from bertbench.results.check import (FORMULA, SUITE, BaselineError, Row, calibrate, calibrate_entry, compare,
                                     direction, format_rows, judge, load_baseline, run_check, tolerance)
from helpers import count_markers

FAKE = f"{Path(__file__).resolve().parent / 'helpers.py'}:FakeBackend"
SST2, PPL = "bert/SST-2/accuracy", "bert/pretrain/heldout.lm_perplexity"


@pytest.fixture
def backend(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_MARKERS", str(tmp_path / "markers"))
    return load_backend(FAKE)


# ---------------------------------------------------------------------------------------------
# The formula and the comparison, worked out by hand


def test_tolerance_formula_by_hand():
    # 3 * 2 * sqrt(1 + 1/3) = 6 * 1.1547005 = 6.928203
    assert tolerance(2.0, 3, 1.0) == pytest.approx(6.928203, abs=1e-6)
    assert tolerance(1.0, 4, 1.0) == pytest.approx(3.354102, abs=1e-6)  # 3 * sqrt(1.25)
    assert tolerance(0.1, 3, 1.0) == 1.0  # 0.3464 < the floor
    assert tolerance(0.0, 1, 16.0) == 16.0
    assert tolerance(2.0, 3, 1.0, z=2.0) == pytest.approx(4.618802, abs=1e-6)


def test_calibrate_entry_by_hand():
    # 60, 62, 64: mean 62, squared deviations 4 + 0 + 4 = 8, / (3 - 1) = 4, sd 2
    entry = calibrate_entry(SST2, [60.0, 62.0, 64.0])
    assert (entry["mean"], entry["sd"], entry["n"], entry["floor"]) == (62.0, 2.0, 3, 1.0)
    assert entry["tolerance"] == pytest.approx(6.928203, abs=1e-6)
    assert entry["higher_is_better"] is True and entry["values"] == [60.0, 62.0, 64.0]
    assert entry["formula"] == "max(1, 3 * 2 * sqrt(1 + 1/3)) = 6.928"
    # the seeds agree (every seed predicts the majority class): the floor
    assert calibrate_entry(SST2, [68.0, 68.0, 68.0])["tolerance"] == 1.0
    ppl = calibrate_entry(PPL, [800.0])  # one pretraining per variant: sd 0, 2% of the mean
    assert (ppl["mean"], ppl["sd"], ppl["n"], ppl["tolerance"]) == (800.0, 0.0, 1, 16.0)
    assert ppl["higher_is_better"] is False


@pytest.mark.parametrize("n", [3, 5])
def test_false_alarm_rate_is_students_t(n):
    """(new - mean) / (sd * sqrt(1 + 1/n)) ~ t(n - 1) for normal runs: the band's one-sided false-alarm
    rate for an independent new run is scipy's t.sf(3, n - 1) (4.8% at n = 3), not the normal 0.13%."""
    from scipy import stats

    rng = np.random.default_rng(0)
    trials = 20_000
    runs = rng.normal(50.0, 10.0, size=(trials, n + 1))  # sd 10: the 1-point floor (almost) never decides
    alarms = sum(judge(calibrate_entry(SST2, list(row[:n])), row[n], True) == "REGRESSION" for row in runs)
    expected = stats.t.sf(3.0, n - 1)
    assert abs(alarms / trials - expected) < 4 * np.sqrt(expected * (1 - expected) / trials)


BASE = {SST2: calibrate_entry(SST2, [60.0, 62.0, 64.0]), PPL: calibrate_entry(PPL, [800.0])}


@pytest.mark.parametrize("value, status, sds", [
    (55.0, "REGRESSION", -3.5),  # below 62 - 6.928 = 55.07
    (57.0, "ok", -2.5),
    (68.9, "ok", 3.45),
    (70.0, "better", 4.0),  # better than the band: reported, not a failure
])
def test_compare_higher_is_better(value, status, sds):
    rows, regressed = compare({SST2: BASE[SST2]}, {SST2: value})
    assert rows == [Row(SST2, 62.0, 2.0, BASE[SST2]["tolerance"], value, status)]
    assert rows[0].sds == pytest.approx(sds)
    assert regressed is (status == "REGRESSION")


@pytest.mark.parametrize("value, status", [(817.0, "REGRESSION"), (816.0, "ok"), (784.0, "ok"), (783.0, "better")])
def test_compare_lower_is_better_and_no_sd(value, status):
    rows, regressed = compare({PPL: BASE[PPL]}, {PPL: value})  # band 800 +- 16, higher perplexity is worse
    assert rows[0].status == status and rows[0].sds is None and regressed is (status == "REGRESSION")


def test_missing_is_a_regression_new_is_reported():
    rows, regressed = compare(BASE, {PPL: 800.0, "no_nsp/SST-2/accuracy": 50.0})
    assert {r.key: r.status for r in rows} == {SST2: "MISSING", PPL: "ok", "no_nsp/SST-2/accuracy": "new"}
    assert regressed


def test_table_says_by_how_many_sds():
    rows, _ = compare(BASE, {SST2: 55.0, PPL: 830.0})
    lines = format_rows(rows).splitlines()
    assert lines[0].split() == ["metric", "mean", "sd", "tolerance", "now", "change", "SDs", "status"]
    assert lines[1].split() == [SST2, "62.00", "2.00", "6.93", "55.00", "-7.00", "-3.50", "REGRESSION"]
    assert lines[2].split() == [PPL, "800.00", "0.00", "16.00", "830.00", "+30.00", "n/a", "REGRESSION"]


def test_direction_comes_from_the_metric_registry():
    assert direction(SST2) is True and direction(PPL) is False


# ---------------------------------------------------------------------------------------------
# Calibrate, then check, with the fake backend


def test_calibrate_then_check(tmp_path, backend):
    path, markers = tmp_path / "ci.json", tmp_path / "markers"
    lines = []
    assert calibrate(3, path, backend=backend, out=lines.append, workdir=tmp_path) == 0
    baseline = json.loads(path.read_text())
    assert baseline["suite"] == SUITE and baseline["calibration_seeds"] == [0, 1, 2]
    assert baseline["check_seeds"] == [0] and baseline["formula"] == FORMULA and baseline["z"] == 3.0
    assert len(baseline["run_ids"]) == 2 + 4  # the 2 pretrainings and the 4 seed-0 fine-tunings
    keys = sorted(baseline["metrics"])
    assert keys == sorted([f"{v}/{c}/accuracy" for v in ("bert", "no_nsp_full_sentences") for c in ("MRPC", "SST-2")]
                          + ["bert/pretrain/heldout.lm_perplexity", "no_nsp_full_sentences/pretrain/heldout.lm_perplexity"])
    assert len(count_markers(markers, "pretrain", "done")) == 2  # each variant pretrained once for 3 seeds
    assert sum(count_markers(markers, "finetune", "done").values()) == 12
    entry = baseline["metrics"]["bert/MRPC/accuracy"]
    assert entry["n"] == 3 and len(set(entry["values"])) == 3 and entry["higher_is_better"] is True
    sd = math.sqrt(sum((v - entry["mean"]) ** 2 for v in entry["values"]) / 2)
    assert entry["sd"] == pytest.approx(sd) and entry["tolerance"] == pytest.approx(max(1.0, 3 * sd * math.sqrt(4 / 3)))
    ppl = baseline["metrics"][PPL]
    assert (ppl["n"], ppl["sd"], ppl["tolerance"]) == (1, 0.0, pytest.approx(0.02 * ppl["mean"]))

    lines = []
    assert run_check(path, backend=backend, out=lines.append, workdir=tmp_path) == 0 and lines[-1] == "check passed"
    assert sum(count_markers(markers, "finetune", "done").values()) == 12 + 4  # seed 0 only, recomputed
    assert len(list(markers.glob("pretrain.*.done.*"))) == 4

    assert not any(line.startswith("note:") for line in lines)
    entry["mean"] = entry["values"][0] + entry["tolerance"] + 0.5  # seed 0 now below the band
    baseline["run_ids"][0] = "0" * 12  # as if a setting of the suite had changed since calibration
    baseline["environment"]["packages"]["tensorflow"] = "2.0.0"  # ... and the packages
    path.write_text(json.dumps(baseline))
    lines = []
    assert run_check(path, backend=backend, out=lines.append, workdir=tmp_path) == 1
    assert lines[-5].startswith("note: the suite's settings changed since calibration")
    assert lines[-4].startswith("note: calibrated with other packages or hardware")
    row = next(line for line in lines[-3].splitlines() if line.startswith("bert/MRPC/accuracy"))
    assert row.split()[-1] == "REGRESSION"
    assert float(row.split()[-2]) == pytest.approx(-(entry["tolerance"] + 0.5) / entry["sd"], abs=0.01)
    assert lines[-1] == "REGRESSION: see the rows above"


def test_calibration_refuses_failed_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_MARKERS", str(tmp_path / "markers"))
    monkeypatch.setenv("FAKE_FAIL", "sst2")
    with pytest.raises(BertbenchError, match=r"calibration: 2 run\(s\) failed .* no baseline written"):
        calibrate(1, tmp_path / "ci.json", backend=load_backend(FAKE), out=lambda *_: None, workdir=tmp_path)
    assert not (tmp_path / "ci.json").exists()


def test_a_suite_stopped_by_the_code_is_a_regression(tmp_path, backend):
    """A BertbenchError inside a run (the pretraining loop's non-finite loss) fails the check with exit 1,
    the metrics it did not produce MISSING; it does not abort the check as a user error would."""
    path = tmp_path / "ci.json"
    calibrate(1, path, backend=backend, out=lambda *_: None, workdir=tmp_path)

    def diverge(*args, **kwargs):
        raise BertbenchError("non-finite loss (nan) at step 3; stopped")

    backend.pretrain = diverge
    lines = []
    assert run_check(path, backend=backend, out=lines.append, workdir=tmp_path) == 1
    assert "error: the suite stopped: non-finite loss (nan) at step 3; stopped" in lines
    assert {line.split()[-1] for line in lines[-3].splitlines()[1:]} == {"MISSING"}
    with pytest.raises(BertbenchError, match="calibration: 1 run"):
        calibrate(1, path, backend=backend, out=lambda *_: None, workdir=tmp_path)


# ---------------------------------------------------------------------------------------------
# The baseline file is checked before anything runs: one line, exit 2


def good_baseline():
    return {"schema_version": 2, "suite": dict(SUITE), "metrics": {k: dict(v) for k, v in BASE.items()}}


def _broken(change):
    data = good_baseline()
    change(data)
    return json.dumps(data)


BROKEN = {
    "malformed JSON": ("{not json", "not valid JSON"),
    "not an object": ("[1, 2]", "no 'metrics' object"),
    "no metrics": (_broken(lambda d: d.pop("metrics")), "no 'metrics' object"),
    "empty metrics": (_broken(lambda d: d.update(metrics={})), "no 'metrics' object"),
    "non-numeric tolerance": (_broken(lambda d: d["metrics"][SST2].update(tolerance="3")),
                              f"metric '{SST2}' has no numeric 'tolerance'"),
    "no sd": (_broken(lambda d: d["metrics"][SST2].pop("sd")), f"metric '{SST2}' has no numeric 'sd'"),
    "boolean n": (_broken(lambda d: d["metrics"][SST2].update(n=True)), "has no numeric 'n'"),
    "entry not an object": (_broken(lambda d: d["metrics"].update({SST2: 61.0})), "is not an object"),
    "negative sd": (_broken(lambda d: d["metrics"][SST2].update(sd=-1.0)), "negative sd/tolerance or n < 1"),
    "unknown metric": (_broken(lambda d: d["metrics"].update({"bert/SST-2/acc": BASE[SST2]})), "unknown metric"),
    "inverted direction": (_broken(lambda d: d["metrics"][PPL].update(higher_is_better=True)),
                           "says higher_is_better=True, but the metric registry says False"),
    "no suite": (_broken(lambda d: d.pop("suite")), "'suite' must be an object"),
    "bad suite columns": (_broken(lambda d: d["suite"].update(columns="MRPC")), "suite 'columns' must be a list"),
    "old format": (json.dumps({"schema_version": 1, "suite": SUITE, "metrics": {
        "bert/MRPC/seed0/accuracy": {"value": 65.5, "tolerance": 3.0, "higher_is_better": True}}}),
        "old format .* replace it with `bertbench check --calibrate 3`"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_baselines_are_one_line_errors(tmp_path, case):
    text, message = BROKEN[case]
    (tmp_path / "ci.json").write_text(text)
    with pytest.raises(BaselineError, match=message) as err:
        load_baseline(tmp_path / "ci.json")
    assert "\n" not in str(err.value) and err.value.exit_code == 2


def test_cli_exits_2_and_runs_nothing_on_a_bad_baseline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_MARKERS", str(tmp_path / "markers"))
    (tmp_path / "bad.json").write_text(BROKEN["no metrics"][0])
    for path in (tmp_path / "bad.json", tmp_path / "missing.json"):
        assert cli.main(["check", "--baseline", str(path), "--backend", FAKE]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "no 'metrics' object" in err[0]
    assert err[1].startswith(f"bertbench check: error: no baseline at {tmp_path / 'missing.json'}; create it with")
    assert not (tmp_path / "markers").exists()  # nothing ran
    assert cli.main(["check", "--calibrate", "0", "--baseline", str(tmp_path / "x.json"), "--backend", FAKE]) == 2
    assert "at least 1 seed" in capsys.readouterr().err


def test_good_baseline_loads(tmp_path):
    (tmp_path / "ci.json").write_text(json.dumps(good_baseline()))
    assert load_baseline(tmp_path / "ci.json")["metrics"][SST2]["n"] == 3
