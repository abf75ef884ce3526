"""A check baseline calibrated from an experiment's records (`check --calibrate-from-records RESULTS`).

    calibrate_from_records("results", "results/baselines/small.json", SUITES["small"])

The records of `bertbench run ablation_nsp --scale small` already hold the paired fine-tuning seeds of
every cell of the small suite: its baseline is computed from them (same format and tolerance formula
as `check --calibrate`, check.py) instead of rerunning hours of work. Only the suite's own runs count,
as the suite resolves them today (check.suite_plan: the experiment's ids): a record of one of its cells
(variant, column, pretraining seed 0) or pretrainings whose id or settings differ is refused with one
line naming the first setting that differs (it measured something else), and so is a run of the
suite without an ok record. The seeds are those the records hold (0..the highest), every one
required. The baseline's git commit and environment are the records' (where the numbers were measured).
"""

import json
from pathlib import Path

from bertbench.config import to_dict
from bertbench.errors import BertbenchError
from bertbench.experiments.ids import without_later_defaults
from bertbench.results import records
from bertbench.results.check import (SELECTED, collect, environment_of, new_baseline, seed0_ids, selected_points, suite_plan,
                                     write_baseline)

PRETRAIN_KINDS = ("pretrain", "random_init")


class RecordMismatch(BertbenchError):
    """A record of a suite's cell that is not the suite's run: the baseline would mix settings."""


def _normal(section, data):
    """A config section as its JSON record holds it, without later-added fields at their defaults (ids.py)."""
    return without_later_defaults(section, json.loads(json.dumps(data or {})))


def _difference(section, found, wanted):
    """'finetune.learning_rate is 0.0002, the suite resolves 0.0001' for the first differing key, or None."""
    found, wanted = _normal(section, found), _normal(section, wanted)
    for key in sorted(set(found) | set(wanted)):
        if found.get(key) != wanted.get(key):
            return f"{section}.{key} is {found.get(key)!r}, the suite resolves {wanted.get(key)!r}"
    return None


def _finetune_problem(record, ft, plan):
    """Why a fine-tuning record of a suite cell is not the suite's run `ft`; None when it is."""
    config = record.get("config") or {}
    return (_difference("finetune", config.get("finetune"), to_dict(ft.finetune))
            or (record.get("pretrain_id") != ft.pretrain_id
                and f"it fine-tunes pretraining {record.get('pretrain_id')}, the suite's is {ft.pretrain_id} "
                    f"(other pretraining settings)")
            or (config.get("init", ft.init) != ft.init and f"it starts from {config.get('init')}, not {ft.init}")
            or (record.get("data") != plan.data and f"it read {record.get('data')} data, the suite {plan.data}")
            or (record.get("run_id") != ft.id and f"run id {record.get('run_id')}, the suite resolves {ft.id}")
            or None)


def _pretrain_problem(record, pre):
    """Why a pretraining record of a suite variant is not the suite's run `pre`; None when it is."""
    if record.get("pretrain_id") == pre.id:
        return None
    found = (record.get("config") or {}).get("pretrain")
    return ((pre.kind == "pretrain" and _difference("pretrain", found, to_dict(pre.pretrain)))
            or f"pretraining id {record.get('pretrain_id')}, the suite resolves {pre.id}")


def _cell_records(folder, variants, columns, at_point):
    """(path, record) of the fine-tuning and pretraining records of the suite's variants and columns at
    its grid point (`at_point(record)`; pretraining seed 0: the check's); other records of the experiment
    (other rates of the scale's grid, grid-selection runs) are not the suite's business."""
    found = []
    for path in sorted(Path(folder).glob("*.json")):
        record = records.read_json(path)
        if record.get("pretrain_seed"):
            continue
        if record.get("kind") == "finetune" and record.get("variant") in variants and record.get("column") in columns \
                and at_point(record) and record.get("role") != "selection":
            found.append((path, record))
        elif record.get("kind") in PRETRAIN_KINDS and set(record.get("variants") or ()) & set(variants):
            found.append((path, record))
    return found


def _refuse_mismatches(found, plan):
    """A RecordMismatch for the first record that is not one of the plan's runs."""
    by_cell = {(f.variant, f.column, f.seed): f for f in plan.finetunes}
    by_variant = {name: next(p for p in plan.pretrains if p.id == pid) for name, pid in plan.variant_pretrain.items()}
    for path, record in found:
        if record.get("kind") == "finetune":
            ft = by_cell[(record["variant"], record["column"], record.get("seed"))]
            problem, what = _finetune_problem(record, ft, plan), f"{ft.variant}/{ft.column} seed {ft.seed}"
        else:
            name = next(v for v in record["variants"] if v in by_variant)
            problem, what = _pretrain_problem(record, by_variant[name]), f"the pretraining of {name}"
        if problem:
            raise RecordMismatch(f"{path}: not the suite's run of {what}: {problem}; calibrate from records of "
                                 f"today's settings (`bertbench run {plan.experiment.name} --scale "
                                 f"{plan.scale.name}` with a new --results folder)")


def _refuse_missing(found, plan, results):
    ok = {r.get("run_id") if r.get("kind") == "finetune" else r.get("pretrain_id")
          for _, r in found if r.get("status") == "ok"}
    missing = [(p.id, f"the pretraining {p.id}") for p in plan.pretrains if p.id not in ok] + \
              [(f.id, f"{f.variant}/{f.column} seed {f.seed}") for f in plan.finetunes if f.id not in ok]
    if missing:
        seeds = 1 + max(f.seed for f in plan.finetunes)
        raise BertbenchError(f"{len(missing)} of the suite's {len(plan.pretrains) + len(plan.finetunes)} runs have "
                             f"no ok record in {results} (e.g. {missing[0][1]}, id {missing[0][0]}); finish them "
                             f"with `bertbench run {plan.experiment.name} --scale {plan.scale.name} --seeds {seeds} "
                             f"--results {results}`")


def calibrate_from_records(results, baseline_path, suite, out=print):
    """Write the baseline of `suite` from the records under `results` (a results folder, as `run
    --results`); exit status 0. One-line errors: no records, a mismatched record, a missing run."""
    plan = suite_plan(suite)
    folder = records.records_dir(results, plan.experiment.name, plan.scale.name)
    variants, columns = {v.name for v in plan.variants}, {f.column for f in plan.finetunes}
    points = None
    if suite.get("grid") == SELECTED:  # each cell at the point the experiment's selection runs chose
        points = selected_points(plan, folder)
        if points is None:
            raise BertbenchError(f"no fine-tuning records of the {plan.scale.name} check suite's grid-selection runs "
                                 f"(which choose each cell's rate) in {folder}; run `bertbench run "
                                 f"{plan.experiment.name} --scale {plan.scale.name} --results {results}` first, or "
                                 f"pass the folder that has them")

        def at_point(record):
            return points.get(f"{record.get('variant')}/{record.get('column')}") == record.get("grid")
    else:
        def at_point(record):
            return all((record.get("grid") or {}).get(k) == v for k, v in (suite.get("grid") or {}).items())
    found = _cell_records(folder, variants, columns, at_point)
    seeds = [r.get("seed") for _, r in found if r.get("kind") == "finetune"]
    if not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise BertbenchError(f"no fine-tuning records of the {plan.scale.name} check suite ({', '.join(sorted(variants))}"
                             f" x {', '.join(sorted(columns))}) in {folder}; run `bertbench run {plan.experiment.name}"
                             f" --scale {plan.scale.name} --results {results}` first, or pass the folder that has them")
    plan = suite_plan(suite, seeds=max(seeds) + 1, points=points)
    _refuse_mismatches(found, plan)
    _refuse_missing(found, plan, results)
    # a pretraining's key names the suite's variants that share it (the experiment's may be more)
    used = [dict(r, variants=plan.variants_of(r["pretrain_id"])) if r.get("kind") in PRETRAIN_KINDS else r
            for _, r in found if r.get("status") == "ok"]
    baseline = new_baseline(collect(used), suite, max(seeds) + 1, seed0_ids(plan), points)
    measured = next(r for r in used if r.get("pretrain_id") == plan.pretrains[0].id and r.get("kind") != "finetune")
    hardware = measured.get("hardware") or {}
    baseline.update(calibrated_from=str(folder), git=measured.get("git"),
                    environment=environment_of(measured.get("packages"), hardware))
    out(f"calibrating the {plan.scale.name} check from {len(used)} records in {folder}")
    return write_baseline(baseline, baseline_path, out)
