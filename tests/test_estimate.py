"""The dry run's wall-time estimate comes from runs this machine recorded (worked by hand)."""

import dataclasses
import json

from bertbench.pretraining.accounting import estimate_flops
from bertbench.results.estimate import estimate_lines
from bertbench.results.runner import make_plan, plan_states


def _write(folder, name, record):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(record))


def test_estimate_scales_measured_seconds_per_flop_and_fine_tuning_medians(tmp_path):
    plan = make_plan("ablation_nsp", only=["bert"], columns=["MRPC", "SST-2"])
    pre = plan.pretrains[0]
    flops = estimate_flops(pre.model, pre.pretrain)
    recs = tmp_path / "results" / "other_experiment" / "ci" / "records"
    host = {"hardware": {"hostname": "box", "cpu_isa": "avx2"}, "status": "ok"}
    _write(recs, "p1", {**host, "kind": "pretrain", "wall_time_s": 120.0, "output": {"estimated_flops": flops}})
    _write(recs, "p2", {**host, "kind": "pretrain", "wall_time_s": 60.0, "output": {"estimated_flops": flops / 2}})
    for i, seconds in enumerate((10.0, 30.0, 20.0)):  # MRPC at the same train cap: median 20 s
        _write(recs, f"f{i}", {**host, "kind": "finetune", "task": "mrpc", "wall_time_s": seconds,
                               "config": {"finetune": {"max_train_examples": 1000}}})
    _write(recs, "elsewhere", {"hardware": {"hostname": "other"}, "status": "ok", "kind": "finetune",
                               "task": "sst2", "wall_time_s": 999.0})
    states = plan_states(plan, tmp_path / "none", tmp_path / "runs")
    # pretraining: 120 s per `flops` (both runs say so); MRPC 20 s; SST-2 has no run of its own: all runs' median 20 s
    (line,) = estimate_lines(plan, states, tmp_path / "results", host="box", isa="avx2")
    assert line == ("estimated wall time on this machine (box, avx2): ~3 min: pretraining ~2 min "
                    "(1 run, from 2 measured), fine-tuning ~40 s (2 runs)")
    (none,) = estimate_lines(plan, states, tmp_path / "results", host="new-machine", isa="avx2")
    assert none.startswith("no time estimate: this machine (new-machine, avx2) has not recorded a pretraining run")


def test_estimate_matches_the_cpu_instruction_set_not_only_the_host_name(tmp_path):
    """Seen here: two "AMD EPYC" machines named "vm", with and without avx512_bf16, 4x apart in pretraining
    speed; an estimate from the other one's records was 3x short. Records name their CPU's instruction set;
    those that do not (older ones) count only where none that do match, and the line says so."""
    from bertbench.results.provenance import cpu_isa, hardware

    assert cpu_isa({"avx2", "avx512f", "avx512_bf16"}) == "avx512_bf16" and cpu_isa({"sse4_2", "avx2"}) == "avx2"
    assert cpu_isa(set()) == "other" and hardware()["cpu_isa"] in ("amx_bf16", "avx512_bf16", "avx512f", "avx2", "other")
    plan = make_plan("ablation_nsp", only=["bert"], columns=["MRPC"])
    pre = plan.pretrains[0]
    flops = estimate_flops(pre.model, pre.pretrain)
    recs = tmp_path / "results" / "x" / "ci" / "records"
    states = plan_states(plan, tmp_path / "none", tmp_path / "runs")

    def run(name, isa, seconds):
        hw = {"hostname": "vm", **({"cpu_isa": isa} if isa else {})}
        _write(recs, f"p_{name}", {"hardware": hw, "status": "ok", "kind": "pretrain", "wall_time_s": seconds,
                                   "output": {"estimated_flops": flops}})
        _write(recs, f"f_{name}", {"hardware": hw, "status": "ok", "kind": "finetune", "task": "mrpc",
                                   "wall_time_s": seconds, "config": {"finetune": {"max_train_examples": 1000}}})

    run("old", None, 60.0)  # a record from before the field: unknown CPU
    (line,) = estimate_lines(plan, states, tmp_path / "results", host="vm", isa="avx2")
    assert "~2 min: pretraining ~60 s" in line and "do not name their CPU's instruction set" in line
    run("bf16", "avx512_bf16", 30.0)  # another CPU's: never counted for this one
    (line,) = estimate_lines(plan, states, tmp_path / "results", host="vm", isa="avx2")
    assert "pretraining ~60 s" in line and "do not name" in line
    run("here", "avx2", 120.0)  # this CPU's own: the unnamed ones no longer count
    (line,) = estimate_lines(plan, states, tmp_path / "results", host="vm", isa="avx2")
    assert line == ("estimated wall time on this machine (vm, avx2): ~4 min: pretraining ~2 min (1 run, from 1 "
                    "measured), fine-tuning ~2 min (1 run)")
    (line,) = estimate_lines(plan, states, tmp_path / "results", host="vm", isa="avx512_bf16")
    assert "pretraining ~30 s (1 run, from 1 measured)" in line and "do not name" not in line


def test_estimate_prefers_runs_of_the_same_model_size_and_precision(tmp_path):
    plan = make_plan("ablation_nsp", only=["bert"], columns=["MRPC"])
    pre = plan.pretrains[0]  # ci: tiny (L2 H128), float32
    flops = estimate_flops(pre.model, pre.pretrain)
    recs = tmp_path / "results" / "x" / "ci" / "records"
    host = {"hardware": {"hostname": "box"}, "status": "ok", "kind": "pretrain"}
    tiny, mini = {"num_layers": 2, "hidden_dim": 128}, {"num_layers": 4, "hidden_dim": 256}
    _write(recs, "same", {**host, "wall_time_s": 60.0, "output": {"estimated_flops": flops, "precision": "float32"},
                          "config": {"model": tiny}})
    _write(recs, "bf16", {**host, "wall_time_s": 30.0, "output": {"estimated_flops": flops,
                                                                  "precision": "mixed_bfloat16"}, "config": {"model": tiny}})
    _write(recs, "mini", {**host, "wall_time_s": 6.0, "output": {"estimated_flops": flops, "precision": "float32"},
                          "config": {"model": mini}})
    _write(recs, "ft", {**host, "kind": "finetune", "task": "mrpc", "wall_time_s": 30.0,
                        "config": {"finetune": {"max_train_examples": 1000}, "model": tiny}})
    states = plan_states(plan, tmp_path / "none", tmp_path / "runs")
    (line,) = estimate_lines(plan, states, tmp_path / "results", host="box")
    assert "pretraining ~60 s (1 run, from 1 measured)" in line  # the tiny float32 run, not the median of 3 (30 s)
    (tmp_path / "results" / "x" / "ci" / "records" / "same.json").unlink()
    (line,) = estimate_lines(plan, states, tmp_path / "results", host="box")
    assert "pretraining ~30 s (1 run, from 1 measured)" in line  # same size, other precision before other sizes


def test_fine_tuning_another_model_size_scales_by_its_matmul_flops(tmp_path):
    """Only tiny (L2 H128) runs recorded: a fine-tuning run of L4 H256 is estimated at 8x
    their median (L x H^2: 4 x 256^2 / (2 x 128^2) = 8); one of the same size is taken as it is."""
    plan = make_plan("ablation_nsp", only=["no_pretraining"], columns=["MRPC"])  # random init: no pretraining
    recs = tmp_path / "results" / "x" / "ci" / "records"
    host = {"hardware": {"hostname": "box"}, "status": "ok", "kind": "finetune", "task": "mrpc"}
    tiny, mini = {"num_layers": 2, "hidden_dim": 128}, {"num_layers": 4, "hidden_dim": 256}
    _write(recs, "ft", {**host, "wall_time_s": 10.0, "output": {"precision": "float32"},
                        "config": {"finetune": {"max_train_examples": 1000}, "model": tiny}})
    states = plan_states(plan, tmp_path / "none", tmp_path / "runs")
    pre = plan.pretrains[0]
    bigger = dataclasses.replace(plan, pretrains=(dataclasses.replace(
        pre, model=dataclasses.replace(pre.model, num_layers=4, hidden_dim=256)),))
    (line,) = estimate_lines(bigger, states, tmp_path / "results", host="box")
    assert "fine-tuning ~80 s (1 run)" in line
    _write(recs, "ft2", {**host, "wall_time_s": 50.0, "output": {"precision": "float32"},
                         "config": {"finetune": {"max_train_examples": 1000}, "model": mini}})
    (line,) = estimate_lines(bigger, states, tmp_path / "results", host="box")
    assert "fine-tuning ~50 s (1 run)" in line


def test_a_resumed_run_counts_all_its_steps_and_archived_records_count(tmp_path):
    """A record that only has its last process's time (resumed at step 1,500 of 2,000, trained 500 steps in
    100 s) stands for 400 s, not 100 s; records under results/archive/... are this machine's history too."""
    plan = make_plan("ablation_nsp", only=["bert"], columns=["MRPC"])
    flops = estimate_flops(plan.pretrains[0].model, plan.pretrains[0].pretrain)
    recs = tmp_path / "results" / "archive" / "v1" / "x" / "ci" / "records"
    _write(recs, "resumed", {"hardware": {"hostname": "box"}, "status": "ok", "kind": "pretrain", "wall_time_s": 130.0,
                             "output": {"estimated_flops": flops, "steps": 2000, "resumed_from_step": 1500,
                                        "train_wall_time_s": 100.0}})
    _write(recs, "ft", {"hardware": {"hostname": "box"}, "status": "ok", "kind": "finetune", "task": "mrpc",
                        "wall_time_s": 30.0, "config": {"finetune": {"max_train_examples": 1000}}})
    states = plan_states(plan, tmp_path / "none", tmp_path / "runs")
    (line,) = estimate_lines(plan, states, tmp_path / "results", host="box")
    assert "pretraining ~7 min (1 run, from 1 measured)" in line  # 400 s
