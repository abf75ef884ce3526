"""Where each run of a plan stands, as the runner and the dry run both see it: cached (its record is in
the results folder), reused (finished in the runs folder), to run, and for grid-selection candidates
(experiments/plan.py) 'if chosen' or 'unchosen', from the point their cell's selection runs chose.
"""

from pathlib import Path

from bertbench.evaluation.selection import point_key, selected_point
from bertbench.experiments.plan import cell_key
from bertbench.results import records


def finetune_state(ft, recs, runs, chosen=None):
    """'cached' (its record is in the results folder: nothing to do), 'reused' (a finished run in the
    runs folder: its record is written from it) or 'to run'; for a grid-selection candidate also
    'unchosen' (its cell's selection runs chose another point: nothing to do) or 'if chosen' (they have
    not all run yet). `chosen`: chosen_points() of the plan. The runner and the dry run both ask this."""
    if records.read_ok(Path(recs) / f"{ft.id}.json"):
        return "cached"
    if ft.role == "candidate":
        point = (chosen or {}).get(cell_key(ft))
        if point is None:
            return "if chosen"
        if point != ft.grid:
            return "unchosen"
    return "reused" if records.read_ok(Path(runs) / "finetune" / ft.id / "run.json") else "to run"


def chosen_points(plan, recs):
    """{cell key: the grid point its selection runs chose, or None while one of them has no record} for
    the cells of `plan` with selection runs; the choice is evaluation.selection.selected_point's (best
    mean of the ok runs' values), the one the tables make from the records (cells.py)."""
    cells = {}
    for ft in plan.finetunes:
        if ft.role == "selection":
            cells.setdefault(cell_key(ft), []).append(ft)
    columns = {c.name: c for c in plan.experiment.columns}
    chosen = {}
    for key, runs in cells.items():
        paths = [Path(recs) / f"{ft.id}.json" for ft in runs]
        if not all(path.is_file() for path in paths):
            chosen[key] = None
            continue
        points, values = {}, {}  # point_key -> point, [values]
        for ft, path in zip(runs, paths, strict=True):
            record = records.read_json(path)
            points[point_key(ft.grid)] = ft.grid
            values.setdefault(point_key(ft.grid), []).append(
                (record.get("main_metric") or {}).get("value") if record.get("status") == "ok" else None)
        chosen[key] = points[selected_point(values, columns[key[2]].higher_is_better)]
    return chosen


def pretrain_state(pre, needed, recs, runs):
    """As finetune_state for a pretraining run; `needed`: some of its fine-tuning runs are not cached
    (then its checkpoint is needed, not only its record)."""
    if not needed and records.read_ok(Path(recs) / f"pretrain-{pre.id}.json"):
        return "cached"
    return "reused" if records.read_ok(Path(runs) / "pretrain" / pre.id / "run.json") else "to run"


DONE = ("cached", "unchosen")  # fine-tuning states with nothing left to do


def plan_states(plan, recs, runs):
    """{run id: state} of every run of a plan (see finetune_state)."""
    chosen = chosen_points(plan, recs)
    states = {ft.id: finetune_state(ft, recs, runs, chosen) for ft in plan.finetunes}
    for pre in plan.pretrains:
        needed = any(states[f.id] not in DONE for f in plan.finetunes if f.pretrain_id == pre.id)
        states[pre.id] = pretrain_state(pre, needed, recs, runs)
    return states


def undecided_candidates(plan, states):
    """The 'if chosen' candidates that will run, for counts and estimates: per cell, those of one grid
    point (its first; the points' runs differ in their grid values only)."""
    first = {}
    for ft in plan.finetunes:
        if states.get(ft.id) == "if chosen":
            first.setdefault(cell_key(ft), ft.grid)
    return [ft for ft in plan.finetunes if states.get(ft.id) == "if chosen" and ft.grid == first[cell_key(ft)]]
