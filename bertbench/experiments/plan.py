"""Experiments as data (`experiments/*.toml`) and their plans; the `list` command.

An experiment is pretraining variants x columns (downstream tasks, or a pretraining metric) x seeds
(x the scale's fine-tuning grid). A variant is a name plus dotted overrides of the base configs
(`model.*`, `pretrain.*`, `finetune.*`, and `model.preset`); a scale (`experiments/_scales.toml`)
is an overlay applied first. `expand()` resolves every run's configs, validates them (unknown keys
fail with a did-you-mean before anything runs) and gives each run an id: a short content hash of
its resolved config, so a pretraining shared by variants or experiments is one run.
"""

import dataclasses
import hashlib
import itertools
import json
import os
from pathlib import Path

from bertbench.config import (MODEL_SIZES, FinetuneConfig, ModelConfig, PretrainConfig, from_dict, load_toml,
                              to_dict)
from bertbench.errors import ConfigError, did_you_mean, unknown_name

EXPERIMENTS_DIR = Path(__file__).resolve().parents[2] / "experiments"
SCALES_FILE = "_scales.toml"
HASH_VERSION = 1  # bump to invalidate every cached run after a change in what configs mean
SECTIONS = {"model": ModelConfig, "pretrain": PretrainConfig, "finetune": FinetuneConfig}
VALID_KEYS = sorted(["model.preset"] + [f"{s}.{f.name}" for s, cls in SECTIONS.items()
                                        for f in dataclasses.fields(cls)])
EXPERIMENT_KEYS = ("name", "title", "paper_table", "description", "reference", "include_baseline", "seeds",
                   "columns", "variants", "scales", "sweep", "plot")
VARIANT_KEYS = ("name", "row", "paper_row", "pretrain", "set", "scales", "note")
COLUMN_KEYS = ("name", "task", "metric", "source", "set", "higher_is_better", "times100", "decimals",
               "paper_column")


@dataclasses.dataclass(frozen=True)
class Scale:
    name: str
    description: str
    data: str  # "sample" (bundled) or "required" (--data-dir / $BERTBENCH_DATA)
    seeds: int
    set: dict
    proxies: dict  # paper task -> stand-in task
    grid: dict  # dotted finetune key -> list of values


@dataclasses.dataclass(frozen=True)
class Column:
    name: str  # the paper's column label (paper_numbers.csv `column`)
    task: str = ""  # task at base scale; proxied at smaller scales
    metric: str = "accuracy"  # key in the fine-tuning metrics (or the pretraining summary)
    source: str = "finetune"  # or "pretrain": read from the pretraining summary (Table 6 perplexity)
    set: dict = dataclasses.field(default_factory=dict)
    higher_is_better: bool = True
    times100: bool = False  # metric is a fraction: show it x100 (bertbench.evaluation.metrics already gives percent)
    decimals: int = 1
    paper_column: str = ""


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    row: str  # row label in our table
    paper_row: str = ""  # row in paper_numbers.csv ("" = same as row)
    pretrain: bool = True  # False: no pretraining (random init), the baseline row
    set: dict = dataclasses.field(default_factory=dict)
    scales: dict = dataclasses.field(default_factory=dict)  # scale -> extra overrides
    note: str = ""
    base: str = ""  # for sweep-expanded variants: the variant they come from
    sweep_value: object = None


BASELINE = Variant("no_pretraining", "No pre-training (random init)", paper_row="-", pretrain=False,
                   note="same architecture, randomly initialised, fine-tuned like the others")


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    paper_table: str
    description: str
    reference: str  # variant whose row is the delta's zero ("" = no delta column)
    columns: tuple
    variants: tuple
    include_baseline: bool
    seeds: int  # 0 = the scale's default
    scales: dict  # scale -> {"set": {...}}
    sweep: dict  # {"key": "pretrain.num_steps", "<scale>": [values]} or {}
    plot: bool
    path: Path


def flatten(table, prefix=""):
    """{'pretrain': {'num_steps': 3}, 'finetune.epochs': 2} -> {'pretrain.num_steps': 3, 'finetune.epochs': 2}."""
    out = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _check_keys(table, allowed, where):
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key '{key}'{did_you_mean(key, allowed)}; "
                              f"allowed: {', '.join(allowed)}")


def _overrides(table, where):
    flat = flatten(table or {})
    for key in flat:
        if key not in VALID_KEYS:
            field = key.split(".")[-1]
            same_field = [k for k in VALID_KEYS if k.split(".")[-1] == field]  # right name, wrong section
            hint = " (did you mean " + " or ".join(f"'{k}'" for k in same_field) + "?)" if same_field else did_you_mean(key, VALID_KEYS)
            raise ConfigError(f"{where}: unknown setting '{key}'{hint}")
    return flat


def _check_tasks(names, where):
    """Task names must be registered in bertbench.tasks.TASKS (skipped if that module is absent)."""
    try:
        from bertbench.tasks import TASKS
    except ImportError:
        return
    for name in names:
        if name not in TASKS:
            raise unknown_name(f"task in {where}", name, TASKS)


def experiments_dir(path=None):
    return Path(path or os.environ.get("BERTBENCH_EXPERIMENTS") or EXPERIMENTS_DIR)


def experiment_names(directory=None):
    return sorted(p.stem for p in experiments_dir(directory).glob("*.toml") if not p.name.startswith("_"))


def load_scales(directory=None):
    path = experiments_dir(directory) / SCALES_FILE
    scales = {}
    for name, table in load_toml(path).items():
        where = f"{path.name} [{name}]"
        _check_keys(table, ("description", "data", "seeds", "set", "proxies", "grid"), where)
        if table.get("data", "sample") not in ("sample", "required"):
            raise ConfigError(f"{where}: data must be 'sample' or 'required', got {table['data']!r}")
        grid = _overrides(table.get("grid"), f"{where} grid")
        if any(not k.startswith("finetune.") or not isinstance(v, list) for k, v in grid.items()):
            raise ConfigError(f"{where}: grid entries must be finetune.* keys with a list of values")
        _check_tasks(list(table.get("proxies", {}).values()), f"{where} proxies")
        scales[name] = Scale(name, table.get("description", ""), table.get("data", "sample"),
                             int(table.get("seeds", 1)), _overrides(table.get("set"), where),
                             dict(table.get("proxies", {})), grid)
    return scales


def load_experiment(name, directory=None):
    """The Experiment in `experiments/<name>.toml` (unknown keys and names fail on one line)."""
    names = experiment_names(directory)
    if name not in names:
        raise unknown_name("experiment", name, names)
    path = experiments_dir(directory) / f"{name}.toml"
    data = load_toml(path)
    _check_keys(data, EXPERIMENT_KEYS, path.name)
    columns = []
    for i, table in enumerate(data.get("columns", [])):
        _check_keys(table, COLUMN_KEYS, f"{path.name} columns[{i}]")
        col = Column(**{**table, "set": _overrides(table.get("set"), f"{path.name} column {table.get('name')}")})
        if col.source not in ("finetune", "pretrain") or (col.source == "finetune" and not col.task):
            raise ConfigError(f"{path.name} column {col.name!r}: source must be 'finetune' (with a task) "
                              f"or 'pretrain'")
        columns.append(col)
    variants = []
    for i, table in enumerate(data.get("variants", [])):
        where = f"{path.name} variant {table.get('name', i)!r}"
        _check_keys(table, VARIANT_KEYS, where)
        scales = {s: _overrides(t, f"{where} scales.{s}") for s, t in table.get("scales", {}).items()}
        variants.append(Variant(**{**table, "set": _overrides(table.get("set"), where), "scales": scales}))
    _check_tasks([c.task for c in columns if c.task], path.name)
    if not columns or not variants:
        raise ConfigError(f"{path.name}: an experiment needs at least one [[columns]] and one [[variants]]")
    exp_scales = {s: {"set": _overrides(t.get("set"), f"{path.name} scales.{s}")}
                  for s, t in data.get("scales", {}).items()}
    ref = data.get("reference", "")
    if ref and ref not in [v.name for v in variants]:
        raise unknown_name(f"reference variant in {path.name}", ref, [v.name for v in variants])
    return Experiment(name, data.get("title", name), data.get("paper_table", ""), data.get("description", ""),
                      ref, tuple(columns), tuple(variants), bool(data.get("include_baseline", False)),
                      int(data.get("seeds", 0)), exp_scales, dict(data.get("sweep", {})),
                      bool(data.get("plot", False)), path)


# ---------------------------------------------------------------------------------------------
# Plans: resolved runs with content-hash ids.


@dataclasses.dataclass(frozen=True)
class PretrainRun:
    id: str
    kind: str  # "pretrain", or "random_init" for the no-pretraining baseline
    model: ModelConfig
    pretrain: PretrainConfig
    export_at: tuple = ()  # extra encoder exports (ablation_steps: one run, fine-tuned at several k)


@dataclasses.dataclass(frozen=True)
class FinetuneRun:
    id: str
    pretrain_id: str
    init: str  # encoder directory inside the pretraining run: "encoder" or "encoder_step{k}"
    variant: str
    column: str
    task: str  # the task actually run
    proxy_for: str  # the paper's task when `task` is a stand-in, else ""
    seed: int
    grid: dict  # the grid point (dotted keys), {} without a grid
    finetune: FinetuneConfig


@dataclasses.dataclass(frozen=True)
class Plan:
    experiment: Experiment
    scale: Scale
    data: str  # "sample" or "external": which data the fine-tuning runs read (part of their ids)
    variants: tuple  # Variant (sweep-expanded)
    variant_pretrain: dict  # variant name -> pretrain id
    pretrains: tuple  # PretrainRun, each once
    finetunes: tuple  # FinetuneRun


def content_id(payload):
    """First 12 hex digits of sha256 of the canonical JSON of `payload` (sorted keys, no spaces)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def pretrain_payload(kind, model, pretrain, export_at=()):
    if kind == "random_init":  # only what the initialisation depends on
        return {"hash_version": HASH_VERSION, "kind": kind, "model": to_dict(model), "vocab": pretrain.vocab,
                "lowercase": pretrain.lowercase, "seed": pretrain.seed}
    payload = {"hash_version": HASH_VERSION, "kind": kind, "model": to_dict(model), "pretrain": to_dict(pretrain)}
    if export_at:
        payload["export_at"] = list(export_at)
    return payload


def finetune_payload(pretrain_id, init, finetune, data):
    return {"hash_version": HASH_VERSION, "kind": "finetune", "pretrain_id": pretrain_id, "init": init,
            "finetune": to_dict(finetune), "data": data}


def resolve_configs(flat, where):
    """Dotted overrides -> (ModelConfig, PretrainConfig, FinetuneConfig); errors name `where`."""
    sections = {name: {} for name in SECTIONS}
    for key, value in flat.items():
        section, field = key.split(".", 1)
        if key != "model.preset":
            sections[section][field] = value
    try:
        preset = flat.get("model.preset")
        if preset is not None and preset not in MODEL_SIZES:
            raise unknown_name("model preset", preset, MODEL_SIZES)
        # L/H/A of the preset first, then explicit model.* keys; intermediate_dim stays 4H unless set
        model = dict(zip(("num_layers", "hidden_dim", "num_heads"), MODEL_SIZES[preset])) if preset else {}
        model.update(sections["model"])
        return tuple(from_dict(cls, sections[name] if name != "model" else model, prefix=f"{name}.")
                     for name, cls in SECTIONS.items())
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _sweep(exp, variant, scale):
    """[(variant, extra overrides, init dir, export_at)] for each sweep point (one item without a sweep)."""
    if not exp.sweep or not variant.pretrain:
        return [(variant, {}, "encoder", ())]
    key, values = exp.sweep.get("key"), exp.sweep.get(scale)
    if not values:
        raise ConfigError(f"{exp.path.name}: [sweep] has no values for scale '{scale}'")
    _overrides({key: 0}, f"{exp.path.name} [sweep]")
    out = []
    for value in values:
        v = dataclasses.replace(variant, name=f"{variant.name}@{value}", row=f"{variant.row} @ {value:,}",
                                base=variant.name, sweep_value=value)
        if key == "pretrain.num_steps":  # one run to max(values), exporting the encoder at each k
            last = max(values)
            init = "encoder" if value == last else f"encoder_step{value}"
            out.append((v, {key: last}, init, tuple(sorted(k for k in values if k != last))))
        else:
            out.append((v, {key: value}, "encoder", ()))
    return out


def _pick(names, wanted, kind, exp):
    if not wanted:
        return names
    for name in wanted:
        if name not in names:
            raise unknown_name(f"{kind} of {exp}", name, names)
    return [n for n in names if n in wanted]


def expand(exp, scale_name, *, seeds=None, only=None, columns=None, baseline=False, data="sample",
           scales=None):
    """The Plan of experiment `exp` at a scale; every config resolved and validated, ids computed."""
    scales = scales or load_scales(exp.path.parent)
    if scale_name not in scales:
        raise unknown_name("scale", scale_name, scales)
    scale = scales[scale_name]
    candidates = list(exp.variants) + [BASELINE]  # the baseline row comes with --baseline, include_baseline,
    keep = set(_pick([v.name for v in candidates], only, "variant", exp.name) if only  # or --only no_pretraining
               else [v.name for v in exp.variants])
    if baseline or (exp.include_baseline and not only):
        keep.add(BASELINE.name)
    variants = [v for v in candidates if v.name in keep]
    wanted_cols = _pick([c.name for c in exp.columns], columns, "column", exp.name)
    cols = [c for c in exp.columns if c.name in wanted_cols and c.source == "finetune"]
    seeds = list(range(seeds or exp.seeds or scale.seeds))
    grid_keys = sorted(scale.grid)
    grid = [dict(zip(grid_keys, point)) for point in itertools.product(*(scale.grid[k] for k in grid_keys))]
    pretrains, finetunes, variant_pretrain, expanded = {}, {}, {}, []
    for variant in variants:
        for v, sweep_set, init, export_at in _sweep(exp, variant, scale_name):
            where = f"{exp.path.name} variant '{v.name}' at scale '{scale_name}'"
            layers = {**scale.set, **exp.scales.get(scale_name, {}).get("set", {}), **v.set,
                      **v.scales.get(scale_name, {}), **sweep_set}
            model, pre, _ = resolve_configs(layers, where)
            kind = "pretrain" if v.pretrain else "random_init"
            pid = content_id(pretrain_payload(kind, model, pre, export_at))
            pretrains.setdefault(pid, PretrainRun(pid, kind, model, pre, export_at))
            variant_pretrain[v.name] = pid
            expanded.append(v)
            for col, point, seed in itertools.product(cols, grid, seeds):
                task = scale.proxies.get(col.task, col.task)
                flat = {**layers, **col.set, **point, "finetune.task": task, "finetune.seed": seed}
                _, _, ft = resolve_configs(flat, f"{where}, column '{col.name}'")
                fid = content_id(finetune_payload(pid, init, ft, data))
                if fid in finetunes:
                    other = finetunes[fid]
                    raise ConfigError(f"{exp.path.name}: '{v.name}'/'{col.name}' and '{other.variant}'/"
                                      f"'{other.column}' resolve to the same run; make their settings differ")
                finetunes[fid] = FinetuneRun(fid, pid, init, v.name, col.name, task,
                                             col.task if task != col.task else "", seed, point, ft)
    return Plan(exp, scale, data, tuple(expanded), variant_pretrain, tuple(pretrains.values()),
                tuple(finetunes.values()))


# ---------------------------------------------------------------------------------------------
# `list` command


def add_arguments(parser):
    parser.add_argument("--experiments", default=None, help="folder of experiment TOML files")


def main(args):
    directory = experiments_dir(args.experiments)
    scales = load_scales(directory)
    for name in experiment_names(directory):
        exp = load_experiment(name, directory)
        print(f"{name}: {exp.title}" + (f" [{exp.paper_table}]" if exp.paper_table else ""))
        print(f"  variants: {', '.join(v.name for v in exp.variants)}"
              + (" (+ no_pretraining)" if exp.include_baseline else ""))
        print(f"  columns:  {', '.join(f'{c.name} ({c.task or c.metric})' for c in exp.columns)}")
        for scale in scales:
            plan = expand(exp, scale, scales=scales)
            steps = sum(p.pretrain.num_steps for p in plan.pretrains if p.kind == "pretrain")
            print(f"  {scale:>5}: {len(plan.pretrains)} pretraining ({steps:,} steps), "
                  f"{len(plan.finetunes)} fine-tuning runs, {len(plan.finetunes) and len(set(f.seed for f in plan.finetunes))} seed(s)")
    return 0
