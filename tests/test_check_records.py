"""`check` per scale: the suites (data) resolve to their experiment's runs, a baseline calibrated from an
experiment's records (by hand, and refused when a record is not the suite's run), and `check --scale
small` with the fake backend (no ML): a missing baseline, a resumable runs folder, a regression."""

import json
import math
import shutil
import statistics
from pathlib import Path

import pytest

from bertbench import cli
from bertbench.errors import BertbenchError
from bertbench.results.check import BASELINE, SELECTED, SUITES, baseline_path, load_baseline, seed0_ids, suite_plan
from bertbench.results.check_records import RecordMismatch, calibrate_from_records
from bertbench.results.runner import make_plan, run_experiment
from helpers import FakeBackend, count_markers

FAKE = f"{Path(__file__).resolve().parent / 'helpers.py'}:FakeBackend"
SMALL = SUITES["small"]
SEEDS = 3


def test_suites_are_their_experiments_runs():
    """A suite's runs are its experiment's runs at that scale (same ids), so a baseline calibrated from
    the experiment's records describes exactly what `check` reruns."""
    for scale, suite in SUITES.items():
        full = make_plan(suite["experiment"], scale, seeds=5)
        if suite.get("grid") == SELECTED:  # each cell at its chosen point (a baseline's `points`): e.g. these
            rates = {"bert/SST-2": 3e-4, "bert/QNLI": 1e-4, "no_pretraining/SST-2": 1e-3, "no_pretraining/QNLI": 3e-4}
            points = {cell: {"finetune.learning_rate": rate} for cell, rate in rates.items()}
            assert {f.role for f in suite_plan(suite, seeds=5).finetunes} == {"selection", "candidate"}  # calibrating
        else:
            points = None
        mine = suite_plan(suite, seeds=5, points=points)
        wanted = [f for f in full.finetunes if f.variant in suite["only"] and f.column in suite["columns"]
                  and f.role != "selection" and f.grid == (points[f"{f.variant}/{f.column}"] if points else {})]
        assert {f.id for f in mine.finetunes} == {f.id for f in wanted} and len(wanted) == 5 * 2 * 2
        assert len(full.finetunes) > len(wanted) and {f.role for f in mine.finetunes} == {""}
        assert {p.id for p in mine.pretrains} == {full.variant_pretrain[v] for v in suite["only"]}
    small = suite_plan(SMALL, points=points)  # pretrained against random init, seed 0 only
    assert sorted(p.kind for p in small.pretrains) == ["pretrain", "random_init"]
    assert sorted((f.variant, f.column, f.seed) for f in small.finetunes) == [
        (v, c, 0) for v in ("bert", "no_pretraining") for c in ("QNLI", "SST-2")]
    with pytest.raises(BertbenchError, match="no chosen grid point for bert/SST-2; recalibrate"):
        suite_plan(SMALL, points={k: v for k, v in points.items() if k != "bert/SST-2"})
    assert baseline_path("small") == BASELINE.parent / "small.json" and baseline_path("ci") == BASELINE


def test_the_ci_suite_still_resolves_to_the_committed_baseline_runs():
    """The ci check is unchanged: its runs are the ones the committed baseline was calibrated with."""
    committed = json.loads(BASELINE.read_text())
    assert committed["suite"] == SUITES["ci"]
    assert seed0_ids(suite_plan(SUITES["ci"])) == committed["run_ids"]


# ---------------------------------------------------------------------------------------------
# Records of ablation_nsp at small, written once by the fake backend


@pytest.fixture(scope="module")
def small_records(tmp_path_factory):
    """results/ of `run ablation_nsp --scale small --seeds 3` for the suite's rows and columns plus a
    row and a column that are not the suite's (ignored), and the data folder the runs read."""
    root = tmp_path_factory.mktemp("small")
    (root / "data").mkdir()
    counts = run_experiment("ablation_nsp", "small", seeds=SEEDS, only=["bert", "no_pretraining", "no_nsp"],
                            columns=["SST-2", "QNLI", "MRPC"], data_dir=str(root / "data"),
                            results=root / "results", runs=root / "runs", out=lambda *_: None, tables=False,
                            backend=FakeBackend(markers=root / "markers"))
    # per cell: 3 rates x 2 selection seeds, then SEEDS at the chosen rate (the small grid's selection)
    assert counts["failed"] == 0 and counts["ran"] == 3 + 3 * 3 * (3 * 2 + SEEDS)
    return root


@pytest.fixture
def results(small_records, tmp_path):
    """A copy of the records' results folder that a test may damage."""
    return Path(shutil.copytree(small_records / "results", tmp_path / "results"))


def _records(results):
    folder = results / "ablation_nsp" / "small" / "records"
    return {path: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def test_calibrate_from_records_by_hand(results, tmp_path):
    lines = []
    assert calibrate_from_records(results, tmp_path / "small.json", SMALL, out=lines.append) == 0
    baseline = load_baseline(tmp_path / "small.json", SMALL)
    recs = list(_records(results).values())
    values = {}
    for r in sorted((r for r in recs if r["kind"] == "finetune" and r["role"] == "candidate"), key=lambda r: r["seed"]):
        values.setdefault(f"{r['variant']}/{r['column']}/accuracy", []).append(r["main_metric"]["value"])
    # each cell's point: the rate with the best mean of its selection runs (computed here by hand)
    for cell in ("bert/SST-2", "bert/QNLI", "no_pretraining/SST-2", "no_pretraining/QNLI"):
        means = {}
        for r in recs:
            if r["kind"] == "finetune" and f"{r['variant']}/{r['column']}" == cell and r["role"] == "selection":
                means.setdefault(r["grid"]["finetune.learning_rate"], []).append(r["main_metric"]["value"])
        rate = max(means, key=lambda k: statistics.mean(means[k]))
        assert baseline["points"][cell] == {"finetune.learning_rate": rate}
        assert {r["grid"]["finetune.learning_rate"] for r in recs if r["kind"] == "finetune" and r["role"] == "candidate"
                and f"{r['variant']}/{r['column']}" == cell} == {rate}
    assert sorted(baseline["metrics"]) == sorted(
        [f"{v}/{c}/accuracy" for v in ("bert", "no_pretraining") for c in ("QNLI", "SST-2")]
        + ["bert/pretrain/heldout.lm_perplexity"])  # no no_nsp, no MRPC: not the suite's
    for key in ("bert/SST-2/accuracy", "no_pretraining/QNLI/accuracy"):
        entry, seeds = baseline["metrics"][key], values[key]
        sd = statistics.stdev(seeds)
        assert entry["values"] == seeds and entry["n"] == SEEDS and entry["mean"] == pytest.approx(sum(seeds) / 3)
        assert entry["sd"] == pytest.approx(sd) and entry["tolerance"] == pytest.approx(max(1.0, 3 * sd * math.sqrt(4 / 3)))
    bert = next(r for r in recs if r["kind"] == "pretrain" and r["variants"] == ["bert"])
    ppl = baseline["metrics"]["bert/pretrain/heldout.lm_perplexity"]
    assert (ppl["mean"], ppl["sd"], ppl["n"]) == (bert["metrics"]["heldout.lm_perplexity"], 0.0, 1)
    assert ppl["tolerance"] == pytest.approx(0.02 * ppl["mean"])
    assert baseline["calibration_seeds"] == [0, 1, 2] and baseline["suite"] == SMALL
    assert baseline["run_ids"] == seed0_ids(suite_plan(SMALL, points=baseline["points"])) and \
        len(baseline["run_ids"]) == 2 + 4
    assert baseline["environment"]["packages"] == bert["packages"] and baseline["git"] == bert["git"]
    assert lines[-1].startswith(f"baseline written: {tmp_path / 'small.json'} (5 metrics, 3 fine-tuning seed(s)")


def _edit(results, change, where):
    """Apply `change` to the first record for which `where(record)` holds."""
    path, record = next((p, r) for p, r in _records(results).items() if where(r))
    change(record)
    path.write_text(json.dumps(record))
    return path


def _bert_sst2_seed1(r):
    return r["kind"] == "finetune" and (r["variant"], r["column"], r["seed"], r["role"]) == (
        "bert", "SST-2", 1, "candidate")


def _other_run_id(r):
    r["run_id"] = "0" * 12


MISMATCHES = {
    "other learning rate": (lambda r: r["config"]["finetune"].update(learning_rate=2e-4), _bert_sst2_seed1,
                            "finetune.learning_rate is 0.0002, the suite resolves 0.00"),
    "other run id": (_other_run_id, _bert_sst2_seed1, "run id 000000000000, the suite resolves"),
    "other pretraining": (lambda r: r.update(pretrain_id="0" * 12), _bert_sst2_seed1,
                          "it fine-tunes pretraining 000000000000"),
    "pretraining of other settings": (
        lambda r: (r.update(pretrain_id="0" * 12), r["config"]["pretrain"].update(num_steps=500)),
        lambda r: r["kind"] == "pretrain" and r["variants"] == ["bert"],
        "pretraining of bert: pretrain.num_steps is 500, the suite resolves 2000"),
}


@pytest.mark.parametrize("case", sorted(MISMATCHES))
def test_a_record_of_other_settings_is_refused(results, tmp_path, case):
    change, where, message = MISMATCHES[case]
    path = _edit(results, change, where)
    with pytest.raises(RecordMismatch, match=f"^{path}: not the suite's run of .*{message}") as err:
        calibrate_from_records(results, tmp_path / "small.json", SMALL, out=lambda *_: None)
    assert "\n" not in str(err.value) and not (tmp_path / "small.json").exists()


def test_a_missing_run_or_no_records_is_one_line_exit_2(results, tmp_path, capsys):
    folder = results / "ablation_nsp" / "small" / "records"
    next(p for p, r in _records(results).items() if _bert_sst2_seed1(r)).unlink()
    argv = ["check", "--scale", "small", "--baseline", str(tmp_path / "small.json"), "--calibrate-from-records"]
    assert cli.main(argv + [str(results)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "1 of the suite's 14 runs have no ok record" in err[0] and "bert/SST-2 seed 1" in err[0]
    shutil.rmtree(folder)
    assert cli.main(argv + [str(results)]) == 2
    assert "no fine-tuning records of the small check suite" in capsys.readouterr().err
    assert not (tmp_path / "small.json").exists()
    with pytest.raises(BertbenchError, match="unknown check scale 'base'"):
        baseline_path("base")


# ---------------------------------------------------------------------------------------------
# `check --scale small` with the fake backend


def test_check_small_without_a_baseline_runs_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_MARKERS", str(tmp_path / "markers"))
    missing = tmp_path / "small.json"
    assert cli.main(["check", "--scale", "small", "--baseline", str(missing), "--backend", FAKE]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"bertbench check: error: no baseline at {missing}; create it with ")
    assert f"--calibrate-from-records RESULTS --baseline {missing}" in err[0]
    assert cli.main(["check", "--scale", "small", "--baseline", str(BASELINE), "--backend", FAKE]) == 2
    assert "is the baseline of scale 'ci', not 'small'" in capsys.readouterr().err
    assert not (tmp_path / "markers").exists()  # nothing ran


def test_check_small_resumes_and_finds_a_regression(small_records, tmp_path, monkeypatch, capsys):
    markers, runs, path = tmp_path / "markers", tmp_path / "runs", tmp_path / "small.json"
    monkeypatch.setenv("FAKE_MARKERS", str(markers))
    calibrate_from_records(small_records / "results", path, SMALL, out=lambda *_: None)
    argv = ["check", "--scale", "small", "--baseline", str(path), "--data-dir", str(small_records / "data"),
            "--backend", FAKE]
    assert cli.main(argv + ["--runs", str(runs)]) == 0  # seed 0 reproduces the records' seed 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "check ablation_nsp @ small: 2 pretraining + 4 fine-tuning runs"
    assert out[1].startswith(("estimated wall time on this machine", "no time estimate"))  # before any run
    assert out[2].startswith("pretraining ") and out[-1] == "check passed"
    assert sum(count_markers(markers, "finetune", "done").values()) == 4

    assert cli.main(argv + ["--runs", str(runs)]) == 0  # a rerun (or an interrupted check) resumes
    assert capsys.readouterr().out.splitlines()[0].endswith(f"; 6 finished earlier in {runs}: reused, not re-measured")
    assert sum(count_markers(markers, "finetune", "done").values()) == 4

    baseline = json.loads(path.read_text())
    entry = baseline["metrics"]["no_pretraining/SST-2/accuracy"]
    entry["mean"] = entry["values"][0] + entry["tolerance"] + 0.5  # seed 0 now below the band
    path.write_text(json.dumps(baseline))
    assert cli.main(argv) == 1  # recomputed in a temporary runs folder
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "REGRESSION: see the rows above"
    assert [line.split()[-1] for line in out if line.startswith("no_pretraining/SST-2/")] == ["REGRESSION"]
    assert sum(count_markers(markers, "finetune", "done").values()) == 8


def test_calibrating_small_by_running_stores_the_points_its_selection_chose(tmp_path, monkeypatch, capsys):
    """`check --scale small --calibrate K` runs the suite as the experiment does (selection runs, then the
    chosen rate's seeds) and stores each cell's rate; `check` then reruns seed 0 at those rates only."""
    markers, path, data = tmp_path / "markers", tmp_path / "small.json", tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("FAKE_MARKERS", str(markers))
    argv = ["check", "--scale", "small", "--baseline", str(path), "--data-dir", str(data), "--backend", FAKE]
    assert cli.main(argv + ["--calibrate", "2"]) == 0
    baseline = json.loads(path.read_text())
    assert sorted(baseline["points"]) == ["bert/QNLI", "bert/SST-2", "no_pretraining/QNLI", "no_pretraining/SST-2"]
    plan = suite_plan(SMALL, seeds=2, points=baseline["points"])
    assert baseline["run_ids"] == seed0_ids(plan) and len(baseline["run_ids"]) == 2 + 4
    # 4 cells x (3 rates x 2 selection seeds + 2 seeds at the chosen rate)
    assert sum(count_markers(markers, "finetune", "done").values()) == 4 * (6 + 2)
    capsys.readouterr()
    assert cli.main(argv) == 0 and capsys.readouterr().out.splitlines()[-1] == "check passed"
    assert sum(count_markers(markers, "finetune", "done").values()) == 4 * (6 + 2) + 4
    del baseline["points"]
    path.write_text(json.dumps(baseline))
    assert cli.main(argv) == 2
    assert "'points' is not an object" in capsys.readouterr().err
