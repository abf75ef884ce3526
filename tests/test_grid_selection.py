"""Grid selection on separate seeds (`grid_selection_seeds`): each cell runs every grid point with its
selection seeds, then only the chosen point with the reported seeds; tables report that point's runs.

The runner is driven by the fake backend (tests/helpers.py), whose metrics are a hash of the config:
which point wins is arbitrary but fixed, and the tests recompute it from the selection records by hand."""

import dataclasses
import shutil
import statistics
from pathlib import Path

import pytest
from helpers import FakeBackend, StagedFake
from helpers import count_markers as count

from bertbench.errors import ConfigError
from bertbench.experiments.plan import SELECTION_SEED, expand
from bertbench.experiments.schema import EXPERIMENTS_DIR, load_experiment, load_scales
from bertbench.results import records
from bertbench.results.cells import table_cells
from bertbench.results.runner import describe, make_plan, plan_states, run_experiment

RATES = [1e-3, 2e-3]
COLUMNS = ["MRPC", "SST-2"]


def experiments(tmp_path, selection=2, steps_override=None):
    """A copy of experiments/ whose ci scale has a 2-rate grid chosen on `selection` seeds."""
    folder = Path(shutil.copytree(EXPERIMENTS_DIR, tmp_path / "exp"))
    scales = folder / "_scales.toml"
    text = scales.read_text().replace("seeds = 1\n[ci.set]", f"seeds = 2\ngrid_selection_seeds = {selection}\n[ci.set]", 1)
    scales.write_text(text + f"\n[ci.grid]\nfinetune.learning_rate = {RATES}\n")
    if steps_override is not None:
        path = folder / "ablation_steps.toml"
        path.write_text(path.read_text().replace("[sweep]", f"[scales.ci]\ngrid_selection_seeds = {steps_override}\n\n[sweep]", 1))
    return folder


def run(tmp_path, folder, runs="runs", backend=None):
    backend = backend or FakeBackend(tmp_path / "m")
    counts = run_experiment("ablation_nsp", "ci", results=tmp_path / "results", runs=tmp_path / runs, backend=backend,
                            out=lambda *_: None, only=["bert", "no_pretraining"], columns=COLUMNS,
                            experiments=folder)
    return counts, backend


def chosen_by_hand(recs, variant, column):
    """The rate whose selection runs have the best mean (ties: the smaller rate's key sorts first)."""
    means = {}
    for r in recs:
        if r["variant"] == variant and r["column"] == column and r["role"] == "selection":
            means.setdefault(r["grid"]["finetune.learning_rate"], []).append(r["main_metric"]["value"])
    best = max(statistics.mean(v) for v in means.values())
    return min((rate for rate, v in means.items() if statistics.mean(v) == best), key=lambda rate: f"{rate}")


def test_plan_has_selection_runs_and_candidates_with_the_ids_of_the_plain_grid(tmp_path):
    folder = experiments(tmp_path)
    exp, scales = load_experiment("ablation_nsp", folder), load_scales(folder)
    plan = expand(exp, "ci", columns=COLUMNS, only=["bert"], scales=scales)
    selection = [f for f in plan.finetunes if f.role == "selection"]
    candidates = [f for f in plan.finetunes if f.role == "candidate"]
    assert len(plan.finetunes) == len(selection) + len(candidates)
    assert sorted({f.seed for f in selection}) == [SELECTION_SEED, SELECTION_SEED + 1]
    assert len(selection) == len(COLUMNS) * len(RATES) * 2 and len(candidates) == len(COLUMNS) * len(RATES) * 2
    assert sorted({f.seed for f in candidates}) == [0, 1]
    plain = expand(exp, "ci", columns=COLUMNS, only=["bert"],
                   scales=scales | {"ci": dataclasses.replace(scales["ci"], grid_selection_seeds=0)})
    assert {f.id for f in plain.finetunes} == {f.id for f in candidates}  # the same runs, only some of them run
    assert {f.role for f in plain.finetunes} == {""}
    # an experiment opts out at a scale; ablation_steps does at small (its curve was designed without it)
    out = expand(load_experiment("ablation_steps", experiments(tmp_path / "b", steps_override=0)), "ci",
                 scales=load_scales(tmp_path / "b" / "exp"))
    assert {f.role for f in out.finetunes} == {""}
    assert {f.role for f in make_plan("ablation_steps", "small", data_dir=tmp_path).finetunes} == {""}
    assert {f.role for f in make_plan("ablation_nsp", "small", data_dir=tmp_path).finetunes} == {"selection", "candidate"}
    with pytest.raises(ConfigError, match="at most 1000 seeds"):
        expand(exp, "ci", seeds=SELECTION_SEED + 1, columns=["MRPC"], only=["bert"], scales=scales)


def test_bad_grid_selection_settings_fail_on_one_line(tmp_path):
    folder = experiments(tmp_path, selection=-1)
    with pytest.raises(ConfigError, match="grid_selection_seeds must be an integer >= 0, got -1"):
        load_scales(folder)
    folder = experiments(tmp_path / "b")
    path = folder / "ablation_nsp.toml"
    path.write_text(path.read_text() + '\n[scales.ci]\ngrid_selection_seed = 1\n')
    with pytest.raises(ConfigError, match="unknown key 'grid_selection_seed'.*did you mean"):
        load_experiment("ablation_nsp", folder)
    path.write_text(path.read_text().replace("grid_selection_seed = 1", "grid_selection_seeds = 'two'"))
    with pytest.raises(ConfigError, match="grid_selection_seeds must be an integer"):
        load_experiment("ablation_nsp", folder)


def test_only_the_chosen_point_runs_and_the_table_reports_it(tmp_path):
    folder = experiments(tmp_path)
    counts, _ = run(tmp_path, folder)
    cells = len(COLUMNS) * 2  # bert, no_pretraining
    # 1 pretraining + 1 random init + per cell 2 rates x 2 selection seeds + the chosen rate x 2 seeds
    assert counts == dict(ran=2 + cells * (4 + 2), cached=0, reused=0, failed=0, skipped=0, unchosen=cells * 2)
    folder_recs = tmp_path / "results" / "ablation_nsp" / "ci" / "records"
    recs = [r for r in map(records.read_json, folder_recs.glob("*.json")) if r["kind"] == "finetune"]
    exp = load_experiment("ablation_nsp", folder)
    _, table = table_cells(recs, exp)
    for variant in ("bert", "no_pretraining"):
        for column in COLUMNS:
            rate = chosen_by_hand(recs, variant, column)
            reported = sorted((r["seed"], r["main_metric"]["value"]) for r in recs if r["variant"] == variant
                              and r["column"] == column and r["role"] == "candidate")
            assert [s for s, _ in reported] == [0, 1]  # only the chosen point's candidates ran ...
            assert {r["grid"]["finetune.learning_rate"] for r in recs if r["variant"] == variant
                    and r["column"] == column and r["role"] == "candidate"} == {rate}
            assert list(table[column][variant].values) == [v for _, v in reported]  # ... and are the cell
    # a second run has nothing to do; with the runs folder gone (a fresh clone with the records), the
    # pretraining is not needed again: the unchosen candidates are settled, not pending
    again, backend = run(tmp_path, folder)
    assert again["ran"] == 0 and again["unchosen"] == cells * 2 and backend.calls == []
    shutil.rmtree(tmp_path / "runs")
    fresh, backend = run(tmp_path, folder)
    assert fresh["ran"] == 0 and backend.calls == []
    plan = make_plan("ablation_nsp", "ci", only=["bert", "no_pretraining"], columns=COLUMNS, experiments=folder)
    states = plan_states(plan, folder_recs, tmp_path / "runs")
    assert sorted(set(states.values())) == ["cached", "unchosen"]


def test_candidates_wait_for_their_selection_and_the_dry_run_counts_one_point(tmp_path):
    folder = experiments(tmp_path)
    plan = make_plan("ablation_nsp", "ci", only=["bert"], columns=COLUMNS, experiments=folder)
    states = plan_states(plan, tmp_path / "results", tmp_path / "runs")
    assert {states[f.id] for f in plan.finetunes if f.role == "candidate"} == {"if chosen"}
    total = [line for line in describe(plan, tmp_path / "results", tmp_path / "runs") if line.startswith("to run:")]
    assert total[0].startswith(f"to run: 1 pretraining (") and \
        f"{len(COLUMNS) * 4} fine-tuning + {len(COLUMNS) * 2} at the grid points" in total[0]


def test_a_failed_selection_run_counts_as_missing_and_its_cell_still_chooses(tmp_path):
    folder = experiments(tmp_path)
    counts, _ = run(tmp_path, folder, backend=FakeBackend(tmp_path / "m", fail="mrpc"))
    # MRPC: every run fails (selection and the chosen candidates): with no value the first point is taken
    assert counts["failed"] == 2 * (4 + 2) and counts["unchosen"] == 4 * 2
    done = count(tmp_path / "m", "finetune", "done")
    assert len(done) == 2 * (4 + 2)  # SST-2's cells ran in full
    recs = map(records.read_json, (tmp_path / "results" / "ablation_nsp" / "ci" / "records").glob("*.json"))
    assert {r["grid"]["finetune.learning_rate"] for r in recs if r.get("column") == "MRPC" and r["role"] == "candidate"} \
        == {RATES[0]}


def test_a_staged_sweep_selects_at_each_export_before_resuming(tmp_path):
    """ablation_steps with grid selection: at each export its selection runs, then the chosen point's
    reported seeds, then the pretraining resumes (results/stages.py hands the runs to the runner)."""
    folder = experiments(tmp_path, steps_override=2)
    backend = StagedFake(tmp_path / "m")
    counts = run_experiment("ablation_steps", "ci", results=tmp_path / "results", runs=tmp_path / "runs",
                            backend=backend, out=lambda *_: None, only=["mlm"], columns=["SST-2"], experiments=folder)
    exports = 4  # 50, 100, 200 and the final encoder
    assert counts["failed"] == 0 and counts["ran"] == 1 + exports * (4 + 2) and counts["unchosen"] == exports * 2
    assert [step for step in backend.order if not step.startswith("finetune")] == \
        ["until 50", "until 100", "until 200", "pretrain"]
    first = backend.order[1:1 + 6]  # the 50-step export's runs, before the pretraining goes on
    assert first == ["finetune encoder_step50"] * 6 and backend.order[7] == "until 100"
    recs = [r for r in map(records.read_json, (tmp_path / "results" / "ablation_steps" / "ci" / "records").glob("*.json"))
            if r["kind"] == "finetune"]
    for init in ("encoder_step50", "encoder"):
        mine = [r for r in recs if r["config"]["init"] == init]
        assert [r["role"] for r in mine].count("selection") == 4 and [r["role"] for r in mine].count("candidate") == 2
        rate = chosen_by_hand(mine, mine[0]["variant"], "SST-2")
        assert {r["grid"]["finetune.learning_rate"] for r in mine if r["role"] == "candidate"} == {rate}


def test_each_pretraining_seed_chooses_its_own_point_and_the_table_agrees(tmp_path):
    folder = experiments(tmp_path)
    counts = run_experiment("ablation_nsp", "ci", results=tmp_path / "results", runs=tmp_path / "runs",
                            backend=FakeBackend(tmp_path / "m"), out=lambda *_: None, only=["bert"], columns=COLUMNS,
                            experiments=folder, pretrain_seeds=2)
    assert counts["failed"] == 0 and counts["unchosen"] == 2 * len(COLUMNS) * 2
    recs = [r for r in map(records.read_json, (tmp_path / "results" / "ablation_nsp" / "ci" / "records").glob("*.json"))
            if r["kind"] == "finetune"]
    _, table = table_cells(recs, load_experiment("ablation_nsp", folder))
    for column in COLUMNS:
        ran = {(r["pretrain_seed"], r["seed"]): r["main_metric"]["value"] for r in recs
               if r["column"] == column and r["role"] == "candidate"}
        assert sorted(ran) == [(m, s) for m in (0, 1) for s in (0, 1)]
        for m in (0, 1):  # the candidates of pretraining seed m are at the rate its own selection runs chose
            mine = [r for r in recs if r["column"] == column and r["pretrain_seed"] == m]
            assert {r["grid"]["finetune.learning_rate"] for r in mine if r["role"] == "candidate"} == \
                {chosen_by_hand(mine, "bert", column)}
        assert table[column]["bert"].units == tuple(sorted(ran)) and \
            list(table[column]["bert"].values) == [ran[u] for u in sorted(ran)]
