"""Staged pretraining (results/stages.py): a sweep's run is pretrained export by export with each export's
fine-tuning runs in between, computes exactly what one uninterrupted run computes, and its record's wall
time covers every stage (pretraining.checkpoints.TimeLedger)."""

import json
import time
from pathlib import Path

import pytest
from helpers import FakeBackend, StagedFake, pretrain_outcome

from bertbench.config import PretrainConfig, model_preset, to_dict
from bertbench.pretraining.checkpoints import TIME_FILE, TimeLedger
from bertbench.results import records
from bertbench.results.runner import make_plan, run_experiment


def weights(encoder_dir):
    import h5py

    found = []
    with h5py.File(encoder_dir / "encoder.weights.h5") as f:
        f.visititems(lambda name, item: found.append((name, item[()].tobytes())) if isinstance(item, h5py.Dataset)
                     else None)
    return found


def run_steps(tmp_path, backend):
    return run_experiment("ablation_steps", "ci", results=tmp_path / "results", runs=tmp_path / "runs",
                          backend=backend, out=lambda *_: None, seeds=1, only=["mlm"], columns=["MNLI-m"])


def test_each_export_is_fine_tuned_as_soon_as_it_exists(tmp_path):
    backend = StagedFake(tmp_path / "m")
    counts = run_steps(tmp_path, backend)
    assert counts["failed"] == 0 and counts["skipped"] == 0
    assert backend.order == ["until 50", "finetune encoder_step50", "until 100", "finetune encoder_step100",
                             "until 200", "finetune encoder_step200", "pretrain", "finetune encoder"]
    folder = tmp_path / "results" / "ablation_steps" / "ci" / "records"
    recs = {r["run_id"]: r for r in map(records.read_json, folder.glob("*.json")) if r["kind"] == "finetune"}
    staged = [r for r in recs.values() if r["config"]["init"] == "encoder_step50"]
    # a staged export's record names the model the export was built with (not the planned config)
    assert len(staged) == 1 and staged[0]["config"]["model"]["vocabulary_size"] == 1234
    pre = make_plan("ablation_steps", only=["mlm"]).pretrains[0]
    assert records.read_json(folder / f"pretrain-{pre.id}.json")["wall_time_s"] == 42.0  # all stages
    again = StagedFake(tmp_path / "m")
    assert run_steps(tmp_path, again)["ran"] == 0 and again.order == []


def test_a_backend_without_pretrain_until_pretrains_in_one_go(tmp_path):
    backend = FakeBackend(tmp_path / "m")
    run_steps(tmp_path, backend)
    kinds = [kind for kind, _ in backend.calls]
    assert kinds[:1] == ["pretrain"] and kinds.count("pretrain") == 1 and kinds[1:5] == ["finetune"] * 4


def test_the_time_ledger_adds_a_resume_to_its_checkpoint_and_knows_when_it_cannot(tmp_path):
    first = TimeLedger(tmp_path, 0, time.perf_counter() - 10.0)
    first.mark(5)
    first.mark(10)
    marks = json.loads((tmp_path / TIME_FILE).read_text())
    assert set(marks) == {"5", "10"} and 10.0 <= marks["5"] <= marks["10"]
    resumed = TimeLedger(tmp_path, 5, time.perf_counter() - 3.0)  # the kill lost the work after step 5
    assert marks["5"] + 3.0 <= resumed.total() < marks["10"] + 3.0
    resumed.mark(10)  # step 10 again: its mark is this process's, not the lost one's
    assert json.loads((tmp_path / TIME_FILE).read_text())["10"] < marks["10"] + 3.0
    unknown = TimeLedger(tmp_path, 7, time.perf_counter())  # a checkpoint with no mark (older code)
    unknown.mark(8)
    assert unknown.total() is None and "8" not in json.loads((tmp_path / TIME_FILE).read_text())


@pytest.mark.slow
def test_a_staged_pretraining_computes_what_one_run_computes(tmp_path, monkeypatch):
    """Stopping at an export that is not a checkpoint step, fine-tuning that export in the same process (as
    the runner does), then resuming, ends with the loss curve, held-out metrics, exports and weights of an
    uninterrupted run, bit for bit."""
    from bertbench.config import FinetuneConfig
    from bertbench.finetuning.loop import finetune
    from bertbench.pretraining.loop import pretrain

    monkeypatch.setenv("BERTBENCH_CACHE", str(tmp_path / "cache"))
    model = model_preset("tiny", num_layers=1, hidden_dim=32, num_heads=2)
    cfg = PretrainConfig(num_steps=20, warmup_steps=2, batch_size=8, max_seq_length=32, log_every=5,
                         checkpoint_every=10, heldout_fraction=0.05, learning_rate=1e-3, precision="float32")
    paused = pretrain(model, cfg, tmp_path / "staged", export_at=(15,), verbose=False, stop_at=15)
    assert paused["status"] == "paused" and paused["steps"] == 15 and paused["model"]["num_layers"] == 1
    staged = tmp_path / "staged"
    assert (staged / "encoder_step15").is_dir() and (staged / "ckpt" / "ckpt-15.index").is_file()
    assert not (staged / "summary.json").exists() and not (staged / "encoder").exists()
    finetune(FinetuneConfig(task="mrpc", epochs=1.0, batch_size=8, max_seq_length=32, max_train_examples=16,
                            max_eval_examples=16, seed=3), str(staged / "encoder_step15"), tmp_path / "ft")
    done = pretrain(model, cfg, staged, export_at=(15,), verbose=False)
    pretrain(model, cfg, tmp_path / "straight", export_at=(15,), verbose=False)
    assert pretrain_outcome(staged) == pretrain_outcome(tmp_path / "straight")
    assert weights(staged / "encoder_step15") == weights(tmp_path / "straight" / "encoder_step15")
    assert (staged / "encoder_step15" / "heldout.json").read_text() == \
        (tmp_path / "straight" / "encoder_step15" / "heldout.json").read_text()
    marks = json.loads((staged / TIME_FILE).read_text())
    assert done["resumed_from_step"] == 15 and set(marks) == {"10", "15", "20"}
    assert done["wall_time_total_s"] >= marks["15"] + done["train_wall_time_s"]


def test_a_lost_staged_run_is_not_restarted_in_another_precision(tmp_path, monkeypatch):
    """A sweep whose runs folder was lost (checkpoints gone, its exports' fine-tuning records kept) is
    refused, before anything runs, where its pretraining would start afresh in another precision than the
    records say those exports were pretrained in; in the same precision it restarts."""
    import shutil

    from bertbench.errors import BertbenchError
    from bertbench.results import stages

    run_steps(tmp_path, StagedFake(tmp_path / "m"))
    folder = tmp_path / "results" / "ablation_steps" / "ci" / "records"
    pre = make_plan("ablation_steps", only=["mlm"]).pretrains[0]
    (folder / f"pretrain-{pre.id}.json").unlink()  # the run had not ended ...
    for path in folder.glob("*.json"):
        if records.read_json(path).get("config", {}).get("init") in ("encoder_step200", "encoder"):
            path.unlink()
    shutil.rmtree(tmp_path / "runs")  # ... and its folder is gone
    assert {records.read_json(p).get("encoder_pretraining", {}).get("precision") for p in folder.glob("*.json")
            if records.read_json(p)["kind"] == "finetune" and records.read_json(p)["pretrain_id"] == pre.id} == {"float32"}
    monkeypatch.setattr(stages, "resolve_precision", lambda name, strategy=None: "mixed_bfloat16")
    refused = StagedFake(tmp_path / "m2")
    with pytest.raises(BertbenchError, match=f"pretraining {pre.id} would start afresh in mixed_bfloat16 .* "
                                             f"pretrained in float32: one run id would stand for two computations"):
        run_steps(tmp_path, refused)
    assert refused.order == [] and not (tmp_path / "runs").exists()
    monkeypatch.setattr(stages, "resolve_precision", lambda name, strategy=None: "float32")
    again = StagedFake(tmp_path / "m3")
    assert run_steps(tmp_path, again)["failed"] == 0
    assert again.order == ["until 200", "finetune encoder_step200", "pretrain", "finetune encoder"]
