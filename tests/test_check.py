"""`check`: the ci regression suite against a baseline, with a fake backend (no ML)."""

import json
from pathlib import Path

import pytest

from bertbench.backend import load_backend
from bertbench.errors import BertbenchError
from bertbench.results.check import SUITE, compare, direction, run_check

FAKE = f"{Path(__file__).resolve().parent / 'helpers.py'}:FakeBackend"


@pytest.fixture
def backend(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_MARKERS", str(tmp_path / "markers"))
    return load_backend(FAKE)


def check(tmp_path, backend, update=False, lines=None):
    out = lines if lines is not None else []
    return run_check(tmp_path / "ci.json", update=update, backend=backend, out=out.append, workdir=tmp_path)


def test_update_then_pass_then_fail_on_perturbed_baseline(tmp_path, backend):
    assert check(tmp_path, backend, update=True) == 0
    baseline = json.loads((tmp_path / "ci.json").read_text())
    keys = sorted(baseline["metrics"])
    assert len(keys) == 2 * 2 + 2  # bert, no_nsp x MRPC, SST-2 (seed 0) + 2 perplexities
    assert baseline["suite"] == SUITE
    assert baseline["metrics"]["bert/MRPC/seed0/accuracy"]["higher_is_better"] is True
    assert baseline["metrics"]["bert/pretrain/heldout.lm_perplexity"]["higher_is_better"] is False
    lines = []
    assert check(tmp_path, backend, lines=lines) == 0 and lines[-1] == "check passed"
    assert len(list((tmp_path / "markers").glob("finetune.*.done.*"))) == 8  # recomputed, not cached

    entry = baseline["metrics"]["bert/MRPC/seed0/accuracy"]
    entry["value"] += entry["tolerance"] + 0.01  # the baseline was better than now by more than the tolerance
    (tmp_path / "ci.json").write_text(json.dumps(baseline))
    lines = []
    assert check(tmp_path, backend, lines=lines) == 1
    table = lines[-2]
    assert table.splitlines()[0].split() == ["metric", "baseline", "now", "tolerance", "status"]
    row = next(line for line in table.splitlines() if line.startswith("bert/MRPC/seed0/accuracy"))
    assert row.split()[-1] == "REGRESSION"


def test_lower_is_better_direction_and_tolerance_kept_on_update(tmp_path, backend):
    check(tmp_path, backend, update=True)
    baseline = json.loads((tmp_path / "ci.json").read_text())
    ppl = baseline["metrics"]["bert/pretrain/heldout.lm_perplexity"]
    ppl["value"] -= ppl["tolerance"] + 0.1  # baseline perplexity lower (better) than now
    ppl["tolerance"] = 0.123
    (tmp_path / "ci.json").write_text(json.dumps(baseline))
    assert check(tmp_path, backend) == 1
    assert check(tmp_path, backend, update=True) == 0
    assert json.loads((tmp_path / "ci.json").read_text())["metrics"]["bert/pretrain/heldout.lm_perplexity"][
        "tolerance"] == 0.123


def test_compare_statuses():
    a, b, c, d = "bert/MRPC/seed0/accuracy", "bert/pretrain/heldout.lm_perplexity", "no_nsp/MRPC/seed0/f1", "x/y/f1"
    base = {a: {"value": 0.8, "tolerance": 0.02, "higher_is_better": True},
            b: {"value": 4.0, "tolerance": 0.2, "higher_is_better": False},
            c: {"value": 0.5, "tolerance": 0.0}}  # no stored direction: the registry's
    rows, regressed = compare(base, {a: (0.79, True), b: (3.5, False), d: (1.0, True)})
    assert {r[0]: r[4] for r in rows} == {a: "ok", b: "better", c: "MISSING", d: "new"}
    assert regressed
    rows, regressed = compare(base, {a: (0.77, True), b: (4.2, False), c: (0.5, True)})
    assert {r[0]: r[4] for r in rows} == {a: "REGRESSION", b: "ok", c: "ok"} and regressed


def test_direction_comes_from_the_metric_registry():
    assert direction("bert/MRPC/seed0/accuracy") is True
    assert direction("bert/pretrain/heldout.lm_perplexity") is False
    inverted = {"bert/pretrain/heldout.lm_perplexity": {"value": 4.0, "tolerance": 0.2, "higher_is_better": True}}
    with pytest.raises(BertbenchError, match="says higher_is_better=True, but the metric registry says False"):
        compare(inverted, {})


def test_missing_baseline_is_a_one_line_error(tmp_path, backend):
    with pytest.raises(BertbenchError, match="no baseline at .*ci.json; create it with"):
        check(tmp_path, backend)
