"""Tables: run records -> the paper's row/column layout with intervals and paired differences.

`build_table(records, experiment, paper)` is a pure function (every bootstrap has a fixed seed, so
the same records give the same table, bit for bit). Rows are the experiment's variants (in file
order, the no-pretraining baseline last), columns its table columns; per cell (`cells.py`: the grid
point with the best mean on dev, every run of it, as `finetune --grid` selects):

    mean, std, n           over the runs (units (pretraining seed, seed)), in display units
    low, high, method      its 95% interval and how it was computed (`intervals.py`)
    collapsed, majority    runs flagged as collapsed (kept); the column's majority-class baseline
    paper                  the paper's published number (results/paper_numbers.csv)
    delta, delta_low,      mean paired difference to the reference row, its 95% interval, p-value,
    delta_high, p, pairs,  matched units and test (`comparisons.py`); p_holm: Holm-adjusted over the
    test, p_holm           whole table

Rendering (md, csv, latex) is `formats.py`; the footnotes are `footnotes.py`; the plots `plots.py`.
Metrics are percentages as bertbench.evaluation.metrics reports them (a column marked `times100`
holds fractions and is scaled).
"""

import csv
import math
from pathlib import Path

import numpy as np

from bertbench import files
from bertbench.config import to_dict
from bertbench.errors import BertbenchError
from bertbench.experiments.ids import without_later_defaults
from bertbench.experiments.plan import expand
from bertbench.experiments.reference import is_reference, reference_notes, references_in
from bertbench.results.cells import cell, cell_stats, majority, ok_records, table_cells
from bertbench.results.comparisons import REFERENCE, holm_adjust, paired
from bertbench.results.footnotes import statistics_notes, sweep_notes
from bertbench.results.formats import RENDERERS, SUFFIX
from bertbench.results.intervals import SEEDS, cell_interval
from bertbench.results.plots import plot_cells, plot_sweep
from bertbench.results.records import load_records

PAPER_NUMBERS = Path(__file__).resolve().parents[2] / "results" / "paper_numbers.csv"
FIELDS = ("mean", "std", "low", "high", "n", "method", "collapsed", "majority", "paper",
          "delta", "delta_low", "delta_high", "p", "p_holm", "pairs", "test")
MEDIAN_FIELDS = ("median", "median_low", "median_high")  # after "high", with median=True
SEED = 0  # of every bootstrap in a table


def load_paper_numbers(path=PAPER_NUMBERS):
    """Rows of paper_numbers.csv as dicts (value: float, or None for note rows)."""
    path = Path(path)
    if not path.is_file():
        raise BertbenchError(f"paper numbers not found: {path}; restore results/paper_numbers.csv")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for i, row in enumerate(rows, start=2):
        try:
            row["value"] = float(row["value"]) if row["value"].strip() else None
        except ValueError:
            raise BertbenchError(f"{path}:{i}: value {row['value']!r} is not a number; fix the file") from None
    return rows


def build_table(records, experiment, paper=(), median=False, seed=SEED):
    """Records -> pandas DataFrame indexed by row label, columns MultiIndex (column, field) with the
    fields above (+ median, median_low, median_high when `median`). `attrs` carries the notes, the
    display decimals, the reference row, the statistic shown and the sweep rows (for the plots)."""
    import pandas as pd

    ok = ok_records(records, experiment)
    variants, cells = table_cells(ok, experiment)
    ours = list(variants)
    for ref in references_in(ok):  # external checkpoints (`run --reference-checkpoint`): after every row
        variants.append(ref.variant)
        for col in experiment.columns:
            cells[col.name][ref.variant.name] = cell(ok, ref.variant.name, col)
    names = [v.name for v in variants]
    reference = experiment.reference if experiment.reference in names else None
    published = {(p["row"], p["column"]): p["value"] for p in paper
                 if p["table"] == experiment.paper_table and p["value"] is not None}
    data, tested = {v.row: {} for v in variants}, []
    for col in experiment.columns:
        fields = _column(cells[col.name], variants, reference, majority(ok, col), median, seed)
        for v in variants:
            fields[v.name]["paper"] = published.get((v.paper_row or v.row, col.paper_column or col.name), math.nan)
            data[v.row].update({(col.name, f): x for f, x in fields[v.name].items()})
            if not math.isnan(fields[v.name]["p"]):
                tested.append((v.row, col.name, fields[v.name]))
    holm_adjust([f for _, _, f in tested])
    for row, column, f in tested:
        data[row][(column, "p_holm")] = f["p_holm"]
    order = FIELDS[:4] + (MEDIAN_FIELDS if median else ()) + FIELDS[4:]
    columns = pd.MultiIndex.from_tuples([(c.name, f) for c in experiment.columns for f in order])
    frame = pd.DataFrame([[data[v.row].get(key, math.nan) for key in columns] for v in variants],
                         index=[v.row for v in variants], columns=columns)
    frame.index.name = experiment.paper_table or experiment.name
    frame.attrs.update(decimals={c.name: c.decimals for c in experiment.columns},
                       reference=next((v.row for v in variants if v.name == reference), None),
                       title=experiment.title, statistic="median" if median else "mean",
                       sweep={v.row: [v.base, v.sweep_value] for v in variants if v.base})
    frame.attrs["notes"] = (_proxy_notes(ok, experiment) + statistics_notes(frame, experiment) + sweep_notes(frame, experiment)
                            + _size_notes(ok, ours) + reference_notes(ok, names) + _compute_notes(ok)
                            + [f"{p['source']}: {p['note']}" for p in paper
                               if p["table"] == experiment.paper_table and p["value"] is None])
    return frame


def _column(cells, variants, reference, majority_value, median, seed):
    """{variant: {field: value}} of one column: statistics, intervals and paired comparisons."""
    out = {}
    for v in variants:
        c = cells[v.name]
        mean, std, n = cell_stats(c.values)
        low, high, method = cell_interval(c, "mean", seed) if n else (math.nan, math.nan, "")
        fields = {"mean": mean, "std": std, "low": low, "high": high, "n": n, "method": method,
                  "collapsed": c.collapsed, "majority": majority_value}
        if median:
            fields["median"] = float(np.median(c.values)) if n else math.nan
            # over one or two runs the median is the mean: its interval is the mean's
            fields["median_low"], fields["median_high"], _ = (cell_interval(c, "median", seed)
                                                              if method == SEEDS else (low, high, method))
        # A reference row has no Δ: it is not an ablation of the experiment (another size, data and
        # pretraining), so a paired test answers no question of the table, and adding its tests to the
        # Holm family would change the experiment's own corrected p-values whenever a reference is run.
        if reference is None or not n or is_reference(v.name):
            comparison = {"delta": math.nan, "low": math.nan, "high": math.nan, "p": math.nan, "method": ""}
        elif v.name == reference:
            comparison = {"delta": 0.0 if n else math.nan, "low": math.nan, "high": math.nan, "p": math.nan,
                          "method": REFERENCE if n else ""}
        else:
            comparison = paired(c, cells[reference], seed)
        fields.update(delta=comparison["delta"], delta_low=comparison["low"], delta_high=comparison["high"],
                      p=comparison["p"], p_holm=math.nan, pairs=comparison.get("n", 0), test=comparison["method"])
        out[v.name] = fields
    return out


def _proxy_notes(records, experiment):
    """Which columns ran on a stand-in task at this scale."""
    notes = []
    for col in experiment.columns:
        proxies = sorted({(r["task"], r["proxy_for"]) for r in records
                          if r.get("column") == col.name and r.get("proxy_for")})
        notes += [f"{col.name}: measured on `{task}`, a stand-in for `{proxy_for}` (its data is not available at "
                  f"this scale); the paper's number is for `{proxy_for}`." for task, proxy_for in proxies]
    return notes


def _size_notes(records, variants):
    """'ours: <row> = L.. H.. A..' when rows differ in size (scaled-down analogues of the paper's)."""
    sizes = {}
    for r in records:
        model = (r.get("config") or {}).get("model") or {}
        for name in [r.get("variant"), *r.get("variants", ())]:
            if name and model:
                sizes[name] = f"L{model['num_layers']} H{model['hidden_dim']} A{model['num_heads']}"
    shown = [(v.row, sizes[v.name]) for v in variants if v.name in sizes]
    if len({size for _, size in shown}) < 2:
        return []
    return ["our model sizes at this scale: " + "; ".join(f"{row} = {size}" for row, size in shown)]


def _hours(seconds):
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _compute_notes(records):
    """'Compute: ...': the wall time of the table's runs as their records give it, and the machines."""
    pre = [r for r in records if r.get("kind") == "pretrain" and (r.get("output") or {}).get("steps")]  # not random init
    fts = [r for r in records if r.get("kind") == "finetune"]
    if not any(r.get("wall_time_s") for r in pre + fts):
        return []
    partial = sum(1 for r in pre if r.get("wall_time_complete") is False or (  # older records: no such field
        r.get("wall_time_complete") is None and (r.get("output") or {}).get("resumed_from_step")))
    machines = sorted({f"{h.get('cpu_model') or '?'}" + (f" ({h['cpu_isa']})" if h.get("cpu_isa") else "")
                       + f", {h.get('cpu_cores') or '?'} cores"
                       + "".join(f" + {a}" for a in h.get("accelerators") or ())
                       for h in (r.get("hardware") or {} for r in pre + fts)})
    seconds = [sum(r.get("wall_time_s") or 0.0 for r in runs) for runs in (pre, fts)]
    # pretrainings whose exports were fine-tuned before they ended (a staged sweep): no record, no time yet
    running = {r.get("pretrain_id") for r in fts if (r.get("config") or {}).get("pretrain")} - \
        {r.get("pretrain_id") for r in pre}
    return [f"Compute (wall clock, from the records): {len(pre)} pretraining run(s) {_hours(seconds[0])}"
            + (f" (at least: {partial} resumed run(s) record only their last process)" if partial else "")
            + (f" + {len(running)} not finished (a staged run's record, with its time, is written when its "
               f"last stage ends)" if running else "")
            + f", {len(fts)} fine-tuning run(s) {_hours(seconds[1])}; on {'; '.join(machines)}."]


def current_records(records, plan):
    """Records of the runs in `plan` (seeds aside), in the plan's order (so grid points come in grid
    order, which decides ties): drops records left by earlier versions of a variant's config, which
    would otherwise be averaged in."""
    pretrain_ids = {p.id for p in plan.pretrains}
    order = {}  # (pretrain, variant, column, init, config without seed) -> position of its first run
    for f in plan.finetunes:
        order.setdefault((f.pretrain_id, f.variant, f.column, f.init, _without_seed(to_dict(f.finetune))), len(order))
    keep = []
    for r in records:
        if r.get("kind") == "finetune":
            cfg = r.get("config", {})
            key = (r.get("pretrain_id"), r.get("variant"), r.get("column"), cfg.get("init"),
                   _without_seed(cfg.get("finetune", {})))
            if key in order:
                keep.append((order[key], r))
        elif r.get("pretrain_id") in pretrain_ids:
            keep.append((-1, r))
    return [r for _, r in sorted(keep, key=lambda pair: pair[0])]


def _without_seed(cfg):
    return tuple(sorted((k, str(v)) for k, v in without_later_defaults("finetune", cfg).items() if k != "seed"))


def table_records(experiment, scale, results="results"):
    """The records a table of `experiment` at `scale` reads: those of the current plan, with as many
    pretraining seeds as the records have and the reference rows (external checkpoints) they hold."""
    found = load_records(results, experiment.name, scale)
    pretrain_seeds = 1 + max([int(r.get("pretrain_seed") or 0) for r in found] or [0])
    plan = expand(experiment, scale, baseline=True, pretrain_seeds=pretrain_seeds,
                  references=references_in(found))  # reference rows: rebuilt from their records
    return current_records(found, plan)


def write_tables(experiment, scale, results="results", fmt="md", paper_path=PAPER_NUMBERS, median=False):
    """Rebuild table.{md,csv,tex} and cells.png (+ steps.png for a sweep with `plot`) from the records;
    returns the `fmt` text (of the median table when `median`: the files always show the mean)."""
    records = table_records(experiment, scale, results)
    paper = load_paper_numbers(paper_path)
    frame = build_table(records, experiment, paper)
    folder = Path(results) / experiment.name / scale
    texts = {name: render(frame) for name, render in RENDERERS.items()}
    for name, text in texts.items():
        files.write_text_atomic(folder / f"table.{SUFFIX[name]}", text)
    plot_cells(frame, experiment, folder / "cells.png")
    if experiment.plot:
        plot_sweep(frame, experiment, folder / "steps.png", records)
    text = RENDERERS[fmt](build_table(records, experiment, paper, median=True)) if median else texts[fmt]
    return f"{experiment.title} ({experiment.paper_table or 'beyond the paper'}), scale {scale}\n\n" + text
