"""Running an experiment's plan (the `run` command's work): caching, resume, locks, records.

Runs live under `runs/pretrain/<id>/` and `runs/finetune/<id>/` (id = content hash of the resolved
config, see experiments/ids.py), each with a runner record (`run.json`) once finished: a pretraining
shared by variants or experiments runs once, a rerun skips what is done, an interrupted pretraining
resumes from its own checkpoints, an interrupted fine-tuning reruns. Results are one JSON record per
run under `results/<experiment>/<scale>/records/` (schema: results/README.md).

The work itself goes through a Backend (`pretrain`, `random_init`, `finetune`), so tests and other
executors can replace it (`--backend module:Name` or `path/to/file.py:Name`).
"""

from collections import Counter
import dataclasses
import shutil
import time
import traceback
from pathlib import Path

from bertbench import files
from bertbench.backend import Backend
from bertbench.config import to_dict
from bertbench.errors import BertbenchError, unknown_name
from bertbench.experiments.plan import cell_key, expand
from bertbench.experiments.reference import describe as describe_reference, reference_fields
from bertbench.experiments.schema import experiments_dir, load_experiment, load_scales
from bertbench.experiments.shards import parse_shard, shard_plan
from bertbench.pretraining.accounting import pretrain_tokens
from bertbench.pretraining.loop import missing_exports
from bertbench.resources import resolve_data_dir
from bertbench.progress import Progress
from bertbench.results import records
from bertbench.results.estimate import estimate_lines
from bertbench.results.locks import ResultsClaim, RunLock, remove_dead_temporaries
from bertbench.results.stages import check_precision, pretrain_in_stages
from bertbench.results.provenance import git_info, provenance
from bertbench.results.states import DONE, chosen_points, finetune_state, plan_states, pretrain_state, undecided_candidates
from bertbench.results.tables import write_tables


# ---------------------------------------------------------------------------------------------
# Execution


def data_kind(scale, data_dir):
    """'sample' or 'external': which data the fine-tuning runs read (in their ids; not the path)."""
    return "external" if data_dir or scale.data == "required" else "sample"


def data_root(scale, data_dir):
    """The data root of a plan's runs (bertbench.resources decides): --data-dir, else the bundled
    sample for a "sample" scale (whatever $BERTBENCH_DATA says), else $BERTBENCH_DATA, else an error."""
    required = scale.data == "required"
    return resolve_data_dir(data_dir, from_env=required, required_by=f"scale '{scale.name}'" if required else None)


def _materialize(cfg, data_dir):
    """Replace '${data}' in the corpus/vocab paths by the data directory (kept out of run ids)."""
    if data_dir is None and "${data}" in cfg.corpus + cfg.vocab:
        raise BertbenchError("this run reads ${data} paths: pass --data-dir DIR")
    return dataclasses.replace(cfg, corpus=cfg.corpus.replace("${data}", str(data_dir)),
                               vocab=cfg.vocab.replace("${data}", str(data_dir)))


def numeric_leaves(data, prefix=""):
    """{'heldout': {'lm_perplexity': 4.2}} -> {'heldout.lm_perplexity': 4.2} (numbers only)."""
    out = {}
    for key, value in (data or {}).items():
        if isinstance(value, dict):
            out.update(numeric_leaves(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = value
    return out


class Runner:
    """Runs one plan; `run()` returns counts {'ran', 'cached', 'reused', 'failed', 'skipped', 'unchosen'}
    ('unchosen': grid-selection candidates at a point their cell's selection runs did not choose)."""

    def __init__(self, plan, results="results", runs="runs", backend=None, strategy="default", data_dir=None,
                 out=print, poll_s=1.0, progress=None, shard=None):
        self.plan, self.results, self.runs = plan, Path(results), Path(runs)
        # "I/N" when the plan is one shard: other shards may fill the results from other runs folders
        self.shard = "{}/{}".format(*parse_shard(shard)) if shard else None
        self.progress = progress  # the plan's bar: None = on a terminal only, False = never (--quiet)
        self.bar = Progress(0, enabled=False)
        self.backend = backend or Backend()
        git_info()  # the code this process loaded, read now (cached), not when a record is written hours later
        self.strategy, self.data_dir, self.out, self.poll_s = strategy, data_dir, out, poll_s
        self.records = records.records_dir(results, plan.experiment.name, plan.scale.name)
        self.counts = dict(ran=0, cached=0, reused=0, failed=0, skipped=0, unchosen=0)
        self.models = {}  # pretrain id -> the model config the run really had (resolved by the backend)
        self.finished = set()  # run ids settled in this process (done, cached, failed or skipped)
        self.columns = {c.name: c for c in plan.experiment.columns}
        self.variants = {v.name: v for v in plan.variants}

    def pretrain_dir(self, pid):
        return self.runs / "pretrain" / pid

    def run(self):
        check_precision(self.plan, self.records, self.runs)  # before anything runs
        pending = list(self.plan.pretrains)
        total = len(self.plan.pretrains) + len(self.plan.finetunes)
        with ResultsClaim(self.records.parent, self.runs, self.shard) as claim, \
                Progress(total, label="run", unit="run", enabled=self.progress) as self.bar:
            if claim.alone:  # nobody else writes here: what a killed runner left half-written goes
                remove_dead_temporaries(self.records.parent)
            said = None
            while pending:
                waiting = [p for p in pending if not self._group(p)]
                if len(waiting) == len(pending):
                    if said != len(waiting):  # once per change, not once per poll
                        self.out(f"waiting for {len(waiting)} run(s) locked by another runner ...")
                        said = len(waiting)
                    time.sleep(self.poll_s)
                pending = waiting
        return self.counts

    def _settled(self, run_id):
        """Mark a run settled (done, cached, reused, failed or skipped) and move the plan's bar."""
        if run_id not in self.finished:
            self.finished.add(run_id)
            self.bar.update(1)

    def announce(self, text):
        """Say what runs now: a line of output, and the bar's label ('run 7/23: ...')."""
        self.out(text)
        self.bar.set_label(f"run {len(self.finished) + 1}/{self.bar.total}: " + text.split(": ", 1)[-1])

    def _group(self, pre):
        """Finish pretraining `pre` and its fine-tuning runs; False while one is locked elsewhere."""
        members = [f for f in self.plan.finetunes if f.pretrain_id == pre.id and f.id not in self.finished]
        chosen = chosen_points(self.plan, self.records)
        states = {f.id: finetune_state(f, self.records, self.runs, chosen) for f in members}
        todo = [f for f in members if states[f.id] not in DONE]
        for f in members:
            if states[f.id] in DONE:
                self._settled(f.id)
                self.counts[states[f.id]] += 1
        if pre.id not in self.finished:
            if todo and not pretrain_in_stages(self, pre, todo, _materialize(pre.pretrain, self.data_dir)):
                return False  # another runner pretrains it: its exports are fine-tuned as they appear
            state = self._pretrain(pre, needed=bool(todo))
            if state == "locked":
                return False
            self._settled(pre.id)
            if state == "failed":
                self.counts["skipped"] += len(todo)
                for f in todo:
                    self._settled(f.id)
                return True
        self.finetune_runs(todo)  # (an export's runs may have gone in stages already)
        return all(f.id in self.finished for f in todo)

    def finetune_runs(self, fts):
        """Run (or reuse) each fine-tuning of `fts` not settled yet, grid-selection candidates last and
        only at the point their cell's selection runs chose (the others are settled 'unchosen'); a run
        locked by another runner, or a candidate whose selection is not complete, stays unsettled for a
        later pass."""
        for ft in fts:
            if ft.role != "candidate" and ft.id not in self.finished and self._finetune(ft) != "locked":
                self._settled(ft.id)
        candidates = [f for f in fts if f.role == "candidate" and f.id not in self.finished]
        chosen = chosen_points(self.plan, self.records) if candidates else {}
        for ft in candidates:
            point = chosen.get(cell_key(ft))
            if point is not None and point != ft.grid:
                self.counts["unchosen"] += 1
                self._settled(ft.id)
            elif point is not None and self._finetune(ft) != "locked":
                self._settled(ft.id)

    def _locked_run(self, kind, run_id, run_path, execute):
        """('done', record) from cache or by executing under the run's lock; ('locked', None) if another
        runner holds it; ('failed', record) on an exception (a BertbenchError aborts the command)."""
        record = records.read_ok(run_path)
        if record:
            self.counts["reused"] += 1
            return "reused", record
        with RunLock(self.runs / kind / f"{run_id}.lock") as owned:
            if not owned:
                return "locked", None
            record = records.read_ok(run_path)  # finished by another runner while we looked
            if record:
                self.counts["reused"] += 1
                return "reused", record
            if run_path.parent.is_dir():  # ours alone under the lock: a killed attempt's half-written files go
                remove_dead_temporaries(run_path.parent)
            started, start = records.now_iso(), time.perf_counter()
            try:
                output = execute()
                status, error = "ok", None
            except BertbenchError:
                raise
            except Exception as err:  # a bug or a diverged run: record it, go on with the others
                output, status, error = {}, "failed", f"{type(err).__name__}: {err}"
                run_path.parent.mkdir(parents=True, exist_ok=True)
                (run_path.parent / "error.txt").write_text(traceback.format_exc())
                self.out(f"FAILED {kind} {run_id}: {error} (traceback: {run_path.parent / 'error.txt'})")
            record = {"schema_version": records.SCHEMA_VERSION, "kind": kind, "run_id": run_id, "status": status,
                      "error": error, "started": started, "finished": records.now_iso(),
                      "wall_time_s": records.elapsed(start), "strategy": self.strategy,
                      "output": output, **provenance()}
            files.write_json_atomic(run_path, record)
            self.counts["ran" if status == "ok" else "failed"] += 1
            return ("done" if status == "ok" else "failed"), record

    def _pretrain(self, pre, needed):
        result_path = self.records / f"pretrain-{pre.id}.json"
        if pretrain_state(pre, needed, self.records, self.runs) == "cached":
            self.counts["cached"] += 1
            return "cached"
        out_dir = self.pretrain_dir(pre.id)

        def execute():
            what = (describe_reference(pre.reference) if pre.reference
                    else f"{pre.kind}, {pre.pretrain.num_steps:,} steps")
            self.announce(f"pretraining {pre.id}: {', '.join(self.plan.variants_of(pre.id))} ({what}) -> {out_dir}")
            out_dir.mkdir(parents=True, exist_ok=True)
            if pre.reference:
                return self.backend.reference(pre.reference, out_dir)
            cfg = _materialize(pre.pretrain, self.data_dir)
            if pre.kind == "random_init":
                return self.backend.random_init(pre.model, cfg, out_dir)
            return self.backend.pretrain(pre.model, cfg, out_dir, strategy=self.strategy, export_at=pre.export_at)

        state, run = self._locked_run("pretrain", pre.id, out_dir / "run.json", execute)
        if state == "locked":
            return state
        if state == "reused" and pre.export_at and run["status"] == "ok":  # run by a plan without exports?
            missing_exports(out_dir, pre.export_at, pre.pretrain.num_steps)
        summary = run["output"] or {}
        # the record describes the model that ran: the backend resolves the vocabulary size (from the
        # tokenizer) and the attention (causal for LTR); the planned config is only a fallback
        self.models[pre.id] = summary.get("model") or to_dict(pre.model)
        result = {**run, "experiment": self.plan.experiment.name, "scale": self.plan.scale.name,
                  "variants": self.plan.variants_of(pre.id), "pretrain_id": pre.id,
                  "pretrain_seed": pre.pretrain_seed, "metrics": numeric_leaves(summary),
                  "config": {"model": self.models[pre.id], "pretrain": None if pre.reference else to_dict(pre.pretrain),
                             "export_at": list(pre.export_at)}, **reference_fields(pre.reference)}
        if summary.get("wall_time_total_s") is not None:  # over every process (stage, resume) that trained it
            result["wall_time_s"] = round(summary["wall_time_total_s"], 3)
        result["wall_time_complete"] = summary.get("wall_time_total_s") is not None or not summary.get("resumed_from_step")
        files.write_json_atomic(result_path, result)
        return "failed" if run["status"] != "ok" else state

    def _finetune(self, ft):
        run_path = self.runs / "finetune" / ft.id / "run.json"

        def execute():
            out_dir = run_path.parent
            shutil.rmtree(out_dir, ignore_errors=True)  # fine-tuning reruns from scratch
            out_dir.mkdir(parents=True)
            init = self.pretrain_dir(ft.pretrain_id) / ft.init
            self.announce(f"fine-tuning {ft.id}: {ft.variant} / {ft.column} ({ft.task}) seed {ft.seed}")
            return self.backend.finetune(ft.finetune, str(init), str(out_dir), str(self.data_dir),
                                         strategy=self.strategy)

        state, run = self._locked_run("finetune", ft.id, run_path, execute)
        if state == "locked":
            return state
        record = self._finetune_record(ft, run)
        files.write_json_atomic(self.records / f"{ft.id}.json", record)
        if state == "done" and hasattr(self.backend, "log_hparams"):  # TensorBoard's HParams tab
            metric = record["main_metric"]
            self.backend.log_hparams(run_path.parent / "logs", {
                "variant": ft.variant, "column": ft.column, "task": ft.task, "seed": ft.seed,
                "pretrain_seed": ft.pretrain_seed, **{k.split(".")[-1]: v for k, v in ft.grid.items()}},
                {f"dev/{metric['name']}": metric["value"]} if metric["value"] is not None else {})
        return state

    def _finetune_record(self, ft, run):
        col, variant = self.columns[ft.column], self.variants[ft.variant]
        output = dict(run["output"] or {})
        metrics = output.pop("metrics", {}) or {}
        value = numeric_leaves(metrics).get(col.metric)
        if run["status"] == "ok" and value is None:
            self.out(f"warning: run {ft.id} has no metric '{col.metric}' (has: {sorted(numeric_leaves(metrics))})")
        pre = next(p for p in self.plan.pretrains if p.id == ft.pretrain_id)
        init = output.get("init") if isinstance(output.get("init"), dict) else {}
        return {**run, **records.column_statistics(col, output, value), "pretrain_seed": ft.pretrain_seed,
                "encoder_pretraining": init.get("pretraining"),  # what the export says: objective, steps, precision
                "output": {k: v for k, v in output.items() if isinstance(v, (str, int, float, bool))},
                "experiment": self.plan.experiment.name, "scale": self.plan.scale.name, "variant": ft.variant,
                "base_variant": variant.base or variant.name, "sweep_value": variant.sweep_value,
                "column": ft.column, "task": ft.task, "proxy_for": ft.proxy_for or None, "seed": ft.seed,
                "grid": ft.grid, "role": ft.role, "pretrain_id": ft.pretrain_id, "metrics": metrics,
                "main_metric": {"name": col.metric, "value": value, "higher_is_better": col.higher_is_better},
                "data": self.plan.data, "data_dir": str(self.data_dir), **reference_fields(pre.reference),
                "config": {"model": self.models.get(pre.id) or to_dict(pre.model),
                           "pretrain": to_dict(pre.pretrain) if pre.kind == "pretrain" else None,
                           "init": ft.init, "finetune": to_dict(ft.finetune)}}


# ---------------------------------------------------------------------------------------------
# Planning from arguments, dry runs, running


def make_plan(experiment, scale="ci", *, seeds=None, only=None, columns=None, baseline=False, data_dir=None,
              shard=None, experiments=None, pretrain_seeds=1, reference=None):
    """Load, expand, validate and (optionally) shard a plan (+ the row of `reference`, an inspected
    experiments.reference.Reference); raises before anything is written."""
    directory = experiments_dir(experiments)
    exp = load_experiment(experiment, directory)
    scales = load_scales(directory)
    if scale not in scales:
        raise unknown_name("scale", scale, scales)
    if seeds is not None and seeds < 1:
        raise BertbenchError(f"--seeds must be at least 1, got {seeds}")
    plan = expand(exp, scale, seeds=seeds, only=only, columns=columns, baseline=baseline,
                  data=data_kind(scales[scale], data_dir), scales=scales, pretrain_seeds=pretrain_seeds,
                  references=(reference,) if reference else ())
    if shard:
        plan = shard_plan(plan, *parse_shard(shard))
    return plan


def describe(plan, results="results", runs="runs"):
    """Lines of a dry run: every run with its id, its state (as `run` will find it: `plan_states`) and
    its cost, then the totals in the runner's words (cached / reused / to run)."""
    recs = records.records_dir(results, plan.experiment.name, plan.scale.name)
    states = plan_states(plan, recs, runs)
    lines = [f"plan {plan.experiment.name} @ {plan.scale.name}: {len(plan.pretrains)} pretraining + "
             f"{len(plan.finetunes)} fine-tuning runs; data: {plan.data}"]
    for pre in plan.pretrains:
        variants = ", ".join(plan.variants_of(pre.id)) + (f" (pretraining seed {pre.pretrain_seed})"
                                                          if pre.pretrain_seed else "")
        lines.append(f"  pretrain {pre.id}  {states[pre.id]:9}  {variants}: {_pretrain_cost(pre)}")
    for ft in plan.finetunes:
        task = f"{ft.task} (proxy for {ft.proxy_for})" if ft.proxy_for else ft.task
        grid = " ".join(f"{k.split('.')[-1]}={v}" for k, v in ft.grid.items())
        cap = ft.finetune.max_train_examples or "all"
        lines.append(f"  finetune {ft.id}  {states[ft.id]:9}  {ft.variant} / {ft.column}: {task} "
                     f"seed {ft.seed} {grid} ({ft.finetune.epochs:g} epochs x {cap} examples) <- {ft.pretrain_id}")
    todo_pre = [p for p in plan.pretrains if states[p.id] == "to run"]
    tokens = sum(pretrain_tokens(p.pretrain) for p in todo_pre if p.kind == "pretrain")
    count = {s: sum(1 for v in states.values() if v == s) for s in ("cached", "reused", "to run", "if chosen", "unchosen")}
    pending = undecided_candidates(plan, states)
    lines.append(f"to run: {len(todo_pre)} pretraining ({tokens:,} tokens), "
                 f"{sum(1 for f in plan.finetunes if states[f.id] == 'to run')} fine-tuning"
                 + (f" + {len(pending)} at the grid points their selection runs will choose (of "
                    f"{count['if chosen']} candidates)" if pending else "")
                 + f"; cached: {count['cached']} (records in {recs}); reused: {count['reused']} (finished in {runs})"
                 + (f"; unchosen: {count['unchosen']} (grid points not chosen)" if count["unchosen"] else ""))
    return lines + estimate_lines(plan, states, results)


def _pretrain_cost(pre):
    c = pre.pretrain
    if pre.kind != "pretrain":
        return describe_reference(pre.reference) if pre.reference else "random init"
    phase2 = f"/{c.phase2_max_seq_length}" if c.phase2_fraction else ""
    return (f"{c.num_steps:,} steps x batch {c.batch_size} x seq {c.max_seq_length}{phase2} = "
            f"{pretrain_tokens(c):,} tokens")


def run_experiment(experiment, scale="ci", *, seeds=None, data_dir=None, only=None, columns=None, baseline=False,
                   shard=None, results="results", runs="runs", strategy="default", backend=None,
                   experiments=None, out=print, tables=True, pretrain_seeds=1, progress=None, reference=None,
                   before=None):
    """Plan, run, write records and tables; returns the Runner's counts. `before`: see where_written."""
    plan = make_plan(experiment, scale, seeds=seeds, only=only, columns=columns, baseline=baseline, data_dir=data_dir,
                     shard=shard, experiments=experiments, pretrain_seeds=pretrain_seeds, reference=reference)
    data_path = data_root(plan.scale, data_dir)
    counts = Runner(plan, results, runs, backend=backend, strategy=strategy, data_dir=data_path, out=out,
                    progress=progress, shard=shard).run()
    out(" ".join(f"{k}={v}" for k, v in counts.items()))
    if tables:  # a `--jobs` runner leaves the tables and the summary to the command that started it
        out(write_tables(plan.experiment, plan.scale.name, results))
        for line in where_written(plan, results, runs, counts, before):
            out(line)
    return counts


def recorded_runs(plan, results):
    """{run id: (commit, host)} of the records in `results` of the plan's runs and pretrainings."""
    recs = records.load_records(results, plan.experiment.name, plan.scale.name)
    ids = {f.id for f in plan.finetunes} | {f"pretrain-{p.id}" for p in plan.pretrains}
    return {r.get("run_id"): (str((r.get("git") or {}).get("commit") or "?")[:7],  # None outside a git checkout
                             str((r.get("hardware") or {}).get("hostname") or "?"))
            for r in recs if isinstance(r, dict) and (r.get("run_id") in ids or
                                                      f"pretrain-{r.get('pretrain_id')}" in ids)}


def where_written(plan, results, runs, counts, before=None):
    """Where `run` put its outputs, and where the cached records it reports came from; `before`: the
    recorded_runs of the plan before this command started (`--jobs`: its runners' records are new)."""
    recs = records.records_dir(results, plan.experiment.name, plan.scale.name)
    found = recorded_runs(plan, results)
    cached = counts.get("cached", 0) if before is None else len(found.keys() & before.keys())
    origins = Counter(origin for key, origin in found.items() if before is None or key in before)
    lines = [f"records: {recs}", f"tables: {recs.parent}/table.{{md,csv,tex}}",
             f"checkpoints and run folders: {runs}"]
    if cached:
        measured = "; ".join(f"{n} at commit {commit} on {host}" for (commit, host), n in sorted(origins.items()))
        lines.append(f"{cached} run(s) were not re-measured: their records were already in {recs} "
                     f"({measured}); use a new --results folder to measure them on this machine")
    return lines
