"""Staged pretraining: a run with encoder exports (ablation_steps' k) is pretrained export by export, and
each export's fine-tuning runs go as soon as it exists.

A 20,000-step sweep then fills in from its smallest k: a sitting that ends mid-run leaves finished cells
behind (records and tables from them), not only a checkpoint. Each stop checkpoints, and the next stage
resumes from there and ends where an uninterrupted run would (pretraining.loop.pretrain's `stop_at`), so
staging changes when runs happen, never what they compute. The final stage is the runner's ordinary
pretraining (its record, its wall time over every stage: pretraining.checkpoints.TimeLedger).

A backend takes part by having `pretrain_until(model_cfg, pretrain_cfg, out_dir, strategy, export_at, step)`;
one without it pretrains in one go, as before.
"""

import json

from bertbench.errors import BertbenchError
from bertbench.model.checkpoint import CONFIG_FILE
from bertbench.model.precision import resolve_precision
from bertbench.results import records
from bertbench.results.locks import RunLock


def stops(pre):
    """The export steps before the end of pretraining run `pre`: where a staged run stops."""
    if pre.kind != "pretrain" or pre.reference:
        return []
    return sorted(k for k in pre.export_at if k < pre.pretrain.num_steps)


def pretrain_in_stages(runner, pre, todo, cfg):
    """Pretrain `pre` (materialized config `cfg`) to each export some of `todo` fine-tune from, and run
    those fine-tunings after each stop. False when another runner holds the pretraining: the exports it
    has written by then are fine-tuned here, the rest when the runner comes back (it polls)."""
    out_dir = runner.pretrain_dir(pre.id)
    if not hasattr(runner.backend, "pretrain_until") or records.read_ok(out_dir / "run.json"):
        return True
    for step in stops(pre):
        waiting = [f for f in todo if f.init == f"encoder_step{step}" and f.id not in runner.finished]
        export = out_dir / f"encoder_step{step}"
        if not waiting:
            continue
        if not export.is_dir():
            with RunLock(runner.runs / "pretrain" / f"{pre.id}.lock") as owned:
                if not owned:
                    return False
                if not export.is_dir():  # (written by another runner while this one waited)
                    runner.announce(f"pretraining {pre.id}: {', '.join(runner.plan.variants_of(pre.id))} to step "
                                     f"{step:,} of {pre.pretrain.num_steps:,}, then its fine-tuning runs")
                    out_dir.mkdir(parents=True, exist_ok=True)
                    try:
                        runner.backend.pretrain_until(pre.model, cfg, out_dir, runner.strategy, pre.export_at, step)
                    except Exception:  # noqa: BLE001 - a diverged or failed run: the ordinary path records it
                        return True
        # the model the export was built with (the tokenizer's vocabulary size, causal attention for LTR)
        runner.models.setdefault(pre.id, json.loads((export / CONFIG_FILE).read_text(encoding="utf-8"))["model"])
        runner.finetune_runs(waiting)
    return True


def check_precision(plan, records_dir, runs):
    """Refuse, before anything runs, to start a sweep's pretraining afresh in another precision than the
    one its exports' fine-tuning records say they were pretrained in (`encoder_pretraining`): its id would
    then stand for two computations. (Seen: a staged bf16 run whose checkpoints were lost with its machine,
    restarted where "auto" is float32.) A run that resumes keeps its own precision (pretraining.checkpoints
    .run_precision); records from before the field say nothing and are not checked."""
    for pre in (p for p in plan.pretrains if stops(p)):
        out_dir = runs / "pretrain" / pre.id
        if records.read_ok(records_dir / f"pretrain-{pre.id}.json") or records.read_ok(out_dir / "run.json") \
                or any((out_dir / "ckpt").glob("ckpt-*.index")):
            continue  # finished, or resuming from its own checkpoint
        before = set()
        for ft in (f for f in plan.finetunes if f.pretrain_id == pre.id):
            try:
                record = records.read_ok(records_dir / f"{ft.id}.json") or {}
            except BertbenchError:  # a damaged record is rerun, and `table` reports it
                continue
            before.add((record.get("encoder_pretraining") or {}).get("precision"))
        before.discard(None)
        here = resolve_precision(pre.pretrain.precision) if before else None
        if before and before != {here}:
            raise BertbenchError(
                f"pretraining {pre.id} would start afresh in {here} (pretrain.precision="
                f"{pre.pretrain.precision!r} here), but its exports' fine-tuning records were pretrained in "
                f"{', '.join(sorted(before))}: one run id would stand for two computations; run it on a machine "
                f"where it resolves to {', '.join(sorted(before))}, or set pretrain.precision (a new run id)")
