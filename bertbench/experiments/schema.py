"""Experiments as data: the schema of `experiments/*.toml` and `experiments/_scales.toml`, loaded and checked.

An experiment is pretraining variants x columns (downstream tasks, or a pretraining metric) x seeds
(x the scale's fine-tuning grid). A variant is a name plus dotted overrides of the base configs
(`model.*`, `pretrain.*`, `finetune.*`, and `model.preset`); a scale is an overlay applied first.
Every table goes through `bertbench.config.from_dict` like every other config (types checked, one
line naming the file and the fix); dotted overrides are checked against the config fields here and
resolved in `plan.py`. A column's metric direction is not a setting: it comes from the metric
registry (`bertbench.evaluation.metrics.higher_is_better`), the only source.
"""

import dataclasses
import os
from pathlib import Path

from bertbench.config import FinetuneConfig, ModelConfig, PretrainConfig, from_dict, load_toml
from bertbench.errors import BertbenchError, ConfigError, did_you_mean, unknown_name
from bertbench.evaluation.metrics import higher_is_better
from bertbench.tasks import TASKS

EXPERIMENTS_DIR = Path(__file__).resolve().parents[2] / "experiments"
SCALES_FILE = "_scales.toml"
SECTIONS = {"model": ModelConfig, "pretrain": PretrainConfig, "finetune": FinetuneConfig}
VALID_KEYS = sorted(["model.preset"] + [f"{s}.{f.name}" for s, cls in SECTIONS.items()
                                        for f in dataclasses.fields(cls)])


@dataclasses.dataclass(frozen=True)
class Scale:
    name: str
    description: str = ""
    data: str = "sample"  # "sample" (bundled) or "required" (--data-dir / $BERTBENCH_DATA)
    seeds: int = 1
    set: dict = dataclasses.field(default_factory=dict)
    proxies: dict = dataclasses.field(default_factory=dict)  # paper task -> stand-in task
    grid: dict = dataclasses.field(default_factory=dict)  # dotted finetune key -> list of values
    # > 0: each cell's grid point is chosen on this many separate selection seeds per point, then only
    # that point is run with the cell's seeds (plan.py: "selection" and "candidate" runs); 0: every point
    # is run with every seed and the table keeps the best mean (the reported seeds chose it)
    grid_selection_seeds: int = 0


@dataclasses.dataclass(frozen=True)
class Column:
    name: str  # the paper's column label (paper_numbers.csv `column`)
    task: str = ""  # task at base scale; proxied at smaller scales
    metric: str = "accuracy"  # key in the fine-tuning metrics (or a key path in the pretraining summary)
    source: str = "finetune"  # or "pretrain": read from the pretraining summary (Table 6 perplexity)
    set: dict = dataclasses.field(default_factory=dict)
    scales: dict = dataclasses.field(default_factory=dict)  # scale -> overrides after `set` (e.g. SQuAD's length)
    times100: bool = False  # metric is a fraction: show it x100 (bertbench.evaluation.metrics already gives percent)
    decimals: int = 1
    paper_column: str = ""

    @property
    def higher_is_better(self):
        """From the metric registry (a key path's last part names the metric): not a column setting."""
        return higher_is_better(self.metric)


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    row: str  # row label in our table
    paper_row: str = ""  # row in paper_numbers.csv ("" = same as row)
    pretrain: bool = True  # False: no pretraining (random init), the baseline row
    set: dict = dataclasses.field(default_factory=dict)
    scales: dict = dataclasses.field(default_factory=dict)  # scale -> extra overrides
    note: str = ""
    base: str = ""  # for sweep-expanded variants: the variant they come from (not a TOML key)
    sweep_value: object = None  # (not a TOML key)


BASELINE = Variant("no_pretraining", "No pre-training (random init)", paper_row="-", pretrain=False,
                   note="same architecture, randomly initialised, fine-tuned like the others")


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    path: Path
    columns: tuple
    variants: tuple
    title: str = ""  # "" = the name
    paper_table: str = ""
    description: str = ""
    reference: str = ""  # variant whose row is the delta's zero ("" = no delta column)
    include_baseline: bool = False
    seeds: int = 0  # 0 = the scale's default
    scales: dict = dataclasses.field(default_factory=dict)  # scale -> {"set": {...}}
    sweep: dict = dataclasses.field(default_factory=dict)  # {"key": "pretrain.num_steps", "<scale>": [values]}
    plot: bool = False


def _keys(cls, *computed):
    """The TOML keys of a schema dataclass: its fields, minus those the loader computes."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in computed)


SCALE_KEYS = _keys(Scale, "name")
COLUMN_KEYS = _keys(Column)
VARIANT_KEYS = _keys(Variant, "base", "sweep_value")
EXPERIMENT_KEYS = ("name",) + _keys(Experiment, "name", "path")  # `name` is accepted and ignored: the file names it


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
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table of settings, got {table!r}")
    for key in table:
        if key == "higher_is_better":
            raise ConfigError(f"{where}: 'higher_is_better' is not a setting: a metric's direction comes from "
                              f"bertbench.evaluation.metrics; remove the key")
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key '{key}'{did_you_mean(key, allowed)}; "
                              f"allowed: {', '.join(allowed)}")


def check_overrides(table, where):
    """Dotted overrides (nested tables allowed) -> flat {key: value}; unknown keys fail with a hint."""
    flat = flatten(table or {})
    for key in flat:
        if key not in VALID_KEYS:
            field = key.split(".")[-1]
            same_field = [k for k in VALID_KEYS if k.split(".")[-1] == field]  # right name, wrong section
            hint = (" (did you mean " + " or ".join(f"'{k}'" for k in same_field) + "?)" if same_field
                    else did_you_mean(key, VALID_KEYS))
            raise ConfigError(f"{where}: unknown setting '{key}'{hint}")
    return flat


def _check_tasks(names, where):
    """Task names must be registered in bertbench.tasks.TASKS."""
    for name in names:
        if name not in TASKS:
            raise unknown_name(f"task in {where}", name, TASKS)


def experiments_dir(path=None):
    return Path(path or os.environ.get("BERTBENCH_EXPERIMENTS") or EXPERIMENTS_DIR)


def experiment_names(directory=None):
    return sorted(p.stem for p in experiments_dir(directory).glob("*.toml") if not p.name.startswith("_"))


def _scale(name, table, where):
    _check_keys(table, SCALE_KEYS, where)
    scale = from_dict(Scale, {**table, "name": name, "set": check_overrides(table.get("set"), where),
                              "grid": check_overrides(table.get("grid"), f"{where} grid")}, prefix=f"{where}: ")
    if scale.data not in ("sample", "required"):
        raise ConfigError(f"{where}: data must be 'sample' or 'required', got {scale.data!r}")
    if any(not k.startswith("finetune.") or not isinstance(v, list) for k, v in scale.grid.items()):
        raise ConfigError(f"{where}: grid entries must be finetune.* keys with a list of values")
    _check_selection_seeds(scale.grid_selection_seeds, where)
    _check_tasks(list(scale.proxies.values()), f"{where} proxies")
    return scale


def load_scales(directory=None):
    """{name: Scale} from `_scales.toml`."""
    path = experiments_dir(directory) / SCALES_FILE
    return {name: _scale(name, table, f"{path.name} [{name}]") for name, table in load_toml(path).items()}


def _column(table, where):
    _check_keys(table, COLUMN_KEYS, where)
    scales = {s: check_overrides(t, f"{where} scales.{s}") for s, t in table.get("scales", {}).items()}
    col = from_dict(Column, {**table, "set": check_overrides(table.get("set"), where), "scales": scales},
                    prefix=f"{where}: ")
    if col.source not in ("finetune", "pretrain") or (col.source == "finetune" and not col.task):
        raise ConfigError(f"{where}: source must be 'finetune' (with a task) or 'pretrain'")
    try:
        higher_is_better(col.metric)  # the metric must be one the registry knows
    except BertbenchError as err:
        raise ConfigError(f"{where}: {err}") from None
    return col


def _variant(table, where):
    _check_keys(table, VARIANT_KEYS, where)
    scales = {s: check_overrides(t, f"{where} scales.{s}") for s, t in table.get("scales", {}).items()}
    return from_dict(Variant, {**table, "set": check_overrides(table.get("set"), where), "scales": scales},
                     prefix=f"{where}: ")


EXPERIMENT_SCALE_KEYS = ("set", "grid_selection_seeds")


def _experiment_scale(table, where):
    """An experiment's [scales.<scale>] table: its overrides, and optionally its own grid_selection_seeds."""
    _check_keys(table, EXPERIMENT_SCALE_KEYS, where)
    out = {"set": check_overrides(table.get("set"), where)}
    if "grid_selection_seeds" in table:
        out["grid_selection_seeds"] = _check_selection_seeds(table["grid_selection_seeds"], where)
    return out


def _check_selection_seeds(value, where):
    """grid_selection_seeds, of a scale or of an experiment's [scales.<scale>]: an integer >= 0."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where}: grid_selection_seeds must be an integer >= 0, got {value!r}")
    return value


def _label(table, index):
    """How errors name the index-th [[columns]] / [[variants]] table: its name, else its position."""
    return table.get("name", index) if isinstance(table, dict) else index


def load_experiment(name, directory=None):
    """The Experiment in `experiments/<name>.toml` (unknown keys, names and wrong types fail on one line)."""
    names = experiment_names(directory)
    if name not in names:
        raise unknown_name("experiment", name, names)
    path = experiments_dir(directory) / f"{name}.toml"
    data = load_toml(path)
    _check_keys(data, EXPERIMENT_KEYS, path.name)
    columns = tuple(_column(t, f"{path.name} column {_label(t, i)!r}") for i, t in enumerate(data.get("columns", [])))
    variants = tuple(_variant(t, f"{path.name} variant {_label(t, i)!r}")
                     for i, t in enumerate(data.get("variants", [])))
    _check_tasks([c.task for c in columns if c.task], path.name)
    if not columns or not variants:
        raise ConfigError(f"{path.name}: an experiment needs at least one [[columns]] and one [[variants]]")
    scales = {s: _experiment_scale(t, f"{path.name} scales.{s}") for s, t in data.get("scales", {}).items()}
    scalars = {k: v for k, v in data.items() if k not in ("name", "columns", "variants", "scales")}
    exp = from_dict(Experiment, {"title": name, **scalars, "name": name, "path": path, "columns": columns,
                                 "variants": variants, "scales": scales}, prefix=f"{path.name}: ")
    rows = [v.name for v in variants] + ([BASELINE.name] if exp.include_baseline else [])
    if exp.reference and exp.reference not in rows:  # (the no-pretraining row, when the table has it)
        raise unknown_name(f"reference variant in {path.name}", exp.reference, rows)
    return exp
