"""Tables: run records -> the paper's row/column layout -> Markdown / CSV / LaTeX (the `table` command's work).

`build_table(records, experiment, paper)` is a pure function: rows are the experiment's variants
(in file order, the no-pretraining baseline last), columns its table columns, each with our
mean, std and n over seeds (`cells.py`: the grid point with the best mean on dev, every seed of
it, as `finetune --grid` selects), the paper's published number, and the delta of our mean from the
reference (BERT) row. Metrics are percentages as bertbench.evaluation.metrics reports them (a column
marked `times100` holds fractions and is scaled).
"""

import csv
import dataclasses
import math
from pathlib import Path

from bertbench import files
from bertbench.config import to_dict
from bertbench.errors import BertbenchError
from bertbench.experiments.plan import expand
from bertbench.experiments.schema import BASELINE
from bertbench.results.cells import cell_stats, cell_values
from bertbench.results.plots import plot_sweep
from bertbench.results.records import load_records

PAPER_NUMBERS = Path(__file__).resolve().parents[2] / "results" / "paper_numbers.csv"
FIELDS = ("mean", "std", "n", "paper", "delta")


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


def build_table(records, experiment, paper=()):
    """Records -> pandas DataFrame indexed by row label, columns MultiIndex (column, field) with
    fields mean/std/n/paper/delta. `attrs` carries the notes and the display decimals."""
    import pandas as pd

    ok = [r for r in records if r.get("status") == "ok" and r.get("experiment") == experiment.name]
    variants = list(experiment.variants)
    seen = {v for r in ok for v in [r.get("variant"), *r.get("variants", ())] if v}
    expanded = {r["variant"]: r for r in ok if r.get("kind") == "finetune"}
    if experiment.sweep:  # one row per sweep point that has records, in step order
        variants = _sweep_variants(experiment, expanded)
    if BASELINE.name in seen and BASELINE.name not in [v.name for v in variants]:
        variants.append(BASELINE)
    published = {(p["row"], p["column"]): p["value"] for p in paper
                 if p["table"] == experiment.paper_table and p["value"] is not None}
    data, notes = {}, []
    for col in experiment.columns:
        for v in variants:
            mean, std, n = cell_stats(cell_values(ok, v.name, col))
            value = published.get((v.paper_row or v.row, col.paper_column or col.name), math.nan)
            data.setdefault(v.row, {}).update({(col.name, "mean"): mean, (col.name, "std"): std,
                                               (col.name, "n"): n, (col.name, "paper"): value})
        proxies = sorted({(r["task"], r["proxy_for"]) for r in ok
                          if r.get("column") == col.name and r.get("proxy_for")})
        for task, proxy_for in proxies:
            notes.append(f"{col.name}: measured on `{task}`, a stand-in for `{proxy_for}` (its data is not "
                         f"available at this scale); the paper's number is for `{proxy_for}`.")
    all_columns = pd.MultiIndex.from_tuples([(c.name, f) for c in experiment.columns for f in FIELDS[:4]])
    frame = pd.DataFrame.from_dict(data, orient="index") if data else pd.DataFrame(columns=all_columns)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    ref = next((v.row for v in variants if v.name == experiment.reference), None)
    for col in experiment.columns:
        base = frame.loc[ref, (col.name, "mean")] if ref in frame.index else math.nan
        frame[(col.name, "delta")] = frame[(col.name, "mean")] - base
    frame = frame[[(c.name, f) for c in experiment.columns for f in FIELDS]]
    frame.index.name = experiment.paper_table or experiment.name
    notes += _size_notes(ok, variants)
    notes += [f"{p['source']}: {p['note']}" for p in paper
              if p["table"] == experiment.paper_table and p["value"] is None]
    frame.attrs.update(notes=notes, decimals={c.name: c.decimals for c in experiment.columns},
                       reference=ref, title=experiment.title)
    return frame


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


def _sweep_variants(experiment, expanded):
    """Sweep-expanded variants that have records: each base variant's points in increasing order."""
    points = {(r.get("base_variant"), r.get("sweep_value")) for r in expanded.values()}
    return [dataclasses.replace(v, name=f"{v.name}@{k}", row=f"{v.row} @ {k:,}", base=v.name, sweep_value=k)
            for v in experiment.variants for k in sorted(k for b, k in points if b == v.name)]


def _cells(frame, col, decimals):
    """Display strings of one column: ours 'mean ± std (n)', paper, delta."""
    out = []
    for _, row in frame.iterrows():
        mean, std, n, paper, delta = (row[(col, f)] for f in FIELDS)
        if not n:
            ours = "–"
        elif n == 1 or math.isnan(std):
            ours = f"{mean:.{decimals}f} ({int(n)})"
        else:
            ours = f"{mean:.{decimals}f} ± {std:.{decimals}f} ({int(n)})"
        out.append((ours, "–" if math.isnan(paper) else f"{paper:.{decimals}f}",
                    "–" if math.isnan(delta) else f"{delta:+.{decimals}f}"))
    return out


def display_rows(frame):
    """(header, rows) of strings: per column 'ours', 'paper', 'Δ' (Δ only with a reference row)."""
    columns = list(dict.fromkeys(c for c, _ in frame.columns))
    with_delta = frame.attrs.get("reference") is not None
    header = [frame.index.name or ""]
    for col in columns:
        header += [col, f"{col} paper"] + ([f"{col} Δ"] if with_delta else [])
    cells = [_cells(frame, col, frame.attrs.get("decimals", {}).get(col, 1)) for col in columns]
    rows = []
    for i, label in enumerate(frame.index):
        row = [label]
        for c in cells:
            row += list(c[i][:3] if with_delta else c[i][:2])
        rows.append(row)
    return header, rows


def to_markdown(frame):
    header, rows = display_rows(frame)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    notes = frame.attrs.get("notes", [])
    return "\n".join(lines + ([""] + [f"- {n}" for n in notes] if notes else [])) + "\n"


def _latex_escape(text):
    text = str(text).replace("\\", r"\textbackslash{}")
    for ch in "&%$#_{}":
        text = text.replace(ch, "\\" + ch)
    return text.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("–", "--").replace("`", "")


def to_latex(frame):
    header, rows = display_rows(frame)
    lines = [r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule",
             " & ".join(_latex_escape(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex_escape(c) for c in r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [f"% {_latex_escape(n)}" for n in frame.attrs.get("notes", [])]
    return "\n".join(lines) + "\n"


def to_csv(frame):
    flat = frame.copy()
    flat.columns = [f"{c} {f}" for c, f in frame.columns]
    return flat.to_csv(float_format="%.6g")


RENDERERS = {"md": to_markdown, "csv": to_csv, "latex": to_latex}
SUFFIX = {"md": "md", "csv": "csv", "latex": "tex"}


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
    return tuple(sorted((k, str(v)) for k, v in cfg.items() if k != "seed"))


def write_tables(experiment, scale, results="results", fmt="md", paper_path=PAPER_NUMBERS):
    """Rebuild table.{md,csv,tex} (and the sweep plot) from the records; returns the `fmt` text."""
    plan = expand(experiment, scale, baseline=True)
    records = current_records(load_records(results, experiment.name, scale), plan)
    frame = build_table(records, experiment, load_paper_numbers(paper_path))
    folder = Path(results) / experiment.name / scale
    texts = {name: render(frame) for name, render in RENDERERS.items()}
    for name, text in texts.items():
        files.write_text_atomic(folder / f"table.{SUFFIX[name]}", text)
    if experiment.plot:
        plot_sweep(records, experiment, folder / "steps.png")
    return f"{experiment.title} ({experiment.paper_table or 'beyond the paper'}), scale {scale}\n\n" + texts[fmt]
