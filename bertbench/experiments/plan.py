"""Plans: an experiment at a scale, expanded into resolved runs with content-hash ids.

`expand()` layers the overrides (scale -> experiment's scale -> variant -> variant's scale -> sweep ->
column -> column's scale -> grid point), resolves every run's configs, validates them (unknown keys fail with a
did-you-mean before anything runs) and gives each run its id (`ids.py`): a pretraining shared by
variants or experiments is one run.

With a fine-tuning grid, a scale (or an experiment's [scales.<scale>]) may set `grid_selection_seeds = S`:
each cell then runs every grid point with S selection seeds (SELECTION_SEED + i) first, and only the
point they choose (best dev mean, evaluation.selection.best_point) with its reported seeds: the plan
lists those as "candidate" runs of every point, and the runner runs the chosen point's
(`results.states.chosen_points`). Per cell that is points x S + seeds runs instead of points x seeds,
and the reported mean is not the maximum over points of means of the same seeds.
"""

import dataclasses
import itertools

from bertbench.config import MODEL_SIZES, FinetuneConfig, ModelConfig, PretrainConfig, from_dict
from bertbench.errors import ConfigError, unknown_name
from bertbench.experiments.ids import content_id, finetune_payload, pretrain_payload
from bertbench.experiments.reference import KIND, check_fits
from bertbench.experiments.schema import BASELINE, SECTIONS, Experiment, Scale, check_overrides, load_scales


@dataclasses.dataclass(frozen=True)
class PretrainRun:
    id: str
    kind: str  # "pretrain", "random_init" (the no-pretraining baseline) or "reference" (an external checkpoint)
    model: ModelConfig
    pretrain: PretrainConfig
    export_at: tuple = ()  # extra encoder exports (ablation_steps: one run, fine-tuned at several k)
    pretrain_seed: int = 0  # m of `run --pretrain-seeds M`: pretrain.seed is the variant's seed + m
    reference: object = None  # kind "reference": the external checkpoint (experiments/reference.py)


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
    pretrain_seed: int = 0  # which pretraining of the variant (with `seed`: the pairing unit of comparisons)
    # "" (reported), "selection" (chooses its cell's grid point; seeds SELECTION_SEED + i, never reported)
    # or "candidate" (reported, run only if the selection runs choose its point); not part of the id
    role: str = ""


# Selection runs take seeds from here (seed SELECTION_SEED + i): apart from the reported seeds, so the
# seeds that choose a cell's grid point are not the ones its mean is computed from (no winner's curse).
SELECTION_SEED = 1000


def cell_key(ft):
    """The runs that form one table cell (and choose one grid point): one pretraining run's (seed's)
    variant x column."""
    return ft.pretrain_id, ft.variant, ft.column


@dataclasses.dataclass(frozen=True)
class Plan:
    experiment: Experiment
    scale: Scale
    data: str  # "sample" or "external": which data the fine-tuning runs read (part of their ids)
    variants: tuple  # Variant (sweep-expanded)
    variant_pretrain: dict  # variant name -> pretrain id (of pretraining seed 0)
    pretrains: tuple  # PretrainRun, each once
    finetunes: tuple  # FinetuneRun
    pretrain_owners: dict = dataclasses.field(default_factory=dict)  # pretrain id -> variant names

    def variants_of(self, pretrain_id):
        """The (sweep-expanded) variants that use pretraining run `pretrain_id`."""
        return list(self.pretrain_owners.get(pretrain_id, ()))


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
    check_overrides({key: 0}, f"{exp.path.name} [sweep]")
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


def _rows(exp, only, baseline, references):
    """The variants a plan runs: all (or --only's), the no-pretraining baseline with --baseline or
    include_baseline (or --only no_pretraining); "reference" in --only: the references without the others."""
    candidates = list(exp.variants) + [BASELINE]
    only_refs = bool(references) and KIND in (only or ())
    only = [n for n in only if n != KIND] if only_refs else only
    keep = set(_pick([v.name for v in candidates], only, "variant", exp.name) if only
               else [] if only_refs else [v.name for v in exp.variants])
    if baseline or (exp.include_baseline and not only and not only_refs):
        keep.add(BASELINE.name)
    return [v for v in candidates if v.name in keep]


def expand(exp, scale_name, *, seeds=None, only=None, columns=None, baseline=False, data="sample",
           scales=None, pretrain_seeds=1, references=()):
    """The Plan of experiment `exp` at a scale; every config resolved and validated, ids computed.

    seeds: fine-tuning seeds 0..N-1 per pretraining; pretrain_seeds: each variant pretrained M times
    (MultiBERTs-style), pretraining seed m using the variant's pretrain.seed + m (m = 0 is the plain
    run, so its ids do not change). references: external checkpoints (`reference.Reference`), one row
    each after the others; `only` may name "reference" to run them without the experiment's variants.
    """
    scales = scales or load_scales(exp.path.parent)
    if scale_name not in scales:
        raise unknown_name("scale", scale_name, scales)
    scale = scales[scale_name]
    variants = _rows(exp, only, baseline, references)
    wanted_cols = _pick([c.name for c in exp.columns], columns, "column", exp.name)
    cols = [c for c in exp.columns if c.name in wanted_cols and c.source == "finetune"]
    seeds = list(range(seeds or exp.seeds or scale.seeds))
    grid_keys = sorted(scale.grid)
    grid = [dict(zip(grid_keys, point)) for point in itertools.product(*(scale.grid[k] for k in grid_keys))]
    selecting = exp.scales.get(scale_name, {}).get("grid_selection_seeds", scale.grid_selection_seeds)
    selection = [SELECTION_SEED + i for i in range(selecting)] if len(grid) > 1 else []
    if selection and seeds[-1] >= SELECTION_SEED:
        raise ConfigError(f"at most {SELECTION_SEED} seeds with grid selection (selection runs use seeds "
                          f"{SELECTION_SEED}+), got {len(seeds)}")
    if pretrain_seeds < 1:
        raise ConfigError(f"--pretrain-seeds must be at least 1, got {pretrain_seeds}")
    pretrains, finetunes, variant_pretrain, owners, expanded = {}, {}, {}, {}, []
    for variant in variants:
        for v, sweep_set, init, export_at in _sweep(exp, variant, scale_name):
            where = f"{exp.path.name} variant '{v.name}' at scale '{scale_name}'"
            layers = {**scale.set, **exp.scales.get(scale_name, {}).get("set", {}), **v.set,
                      **v.scales.get(scale_name, {}), **sweep_set}
            model, pre, _ = resolve_configs(layers, where)
            kind = "pretrain" if v.pretrain else "random_init"
            expanded.append(v)
            for m in range(pretrain_seeds):
                pre_m = dataclasses.replace(pre, seed=pre.seed + m)
                pid = content_id(pretrain_payload(kind, model, pre_m, export_at))
                pretrains.setdefault(pid, PretrainRun(pid, kind, model, pre_m, export_at, m))
                owners.setdefault(pid, []).append(v.name)
                variant_pretrain.setdefault(v.name, pid)
                run = RunContext(exp, scale, v, layers, where, pid, init, m, data)
                _add_finetunes(finetunes, run, cols, grid, seeds, selection)
    for ref in references:  # fine-tuned like the baseline: the scale's settings, no variant's overrides
        layers = {**scale.set, **exp.scales.get(scale_name, {}).get("set", {})}
        where = f"{exp.path.name} reference '{ref.label}' at scale '{scale_name}'"
        pretrains[ref.id] = PretrainRun(ref.id, KIND, ref.model, resolve_configs(layers, where)[1], reference=ref)
        expanded.append(ref.variant)
        owners[ref.id], variant_pretrain[ref.variant.name] = [ref.variant.name], ref.id
        mine = {}  # its runs: each must fit the checkpoint's position table
        _add_finetunes(mine, RunContext(exp, scale, ref.variant, layers, where, ref.id, "encoder", 0, data),
                       cols, grid, seeds, selection)
        check_fits(ref, mine.values())
        finetunes.update(mine)
    return Plan(exp, scale, data, tuple(expanded), variant_pretrain, tuple(pretrains.values()),
                tuple(finetunes.values()), {pid: tuple(names) for pid, names in owners.items()})


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What the fine-tuning runs of one (variant, pretraining seed) share."""

    exp: Experiment
    scale: Scale
    variant: object  # Variant
    layers: dict  # the variant's resolved dotted overrides
    where: str  # for error messages
    pretrain_id: str
    init: str
    pretrain_seed: int
    data: str


def _add_finetunes(finetunes, run, cols, grid, seeds, selection=()):
    """Every column x grid point x seed of one pretraining run, added to `finetunes` by id; with
    `selection` seeds, those runs first (role "selection") and the reported seeds as candidates."""
    runs = [(col, point, seed, "selection") for col, point, seed in itertools.product(cols, grid, selection)]
    runs += [(col, point, seed, "candidate" if selection else "") for col, point, seed in itertools.product(cols, grid, seeds)]
    for col, point, seed, role in runs:
        task = run.scale.proxies.get(col.task, col.task)
        flat = {**run.layers, **col.set, **col.scales.get(run.scale.name, {}), **point, "finetune.task": task, "finetune.seed": seed}
        _, _, ft = resolve_configs(flat, f"{run.where}, column '{col.name}'")
        fid = content_id(finetune_payload(run.pretrain_id, run.init, ft, run.data))
        if fid in finetunes:
            other = finetunes[fid]
            raise ConfigError(f"{run.exp.path.name}: '{run.variant.name}'/'{col.name}' and '{other.variant}'/"
                              f"'{other.column}' resolve to the same run; make their settings differ")
        finetunes[fid] = FinetuneRun(fid, run.pretrain_id, run.init, run.variant.name, col.name, task,
                                     col.task if task != col.task else "", seed, point, ft, run.pretrain_seed, role)
