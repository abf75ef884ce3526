"""The runner with a fake backend: caching, dedup, resume after SIGKILL, sharding, concurrent runners.

The fake (`tests/helpers.py:FakeBackend`, also loadable with `--backend tests/helpers.py:FakeBackend`)
does no ML: it sleeps, leaves a marker file per execution so tests can count what ran, and
"pretrains" in chunks appended to `out_dir/progress`, resuming from what is there, like the real
pretrain() resumes from its checkpoints.
"""

import dataclasses
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import FAKE_CHUNKS as CHUNKS
from helpers import FakeBackend
from helpers import count_markers as count

from bertbench.config import to_dict
from bertbench.errors import BertbenchError
from bertbench.experiments.plan import expand
from bertbench.experiments.schema import load_experiment
from bertbench.experiments.shards import parse_shard, shard_plan
from bertbench.results import records
from bertbench.results.runner import make_plan, plan_states, run_experiment

REPO = Path(__file__).resolve().parents[1]
FAKE = f"{Path(__file__).resolve().parent / 'helpers.py'}:FakeBackend"


def quiet(*_):
    pass


def run(tmp_path, experiment="ablation_nsp", backend=None, **kw):
    return run_experiment(experiment, "ci", results=tmp_path / "results", runs=tmp_path / "runs",
                          backend=backend or FakeBackend(tmp_path / "m"), out=quiet, **kw)


def cli(tmp_path, *args, env=None, popen=False):
    cmd = [sys.executable, "-m", "bertbench", "run", "ablation_nsp", "--results", str(tmp_path / "results"),
           "--runs", str(tmp_path / "runs"), "--backend", FAKE, *args]
    full_env = {**os.environ, "FAKE_MARKERS": str(tmp_path / "m"), **(env or {})}
    if popen:
        return subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=120)


def check_complete(tmp_path, plan):
    """Every run of `plan` has exactly one ok record and was completed exactly once."""
    folder = tmp_path / "results" / "ablation_nsp" / "ci" / "records"
    for ft in plan.finetunes:
        rec = records.read_json(folder / f"{ft.id}.json")
        assert rec["status"] == "ok" and rec["run_id"] == ft.id and rec["variant"] == ft.variant
    for pre in plan.pretrains:
        assert records.read_json(folder / f"pretrain-{pre.id}.json")["status"] == "ok"
    assert not list(folder.glob(".*.tmp"))
    done = count(tmp_path / "m", "finetune", "done")
    assert done == {ft.id: 1 for ft in plan.finetunes}
    assert count(tmp_path / "m", "pretrain", "done") == {p.id: 1 for p in plan.pretrains if p.kind == "pretrain"}
    assert count(tmp_path / "m", "random_init", "done") == {p.id: 1 for p in plan.pretrains if p.kind == "random_init"}
    for pre in (p for p in plan.pretrains if p.kind == "pretrain"):  # each chunk computed once, across kills
        assert (tmp_path / "runs" / "pretrain" / pre.id / "progress").read_text().split() == \
            [str(i) for i in range(CHUNKS)]


def test_second_run_is_all_cached_and_tables_written(tmp_path):
    first = run(tmp_path)
    assert first == dict(ran=35, cached=0, reused=0, failed=0, skipped=0, unchosen=0)  # 4 pretrainings + random init + 6 x 5
    check_complete(tmp_path, make_plan("ablation_nsp"))
    again = run(tmp_path)
    assert again["ran"] == 0 and again["cached"] == 30 + 5
    assert len(list((tmp_path / "m").glob("*.done.*"))) == 35  # nothing executed twice
    table = (tmp_path / "results" / "ablation_nsp" / "ci" / "table.md").read_text()
    assert "| BERT_BASE |" in table and "| + BiLSTM |" in table


def test_shared_pretraining_runs_once_across_variants_and_experiments(tmp_path):
    run(tmp_path)
    pre = count(tmp_path / "m", "pretrain", "done")
    assert len(pre) == 4  # ltr_no_nsp and ltr_bilstm share one
    counts = run(tmp_path, "masking_rate")
    mask15 = make_plan("masking_rate").variant_pretrain["mask15"]
    assert count(tmp_path / "m", "pretrain", "done")[mask15] == 1  # = ablation_nsp's bert, not rerun
    # mask15's pretraining and its 3 fine-tuning runs (same configs as bert's) are reused, not rerun
    assert counts["reused"] == 1 + 3 and counts["ran"] == 2 + 6
    rec = records.read_json(tmp_path / "results" / "masking_rate" / "ci" / "records" / f"pretrain-{mask15}.json")
    assert rec["experiment"] == "masking_rate" and rec["variants"] == ["mask15"]


def test_baseline_uses_random_init_and_records_provenance(tmp_path):
    run(tmp_path, only=["bert"], columns=["MRPC"], baseline=True)
    assert len(count(tmp_path / "m", "random_init", "done")) == 1
    recs = records.load_records(tmp_path / "results", "ablation_nsp", "ci")
    base = next(r for r in recs if r.get("variant") == "no_pretraining")
    assert base["config"]["pretrain"] is None and base["config"]["init"] == "encoder"
    for key in ("schema_version", "git", "packages", "hardware", "wall_time_s", "started", "finished",
                "strategy", "main_metric", "metrics", "seed", "task", "pretrain_id"):
        assert key in base, key
    assert base["main_metric"]["value"] == base["metrics"]["accuracy"]
    assert base["encoder_pretraining"] == {"precision": "float32"}  # the backend's init record, kept
    assert {"tensorflow", "keras", "keras-hub", "tensorflow-text", "numpy", "python"} <= set(base["packages"])
    mnli = make_plan("ablation_nsp").finetunes[0]
    assert mnli.column == "MNLI-m" and mnli.task == "rte" and mnli.proxy_for == "mnli"


def test_a_failed_run_is_recorded_and_retried(tmp_path):
    counts = run(tmp_path, only=["bert"], backend=FakeBackend(tmp_path / "m", fail="mrpc"))
    assert counts["failed"] == 1 and counts["ran"] == 1 + 4
    folder = tmp_path / "results" / "ablation_nsp" / "ci" / "records"
    failed = [r for r in map(records.read_json, folder.glob("*.json")) if r["status"] == "failed"]
    assert len(failed) == 1 and "fake failure" in failed[0]["error"]
    assert run(tmp_path, only=["bert"])["ran"] == 1  # only the failed one reruns


def _dry_run_ids(proc):
    """{"pretrain": [ids], "finetune": [ids]} from the lines of a `run --dry-run`."""
    assert proc.returncode == 0, proc.stderr
    ids = {"pretrain": [], "finetune": []}
    for line in proc.stdout.splitlines():
        kind, _, rest = line.strip().partition(" ")
        if kind in ids and line.startswith("  "):
            ids[kind].append(rest.split()[0])
    return ids


def test_shards_from_separate_processes_partition_the_plan(tmp_path):
    """Each shard is planned by its own process (as on separate machines): together they hold every
    run of the unsharded plan exactly once, each pretraining group whole in one shard."""
    plan = make_plan("ablation_nsp", "base", baseline=True)
    base = ["run", "ablation_nsp", "--scale", "base", "--baseline", "--dry-run", "--data-dir", str(tmp_path),
            "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "results")]
    procs = [subprocess.Popen([sys.executable, "-m", "bertbench", *base, "--shard", f"{i}/3"], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    parts = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        parts.append(_dry_run_ids(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)))
    for kind, runs in (("pretrain", plan.pretrains), ("finetune", plan.finetunes)):
        ids = [run_id for part in parts for run_id in part[kind]]
        assert sorted(ids) == sorted(r.id for r in runs) and len(ids) == len(set(ids)), kind
    group = {f.id: f.pretrain_id for f in plan.finetunes}
    for part in parts:
        assert part["pretrain"]  # 5 groups over 3 shards: none is empty
        assert {group[f] for f in part["finetune"]} <= set(part["pretrain"])


def test_shards_of_independently_built_plans_partition_the_plan():
    whole = make_plan("ablation_nsp", "base", baseline=True)
    for n in (1, 2, 5):
        parts = [shard_plan(make_plan("ablation_nsp", "base", baseline=True), i, n) for i in range(n)]
        ids = [f.id for p in parts for f in p.finetunes]
        assert sorted(ids) == sorted(f.id for f in whole.finetunes) and len(ids) == len(set(ids))
        owners = {}
        for i, p in enumerate(parts):
            assert {f.pretrain_id for f in p.finetunes} <= {pre.id for pre in p.pretrains}
            for pre in p.pretrains:
                owners.setdefault(pre.id, []).append(i)
        assert all(len(v) == 1 for v in owners.values()) and sorted(owners) == sorted(p.id for p in whole.pretrains)
        assert [p.id for p in make_plan("ablation_nsp", "base", baseline=True, shard=f"0/{n}").pretrains] == \
            [p.id for p in parts[0].pretrains]


@pytest.mark.slow
def test_two_shards_run_as_separate_processes_complete_the_plan(tmp_path):
    procs = [cli(tmp_path, "--shard", f"{i}/2", env={"FAKE_SLEEP": "0.02"}, popen=True) for i in range(2)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    check_complete(tmp_path, make_plan("ablation_nsp"))
    starts = {p.name.split(".")[1]: p.name.split(".")[3] for p in (tmp_path / "m").glob("pretrain.*.start.*")}
    assert len(set(starts.values())) == 2  # both processes pretrained something: the work was split


def test_strategy_reaches_pretraining_and_fine_tuning(tmp_path):
    backend = FakeBackend(tmp_path / "m")
    run(tmp_path, only=["bert"], columns=["MRPC"], baseline=True, strategy="mirrored", backend=backend)
    assert sorted(backend.calls) == [("finetune", "mirrored"), ("finetune", "mirrored"), ("pretrain", "mirrored"),
                                     ("random_init", None)]
    recs = records.load_records(tmp_path / "results", "ablation_nsp", "ci")
    assert len(recs) == 4 and {r["strategy"] for r in recs} == {"mirrored"}


class ResolvingBackend(FakeBackend):
    """Returns the model config the run really had, as the real pretrain() does (vocabulary from the tokenizer)."""

    def pretrain(self, model_cfg, cfg, out_dir, strategy="default", export_at=()):
        summary = super().pretrain(model_cfg, cfg, out_dir, strategy, export_at)
        return {**summary, "model": {**to_dict(model_cfg), "vocabulary_size": 8071}}


def test_records_carry_the_model_config_the_run_had(tmp_path):
    run(tmp_path, only=["bert"], columns=["MRPC"], backend=ResolvingBackend(tmp_path / "m"))
    recs = records.load_records(tmp_path / "results", "ablation_nsp", "ci")
    assert len(recs) == 2 and {r["config"]["model"]["vocabulary_size"] for r in recs} == {8071}
    run(tmp_path, only=["bert"], columns=["MRPC", "SST-2"])  # a later run reuses the pretraining: still 8071
    recs = records.load_records(tmp_path / "results", "ablation_nsp", "ci")
    assert len(recs) == 3 and {r["config"]["model"]["vocabulary_size"] for r in recs} == {8071}


class StatisticsBackend(FakeBackend):
    """Fine-tuning that also reports what the real one reports for the tables' statistics: per-example
    rows (labels form: [correct, tp, fp, fn, tn]), the single-prediction flag, the majority baseline."""

    def finetune(self, cfg, init, out_dir, data_dir, strategy="default"):
        out = super().finetune(cfg, init, out_dir, data_dir, strategy)
        collapsed = cfg.task == "sst2"  # SST-2: predicts one class, accuracy 50 = the baseline
        rows = [[1, 1, 0, 0, 0], [1, 0, 0, 0, 1], [0, 0, 1, 0, 0], [1, 1, 0, 0, 0]]
        out["metrics"] = {"accuracy": 50.0 if collapsed else 75.0, "f1": 80.0}
        return {**out, "example_rows": {"form": "labels", "rows": rows}, "single_prediction": collapsed,
                "majority_baseline": {"accuracy": 50.0, "f1": 66.7}}


def test_records_carry_statistics_fields_and_pretraining_seeds(tmp_path):
    counts = run(tmp_path, only=["bert"], columns=["MRPC", "SST-2"], seeds=2, pretrain_seeds=2,
                 backend=StatisticsBackend(tmp_path / "m"))
    assert counts["ran"] == 2 + 2 * 2 * 2  # two pretrainings (seeds 0 and 1), each x 2 columns x 2 seeds
    recs = records.load_records(tmp_path / "results", "ablation_nsp", "ci")
    pre = sorted((r for r in recs if r["kind"] == "pretrain"), key=lambda r: r["pretrain_seed"])
    assert [r["pretrain_seed"] for r in pre] == [0, 1]
    assert [r["config"]["pretrain"]["seed"] for r in pre] == [0, 1] and pre[0]["variants"] == ["bert"]
    one_seed = make_plan("ablation_nsp", only=["bert"], columns=["MRPC", "SST-2"], seeds=2)
    assert pre[0]["pretrain_id"] == one_seed.variant_pretrain["bert"]  # seed 0 keeps its id
    ft = [r for r in recs if r["kind"] == "finetune"]
    assert sorted((r["pretrain_seed"], r["seed"]) for r in ft if r["column"] == "MRPC") == \
        [(0, 0), (0, 1), (1, 0), (1, 1)]
    mrpc = next(r for r in ft if r["column"] == "MRPC")  # Table 5 reports MRPC accuracy
    assert mrpc["example_rows"] == {"form": "labels", "metric": "accuracy",
                                    "rows": [[1, 1, 0, 0, 0], [1, 0, 0, 0, 1], [0, 0, 1, 0, 0], [1, 1, 0, 0, 0]]}
    assert mrpc["baselines"] == {"majority": 50.0} and mrpc["collapsed"] is False
    sst2 = next(r for r in ft if r["column"] == "SST-2")
    assert sst2["collapsed"] is True and sst2["collapse_reason"] == "predicts a single class"
    assert "example_rows" not in sst2["output"]  # lists stay out of the scalar `output`


def test_a_run_at_the_majority_baseline_is_flagged_collapsed():
    from bertbench.experiments.schema import Column
    from bertbench.results.records import column_statistics

    col = Column(name="RTE", task="rte", metric="accuracy")
    output = {"majority_baseline": {"accuracy": 52.7}, "single_prediction": False,
              "example_rows": {"form": "labels", "rows": [[1, 0, 0, 0, 1]]}}
    assert column_statistics(col, output, 52.7)["collapse_reason"] == "at or below the majority baseline"
    assert column_statistics(col, output, 53.0)["collapsed"] is False
    spearman = Column(name="STS-B", task="stsb", metric="spearman")  # labels rows cannot give spearman
    assert column_statistics(spearman, output, 10.0)["example_rows"] is None
    assert column_statistics(col, {}, 60.0) == {"example_rows": None, "baselines": {"majority": None},
                                             "collapsed": False, "collapse_reason": None}


def test_steps_sweep_fine_tunes_exported_encoders_and_plots(tmp_path):
    counts = run(tmp_path, "ablation_steps", seeds=2, columns=["MNLI-m"])
    assert counts["ran"] == 2 + 1 + (2 * 4 + 1) * 2 and counts["failed"] == 0  # + the no-pretraining row
    folder = tmp_path / "results" / "ablation_steps" / "ci"
    assert (folder / "steps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (folder / "table.md").read_text()
    assert "| MLM @ 50 |" in table and "| LTR @ 300 |" in table and "Appendix C.1" in table
    # the no-pretraining row is the reference: each row's Δ is the gain of its k steps over none
    assert re.search(r"\| No pre-training \(random init\) \|[^\n]*\| ref \|", table)
    assert re.search(r"\| MLM @ 50 \|[^\n]*\| [+-]\d+\.\d", table)


@pytest.mark.slow
def test_bad_arguments_fail_on_one_line_and_write_nothing(tmp_path):
    for args in (["--shard", "3/3"], ["--shard", "x"], ["--scale", "huge"], ["--only", "bertt"], ["--seeds", "0"]):
        proc = cli(tmp_path, *args)
        assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1, (args, proc.stderr)
        assert proc.stderr.startswith("bertbench run: error:")
    assert "did you mean 'bert'" in cli(tmp_path, "--only", "bertt").stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "runs").exists()
    with pytest.raises(BertbenchError, match="0 <= I < N"):
        parse_shard("-1/2")


def test_dry_run_lists_runs_and_cache_state(tmp_path):
    proc = cli(tmp_path, "--dry-run", "--only", "bert", "--column", "MRPC")
    assert proc.returncode == 0
    assert not (tmp_path / "results").exists()
    run(tmp_path, only=["bert"], columns=["MRPC"])
    proc = cli(tmp_path, "--dry-run", "--only", "bert,no_nsp", "--column", "MRPC")
    lines = proc.stdout.splitlines()
    assert sum(" cached " in line for line in lines) == 2 and sum(" to run " in line for line in lines) == 2
    total = next(line for line in lines if line.startswith("to run: "))
    assert total.startswith("to run: 1 pretraining (1,351,680 tokens), 1 fine-tuning; cached: 2 ")
    after = lines[lines.index(total) + 1:]
    assert after[0].startswith("no time estimate: this machine")  # the fake pretraining reports no FLOPs
    assert after[1].startswith("power (80% power")  # records exist: seeds needed
    assert "600 steps x batch 32 x seq 64/128 = 1,351,680 tokens" in proc.stdout  # 540x32x64 + 60x32x128


def test_dry_run_says_what_run_then_does(tmp_path):
    """One planner: with records but no checkpoints (a fresh clone of committed results), the dry run and
    the run agree run by run, in the same words (cached / reused / to run)."""
    run(tmp_path, only=["bert", "no_nsp"], columns=["MRPC"])
    shutil.rmtree(tmp_path / "runs")  # the records stay, the checkpoints are gone
    (tmp_path / "results" / "ablation_nsp" / "ci" / "records" / "pretrain-x.json").write_text("{}")  # noise
    plan = make_plan("ablation_nsp", only=["bert", "no_nsp"], columns=["MRPC", "SST-2"])
    recs = tmp_path / "results" / "ablation_nsp" / "ci" / "records"
    states = plan_states(plan, recs, tmp_path / "runs")
    assert sorted(states.values()) == ["cached"] * 2 + ["to run"] * 4  # 2 MRPC cached; 2 pretrain + 2 SST-2 to run
    proc = cli(tmp_path, "--dry-run", "--only", "bert,no_nsp", "--column", "MRPC,SST-2")
    for run_id, state in states.items():
        assert any(run_id in line and f" {state} " in line for line in proc.stdout.splitlines()), run_id
    counts = run(tmp_path, only=["bert", "no_nsp"], columns=["MRPC", "SST-2"])
    assert counts["cached"] == 2 and counts["ran"] == 4 and counts["reused"] == 0


def _wait_for(condition, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return True
        time.sleep(0.01)
    raise AssertionError("timed out waiting for the runner")


@pytest.mark.slow
def test_sigkill_anywhere_then_rerun_loses_nothing_and_repeats_nothing(tmp_path):
    plan = make_plan("ablation_nsp")
    first = plan.pretrains[0].id
    progress = tmp_path / "runs" / "pretrain" / first / "progress"
    # 1) killed in the middle of the first pretraining
    proc = cli(tmp_path, env={"FAKE_PRETRAIN_SLEEP": "2", "FAKE_SLEEP": "0.3"}, popen=True)
    _wait_for(lambda: progress.exists() and len(progress.read_text().split()) >= 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 3 <= len(progress.read_text().split()) < CHUNKS and (tmp_path / "runs" / "pretrain" / f"{first}.lock").exists()
    # 2) killed in the middle of a fine-tuning run (after some finished)
    proc = cli(tmp_path, env={"FAKE_PRETRAIN_SLEEP": "0.2", "FAKE_SLEEP": "0.3"}, popen=True)

    def mid_finetune():
        done, started = count(tmp_path / "m", "finetune", "done"), count(tmp_path / "m", "finetune", "start")
        return len(done) >= 2 and sum(started.values()) > sum(done.values())
    _wait_for(mid_finetune)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # 3) rerun to the end
    final = cli(tmp_path)
    assert final.returncode == 0, final.stderr
    check_complete(tmp_path, plan)
    starts = count(tmp_path / "m", "finetune", "start")
    assert sorted(starts.values())[-1] == 2 and sum(starts.values()) == len(plan.finetunes) + 1
    assert count(tmp_path / "m", "pretrain", "start")[first] == 2  # resumed once, finished once


@pytest.mark.slow
def test_two_concurrent_runners_share_work_without_duplicates(tmp_path):
    env = {"FAKE_PRETRAIN_SLEEP": "0.3", "FAKE_SLEEP": "0.05"}
    procs = [cli(tmp_path, env=env, popen=True) for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    check_complete(tmp_path, make_plan("ablation_nsp"))
    for p in (tmp_path / "results" / "ablation_nsp" / "ci" / "records").glob("*.json"):
        json.loads(p.read_text())
    assert not list((tmp_path / "runs").rglob("*.lock"))


def test_a_new_results_folder_remeasures_and_run_says_where_it_wrote(tmp_path, monkeypatch, capsys):
    from bertbench.cli import main

    monkeypatch.setenv("FAKE_MARKERS", str(tmp_path / "m"))
    args = ["run", "ablation_nsp", "--only", "bert", "--column", "MRPC", "--backend", FAKE]
    assert main([*args, "--results", str(tmp_path / "a")]) == 0
    first = capsys.readouterr().out
    assert "ran=2" in first and f"records: {tmp_path / 'a' / 'ablation_nsp' / 'ci' / 'records'}" in first
    assert f"checkpoints and run folders: {tmp_path / 'a' / 'runs'}" in first
    assert main([*args, "--results", str(tmp_path / "b")]) == 0  # a second fresh folder re-measures
    assert "ran=2 cached=0 reused=0" in capsys.readouterr().out
    assert main([*args, "--results", str(tmp_path / "b")]) == 0  # the same folder: nothing to redo
    again = capsys.readouterr().out
    assert "ran=0 cached=2" in again
    assert re.search(r"2 run\(s\) were not re-measured: .*2 at commit \w+ on \S+", again)


class HParamsBackend(FakeBackend):
    """Records what the runner hands to TensorBoard's HParams dashboard."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hparams = []

    def log_hparams(self, logdir, hparams, metrics):
        self.hparams.append((Path(logdir), hparams, metrics))


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_plan_progress_bar_and_hparams_per_fine_tuning_run(tmp_path, monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setenv("COLUMNS", "200")  # the bar is cut at the terminal's width (pytest-xdist workers: 80)
    backend = HParamsBackend(tmp_path / "m")
    run(tmp_path, only=["bert"], columns=["MRPC", "SST-2"], backend=backend)
    drawn = terminal.getvalue()
    assert "run 1/3: bert (pretrain, 600 steps)" in drawn and "run 3/3: bert / SST-2 (sst2) seed 0" in drawn
    assert "3/3 100%" in drawn and "ETA" in drawn
    assert sorted(h["column"] for _, h, _ in backend.hparams) == ["MRPC", "SST-2"]
    logdir, hparams, metrics = backend.hparams[0]
    assert logdir.parent.parent == tmp_path / "runs" / "finetune" and logdir.name == "logs"
    assert hparams == {"variant": "bert", "column": hparams["column"], "task": hparams["task"], "seed": 0,
                       "pretrain_seed": 0}
    assert list(metrics) == ["dev/accuracy"]
    terminal.truncate(0)
    run(tmp_path, only=["bert"], columns=["MRPC", "SST-2"], backend=backend, progress=False)
    assert terminal.getvalue() == "" and len(backend.hparams) == 2  # --quiet; cached runs log nothing new


@pytest.mark.slow
def test_runners_from_two_folders_on_one_results_folder_never_run_twice(tmp_path):
    """--results given absolute, --runs relative ("runs") from two working directories: two runs
    folders, one results folder. The second runner is refused on one line while the first one runs."""
    results = tmp_path / "results"
    args = [sys.executable, "-m", "bertbench", "run", "ablation_nsp", "--only", "bert", "--column", "MRPC",
            "--results", str(results), "--runs", "runs", "--backend", FAKE, "--quiet"]
    env = {**os.environ, "FAKE_MARKERS": str(tmp_path / "m"), "FAKE_PRETRAIN_SLEEP": "5", "FAKE_SLEEP": "2"}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first = subprocess.Popen(args, cwd=tmp_path / "a", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    _wait_for(lambda: count(tmp_path / "m", "pretrain", "start"))
    second = subprocess.run(args, cwd=tmp_path / "b", env=env, capture_output=True, text=True, timeout=120)
    assert first.wait(timeout=120) == 0, first.stderr.read()
    assert second.returncode == 2 and len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert f"--runs {tmp_path / 'a' / 'runs'}" in second.stderr and str(tmp_path / "b" / "runs") in second.stderr
    assert list(count(tmp_path / "m", "pretrain", "start").values()) == [1]
    assert list(count(tmp_path / "m", "finetune", "start").values()) == [1]
    assert not list((results / "ablation_nsp" / "ci").glob(".runner-*"))  # the claim ends with the runner
    again = subprocess.run(args, cwd=tmp_path / "b", env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "ran=0 cached=2" in again.stdout  # alone, another runs folder is fine


def test_a_results_claim_allows_other_shards_and_ignores_dead_runners(tmp_path):
    from bertbench.results.locks import ResultsClaim

    folder = tmp_path / "results" / "x" / "ci"
    with ResultsClaim(folder, tmp_path / "runs_a"):
        with ResultsClaim(folder, tmp_path / "sub" / ".." / "runs_a"):  # the same folder by another path
            pass
        with pytest.raises(BertbenchError, match="pass --runs .*runs_a to share its work"):
            ResultsClaim(folder, tmp_path / "runs_b").__enter__()
    with ResultsClaim(folder, tmp_path / "runs_a", "0/2"):
        with ResultsClaim(folder, tmp_path / "runs_b", "1/2"):  # other shards of one split share no run
            with pytest.raises(BertbenchError):
                ResultsClaim(folder, tmp_path / "runs_c", "1/2").__enter__()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = folder / ".runner-killed.json"  # a runner killed on this host, with another runs folder
    killed.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "runs": "/elsewhere",
                                  "runs_id": "another", "shard": None}))
    with ResultsClaim(folder, tmp_path / "runs_b"):
        assert not killed.exists()
    assert list(folder.glob(".runner-*")) == []


def test_where_written_names_records_made_outside_a_git_checkout(tmp_path):
    """A record written where git is absent has commit None: `run`'s closing lines still name it."""
    from bertbench.results.runner import where_written

    plan = make_plan("ablation_nsp")
    folder = records.records_dir(tmp_path, plan.experiment.name, plan.scale.name)
    folder.mkdir(parents=True)
    record = {"status": "ok", "run_id": plan.finetunes[0].id, "git": {"commit": None}, "hardware": {"hostname": None}}
    (folder / f"{plan.finetunes[0].id}.json").write_text(json.dumps(record))
    lines = where_written(plan, tmp_path, tmp_path / "runs", {"cached": 1})
    assert "1 at commit ? on ?" in lines[-1]


def test_a_sweep_run_and_a_plain_run_of_one_config_are_one_run(tmp_path):
    """ablation_steps' MLM/LTR runs (with exports) are ablation_nsp's full-sentences No NSP and LTR runs at
    small: exports are extra outputs, not another run. A finished run without a needed export is refused."""
    from bertbench.experiments.ids import content_id, pretrain_payload

    small = {name: expand(load_experiment(name), "small", baseline=True, data="external")
             for name in ("ablation_nsp", "ablation_steps")}
    for sweep, plain in (("mlm@20000", "no_nsp_full_sentences"), ("ltr@20000", "ltr_no_nsp")):
        swept, = (p for p in small["ablation_steps"].pretrains if p.id == small["ablation_steps"].variant_pretrain[sweep])
        ran, = (p for p in small["ablation_nsp"].pretrains if p.id == small["ablation_nsp"].variant_pretrain[plain])
        assert swept.export_at and not ran.export_at
        # the same config at the sweep's length is the same run (ablation_steps at small runs longer than
        # ablation_nsp until the scale is set from its curve: experiments/_scales.toml)
        longer = dataclasses.replace(ran.pretrain, num_steps=swept.pretrain.num_steps)
        assert content_id(pretrain_payload("pretrain", ran.model, longer, swept.export_at)) == swept.id
    run(tmp_path, "ablation_steps", seeds=1, only=["mlm"], columns=["MNLI-m"])
    pre = make_plan("ablation_steps", only=["mlm"]).pretrains[0]
    shutil.rmtree(tmp_path / "results")  # records gone: the finished run is reused, and must have its exports
    shutil.rmtree(tmp_path / "runs" / "pretrain" / pre.id / "encoder_step100")
    with pytest.raises(BertbenchError, match=r"past step 100 without the encoder export .* remove "):
        run(tmp_path, "ablation_steps", seeds=1, only=["mlm"], columns=["MNLI-m"])


def test_missing_exports_names_the_first_passed_step_without_its_export(tmp_path):
    from bertbench.pretraining.loop import missing_exports

    (tmp_path / "encoder_step10").mkdir()
    missing_exports(tmp_path, (10, 20), 15)  # 20 not reached yet: the resumed run will export it
    with pytest.raises(BertbenchError, match="past step 20"):
        missing_exports(tmp_path, (10, 20), 20)


def test_the_commit_is_read_before_the_first_run_not_when_its_record_is_written(tmp_path):
    """A run lasts hours; a commit made meanwhile must not be credited with code the process never loaded."""
    from bertbench.results.provenance import git_info

    seen = []

    class Watching(FakeBackend):
        def pretrain(self, *args, **kwargs):
            seen.append(git_info.cache_info().currsize)
            return super().pretrain(*args, **kwargs)

    git_info.cache_clear()
    run(tmp_path, only=["bert"], columns=["MRPC"], backend=Watching(tmp_path / "m"))
    assert seen == [1]
