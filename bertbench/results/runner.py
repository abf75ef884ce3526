"""`run` command: execute an experiment's plan with caching, resume, locks and sharding.

Runs live under `runs/pretrain/<id>/` and `runs/finetune/<id>/` (id = content hash of the resolved
config, see experiments.py), each with a runner record (`run.json`) once finished: a pretraining
shared by variants or experiments runs once, a rerun skips what is done, an interrupted pretraining
resumes from its own checkpoints, an interrupted fine-tuning reruns. Results are one JSON record per
run under `results/<experiment>/<scale>/records/` (schema: results/README.md).

The work itself goes through a Backend (`pretrain`, `random_init`, `finetune`), so tests and other
executors can replace it (`--backend module:Name` or `path/to/file.py:Name`).
"""

import dataclasses
import importlib
import importlib.util
import os
import shutil
import time
import traceback
from pathlib import Path

from bertbench import files
from bertbench.results import records
from bertbench.config import to_dict
from bertbench.errors import BertbenchError
from bertbench.experiments.plan import expand, experiments_dir, load_experiment
from bertbench.pretraining.accounting import pretrain_tokens
from bertbench.resources import DATA_ENV, SAMPLE_DIR, resolve_data_dir

STRATEGIES = ("default", "one_device", "mirrored", "multiworker", "tpu")  # bertbench.model.strategy


class Backend:
    """The real work, imported lazily so planning, dry runs and tests never load TensorFlow."""

    def pretrain(self, model_cfg, pretrain_cfg, out_dir, strategy="default", export_at=()):
        from bertbench.pretraining.loop import pretrain

        return pretrain(model_cfg, pretrain_cfg, out_dir, strategy=strategy, export_at=export_at)

    def random_init(self, model_cfg, pretrain_cfg, out_dir):
        """The no-pretraining baseline: a seeded random encoder saved like a pretrained one."""
        import keras

        from bertbench.model.checkpoint import save_encoder
        from bertbench.model.encoder import build_encoder
        from bertbench.pretraining.loop import resolve_model_config
        from bertbench.text.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(pretrain_cfg.vocab, pretrain_cfg.lowercase)
        model_cfg = resolve_model_config(model_cfg, pretrain_cfg, tokenizer.vocabulary_size)
        keras.utils.set_random_seed(pretrain_cfg.seed)
        save_encoder(build_encoder(model_cfg), model_cfg, Path(out_dir) / "encoder", tokenizer.vocab_path,
                     pretrain_cfg.lowercase, extra={"objective": "none (random init)", "steps": 0})
        return {"status": "ok", "steps": 0, "model": to_dict(model_cfg)}

    def finetune(self, finetune_cfg, init, out_dir, data_dir):
        from bertbench.finetuning.loop import finetune

        return finetune(finetune_cfg, init, out_dir, data_dir)


def load_backend(spec=None):
    """Backend() or the object named by 'module:attr' / 'file.py:attr' (a class is instantiated)."""
    if not spec:
        return Backend()
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise BertbenchError(f"--backend '{spec}' must look like module:Name or path/to/file.py:Name")
    if target.endswith(".py"):
        if not Path(target).is_file():
            raise BertbenchError(f"--backend file not found: {target}")
        mod_spec = importlib.util.spec_from_file_location(Path(target).stem, target)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    if not hasattr(module, attr):
        raise BertbenchError(f"--backend: {target} has no attribute '{attr}'")
    obj = getattr(module, attr)
    return obj() if isinstance(obj, type) else obj


# ---------------------------------------------------------------------------------------------
# Sharding: whole pretraining groups per shard, balanced by estimated cost (deterministic).


def parse_shard(text):
    """'I/N' (0-based: 0/4 .. 3/4) -> (I, N)."""
    try:
        index, count = (int(x) for x in str(text).split("/"))
    except ValueError:
        index, count = -1, 0
    if count < 1 or not 0 <= index < count:
        raise BertbenchError(f"--shard '{text}' must be I/N with 0 <= I < N (0-based, e.g. 0/4 ... 3/4)")
    return index, count


def _group_cost(pre, finetunes):
    width = pre.model.num_layers * pre.model.hidden_dim ** 2  # FLOPs per token, up to a constant
    cost = pretrain_tokens(pre.pretrain) * width if pre.kind == "pretrain" else 0
    for f in finetunes:
        examples = f.finetune.max_train_examples or 100_000
        cost += examples * f.finetune.epochs * f.finetune.max_seq_length * width
    return cost


def shard_plan(plan, index, count):
    """The part of `plan` shard `index` of `count` owns: whole pretraining groups, greedily balanced
    (largest first onto the least-loaded shard; ties by id), so the union over shards is the plan."""
    groups = {p.id: [f for f in plan.finetunes if f.pretrain_id == p.id] for p in plan.pretrains}
    by_cost = sorted(plan.pretrains, key=lambda p: (-_group_cost(p, groups[p.id]), p.id))
    load, owner = [0] * count, {}
    for pre in by_cost:
        target = min(range(count), key=lambda i: (load[i], i))
        owner[pre.id] = target
        load[target] += _group_cost(pre, groups[pre.id]) + 1
    return dataclasses.replace(plan, pretrains=tuple(p for p in plan.pretrains if owner[p.id] == index),
                               finetunes=tuple(f for f in plan.finetunes if owner[f.pretrain_id] == index))


# ---------------------------------------------------------------------------------------------
# Execution


def data_kind(scale, data_dir):
    """'sample' or 'external': which data the fine-tuning runs read (in their ids; not the path)."""
    return "external" if data_dir or scale.data == "required" else "sample"


def resolve_data(scale, data_dir):
    if data_dir:
        return resolve_data_dir(data_dir)
    if scale.data == "sample":
        return SAMPLE_DIR
    if os.environ.get(DATA_ENV):
        return resolve_data_dir(os.environ[DATA_ENV])
    raise BertbenchError(f"scale '{scale.name}' runs on real data: pass --data-dir DIR (e.g. ../shared/data) "
                         f"or set ${DATA_ENV}")


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
    """Runs one plan; `run()` returns counts {'ran', 'cached', 'reused', 'failed', 'skipped'}."""

    def __init__(self, plan, results="results", runs="runs", backend=None, strategy="default", data_dir=None,
                 out=print, poll_s=1.0):
        self.plan, self.results, self.runs = plan, Path(results), Path(runs)
        self.backend = backend or Backend()
        self.strategy, self.data_dir, self.out, self.poll_s = strategy, data_dir, out, poll_s
        self.records = records.records_dir(results, plan.experiment.name, plan.scale.name)
        self.counts = dict(ran=0, cached=0, reused=0, failed=0, skipped=0)
        self.finished = set()  # run ids settled in this process (done, cached, failed or skipped)
        self.columns = {c.name: c for c in plan.experiment.columns}
        self.variants = {v.name: v for v in plan.variants}

    def pretrain_dir(self, pid):
        return self.runs / "pretrain" / pid

    def run(self):
        pending = list(self.plan.pretrains)
        while pending:
            waiting = [p for p in pending if not self._group(p)]
            if len(waiting) == len(pending):
                self.out(f"waiting for {len(waiting)} run(s) locked by another runner ...")
                time.sleep(self.poll_s)
            pending = waiting
        return self.counts

    def _group(self, pre):
        """Finish pretraining `pre` and its fine-tuning runs; False while one is locked elsewhere."""
        members = [f for f in self.plan.finetunes if f.pretrain_id == pre.id and f.id not in self.finished]
        todo = [f for f in members if not records.read_ok(self.records / f"{f.id}.json")]
        for f in members:
            if f not in todo:
                self.finished.add(f.id)
                self.counts["cached"] += 1
        if pre.id not in self.finished:
            state = self._pretrain(pre, needed=bool(todo))
            if state == "locked":
                return False
            self.finished.add(pre.id)
            if state == "failed":
                self.counts["skipped"] += len(todo)
                self.finished.update(f.id for f in todo)
                return True
        for ft in todo:
            if self._finetune(ft) != "locked":
                self.finished.add(ft.id)
        return all(f.id in self.finished for f in todo)

    def _locked_run(self, kind, run_id, run_path, execute):
        """('done', record) from cache or by executing under the run's lock; ('locked', None) if another
        runner holds it; ('failed', record) on an exception (a BertbenchError aborts the command)."""
        record = records.read_ok(run_path)
        if record:
            self.counts["reused"] += 1
            return "reused", record
        with records.RunLock(self.runs / kind / f"{run_id}.lock") as owned:
            if not owned:
                return "locked", None
            record = records.read_ok(run_path)  # finished by another runner while we looked
            if record:
                self.counts["reused"] += 1
                return "reused", record
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
                      "output": output, **records.provenance()}
            files.write_json_atomic(run_path, record)
            self.counts["ran" if status == "ok" else "failed"] += 1
            return ("done" if status == "ok" else "failed"), record

    def _pretrain(self, pre, needed):
        result_path = self.records / f"pretrain-{pre.id}.json"
        if not needed and records.read_ok(result_path):
            self.counts["cached"] += 1
            return "cached"
        out_dir = self.pretrain_dir(pre.id)

        def execute():
            self.out(f"pretraining {pre.id} ({pre.kind}, {pre.pretrain.num_steps:,} steps) -> {out_dir}")
            out_dir.mkdir(parents=True, exist_ok=True)
            cfg = _materialize(pre.pretrain, self.data_dir)
            if pre.kind == "random_init":
                return self.backend.random_init(pre.model, cfg, out_dir)
            return self.backend.pretrain(pre.model, cfg, out_dir, strategy=self.strategy, export_at=pre.export_at)

        state, run = self._locked_run("pretrain", pre.id, out_dir / "run.json", execute)
        if state == "locked":
            return state
        summary = run["output"] or {}
        variants = [v for v, pid in self.plan.variant_pretrain.items() if pid == pre.id]
        result = {**run, "experiment": self.plan.experiment.name, "scale": self.plan.scale.name,
                  "variants": variants, "pretrain_id": pre.id, "metrics": numeric_leaves(summary),
                  "config": {"model": to_dict(pre.model), "pretrain": to_dict(pre.pretrain),
                             "export_at": list(pre.export_at)}}
        files.write_json_atomic(result_path, result)
        return "failed" if run["status"] != "ok" else state

    def _finetune(self, ft):
        run_path = self.runs / "finetune" / ft.id / "run.json"

        def execute():
            out_dir = run_path.parent
            shutil.rmtree(out_dir, ignore_errors=True)  # fine-tuning reruns from scratch
            out_dir.mkdir(parents=True)
            init = self.pretrain_dir(ft.pretrain_id) / ft.init
            self.out(f"fine-tuning {ft.id}: {ft.variant} / {ft.column} ({ft.task}) seed {ft.seed}")
            return self.backend.finetune(ft.finetune, str(init), str(out_dir), str(self.data_dir))

        state, run = self._locked_run("finetune", ft.id, run_path, execute)
        if state == "locked":
            return state
        files.write_json_atomic(self.records / f"{ft.id}.json", self._finetune_record(ft, run))
        return state

    def _finetune_record(self, ft, run):
        col, variant = self.columns[ft.column], self.variants[ft.variant]
        output = dict(run["output"] or {})
        metrics = output.pop("metrics", {}) or {}
        value = numeric_leaves(metrics).get(col.metric)
        if run["status"] == "ok" and value is None:
            self.out(f"warning: run {ft.id} has no metric '{col.metric}' (has: {sorted(numeric_leaves(metrics))})")
        pre = next(p for p in self.plan.pretrains if p.id == ft.pretrain_id)
        return {**run, "output": {k: v for k, v in output.items() if isinstance(v, (str, int, float, bool))},
                "experiment": self.plan.experiment.name, "scale": self.plan.scale.name, "variant": ft.variant,
                "base_variant": variant.base or variant.name, "sweep_value": variant.sweep_value,
                "column": ft.column, "task": ft.task, "proxy_for": ft.proxy_for or None, "seed": ft.seed,
                "grid": ft.grid, "pretrain_id": ft.pretrain_id, "metrics": metrics,
                "main_metric": {"name": col.metric, "value": value, "higher_is_better": col.higher_is_better},
                "data": self.plan.data, "data_dir": str(self.data_dir),
                "config": {"model": to_dict(pre.model), "pretrain": to_dict(pre.pretrain) if pre.kind == "pretrain"
                           else None, "init": ft.init, "finetune": to_dict(ft.finetune)}}


# ---------------------------------------------------------------------------------------------
# Planning from arguments, dry runs, the `run` command


def make_plan(experiment, scale="ci", *, seeds=None, only=None, columns=None, baseline=False, data_dir=None,
              shard=None, experiments=None):
    """Load, expand, validate and (optionally) shard a plan; raises before anything is written."""
    from bertbench.experiments.plan import load_scales

    directory = experiments_dir(experiments)
    exp = load_experiment(experiment, directory)
    scales = load_scales(directory)
    if scale not in scales:
        from bertbench.errors import unknown_name

        raise unknown_name("scale", scale, scales)
    if seeds is not None and seeds < 1:
        raise BertbenchError(f"--seeds must be at least 1, got {seeds}")
    plan = expand(exp, scale, seeds=seeds, only=only, columns=columns, baseline=baseline,
                  data=data_kind(scales[scale], data_dir), scales=scales)
    if shard:
        plan = shard_plan(plan, *parse_shard(shard))
    return plan


def describe(plan, results="results", runs="runs"):
    """Lines of a dry run: every run with its id, whether it is cached, and its cost."""
    recs = records.records_dir(results, plan.experiment.name, plan.scale.name)
    lines = [f"plan {plan.experiment.name} @ {plan.scale.name}: {len(plan.pretrains)} pretraining + "
             f"{len(plan.finetunes)} fine-tuning runs; data: {plan.data}"]
    todo_tokens, todo_ft = 0, 0
    for pre in plan.pretrains:
        done = records.read_ok(Path(runs) / "pretrain" / pre.id / "run.json")
        variants = ", ".join(v for v, pid in plan.variant_pretrain.items() if pid == pre.id)
        c = pre.pretrain
        cost = (f"{c.num_steps:,} steps x batch {c.batch_size} x seq {c.max_seq_length}"
                f"{f'/{c.phase2_max_seq_length}' if c.phase2_fraction else ''} = {pretrain_tokens(c):,} tokens"
                if pre.kind == "pretrain" else "random init")
        todo_tokens += 0 if done or pre.kind != "pretrain" else pretrain_tokens(c)
        lines.append(f"  pretrain {pre.id}  {'cached' if done else 'to run':7}  {variants}: {cost}")
    for ft in plan.finetunes:
        done = records.read_ok(recs / f"{ft.id}.json") or records.read_ok(Path(runs) / "finetune" / ft.id / "run.json")
        todo_ft += not done
        task = f"{ft.task} (proxy for {ft.proxy_for})" if ft.proxy_for else ft.task
        grid = " ".join(f"{k.split('.')[-1]}={v}" for k, v in ft.grid.items())
        cap = ft.finetune.max_train_examples or "all"
        lines.append(f"  finetune {ft.id}  {'cached' if done else 'to run':7}  {ft.variant} / {ft.column}: {task} "
                     f"seed {ft.seed} {grid} ({ft.finetune.epochs:g} epochs x {cap} examples) <- {ft.pretrain_id}")
    lines.append(f"to run: {sum(1 for p in plan.pretrains if not records.read_ok(Path(runs) / 'pretrain' / p.id / 'run.json'))}"
                 f" pretraining ({todo_tokens:,} tokens), {todo_ft} fine-tuning")
    return lines


def add_arguments(parser):
    parser.add_argument("experiment", help="experiment name (see `bertbench list`)")
    parser.add_argument("--scale", default="ci", help="ci (default), small or base (experiments/_scales.toml)")
    parser.add_argument("--seeds", type=int, default=None, help="fine-tuning seeds 0..N-1 (default: the scale's)")
    parser.add_argument("--data-dir", default=None, help="task data and corpus root (small/base; default ci: sample)")
    parser.add_argument("--only", action="append", default=[], metavar="VARIANT",
                        help="run only these variants (repeat, or comma-separate)")
    parser.add_argument("--column", action="append", default=[], metavar="COLUMN",
                        help="run only these table columns, e.g. --column MRPC (repeat, or comma-separate)")
    parser.add_argument("--baseline", action="store_true", help="add the no-pretraining (random init) row")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (ids, cached or not, cost); run nothing")
    parser.add_argument("--shard", default=None, metavar="I/N", help="run shard I of N (0-based), for clusters")
    parser.add_argument("--results", default="results", help="results folder (default: results/)")
    parser.add_argument("--runs", default="runs", help="checkpoints and run folders (default: runs/)")
    parser.add_argument("--strategy", default="default", choices=STRATEGIES, help="tf.distribute strategy")
    parser.add_argument("--experiments", default=None, help="folder of experiment TOML files")
    parser.add_argument("--backend", default=None, metavar="MODULE:NAME",
                        help="executor replacing real pretraining/fine-tuning (tests, custom schedulers)")


def _split(values):
    return [x.strip() for v in values for x in v.split(",") if x.strip()] or None


def run_experiment(experiment, scale="ci", *, seeds=None, data_dir=None, only=None, columns=None, baseline=False,
                   shard=None, results="results", runs="runs", strategy="default", backend=None,
                   experiments=None, out=print, write_tables=True):
    """Plan, run, write records and tables; returns the Runner's counts."""
    plan = make_plan(experiment, scale, seeds=seeds, only=only, columns=columns, baseline=baseline,
                     data_dir=data_dir, shard=shard, experiments=experiments)
    data_path = resolve_data(plan.scale, data_dir)
    counts = Runner(plan, results, runs, backend=backend, strategy=strategy, data_dir=data_path, out=out).run()
    out(" ".join(f"{k}={v}" for k, v in counts.items()))
    if write_tables:
        from bertbench.results.tables import write_tables as write

        out(write(plan.experiment, plan.scale.name, results))
    return counts


def main(args):
    only, columns = _split(args.only), _split(args.column)
    if args.dry_run:
        plan = make_plan(args.experiment, args.scale, seeds=args.seeds, only=only, columns=columns,
                         baseline=args.baseline, data_dir=args.data_dir, shard=args.shard,
                         experiments=args.experiments)
        print("\n".join(describe(plan, args.results, args.runs)))
        return 0
    counts = run_experiment(args.experiment, args.scale, seeds=args.seeds, data_dir=args.data_dir, only=only,
                            columns=columns, baseline=args.baseline, shard=args.shard, results=args.results,
                            runs=args.runs, strategy=args.strategy, backend=load_backend(args.backend),
                            experiments=args.experiments)
    return 1 if counts["failed"] or counts["skipped"] else 0
