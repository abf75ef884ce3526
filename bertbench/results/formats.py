"""A built table (`tables.build_table`) as Markdown, CSV and LaTeX: pure functions of the frame.

Per column three display columns: ours, the paper's number, and Δ to the reference row (Δ only
when the experiment has one):

    ours    mean [95% low, high] (n) ⊘k        ⊘k: k collapsed runs, kept in the mean
    Δ       +1.2*† [+0.3, +2.1] p=0.031        *: the interval excludes 0; †: significant at 0.05
                                               after Holm over the whole table; "ref" on the reference
A last row gives each column's majority-class (constant-prediction) baseline when the records have
one. The CSV carries the raw numbers of every field instead (mean, low, high, n, method, delta,
delta_low, delta_high, p, p_holm, collapsed, majority, ...).
"""

import math

from bertbench.results.comparisons import ALPHA, REFERENCE, excludes_zero

MAJORITY_ROW = "Majority class (constant prediction)"
COLLAPSED, EXCLUDES_ZERO, HOLM = "⊘", "*", "†"


def _number(value, decimals, sign=""):
    return "–" if value is None or math.isnan(value) else f"{value:{sign}.{decimals}f}"


def format_p(p):
    """'p=0.031', or 'p<0.001'."""
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def ours_cell(row, col, decimals, statistic="mean"):
    """'mean [low, high] (n) ⊘k' of one frame row and column ('–' without runs)."""
    n = int(row[(col, "n")])
    if not n:
        return "–"
    low, high = ("low", "high") if statistic == "mean" else ("median_low", "median_high")
    text = _number(row[(col, statistic)], decimals)
    if not math.isnan(row[(col, low)]):
        text += f" [{_number(row[(col, low)], decimals)}, {_number(row[(col, high)], decimals)}]"
    text += f" ({n})"
    return text + (f" {COLLAPSED}{int(row[(col, 'collapsed')])}" if row[(col, "collapsed")] else "")


def delta_cell(row, col, decimals):
    """'+Δ*† [low, high] p=..' of one frame row and column; 'ref' on the reference row."""
    if row[(col, "test")] == REFERENCE:
        return "ref"
    delta = row[(col, "delta")]
    if math.isnan(delta):
        return "–"
    comparison = {"low": row[(col, "delta_low")], "high": row[(col, "delta_high")]}
    text = _number(delta, decimals, "+") + (EXCLUDES_ZERO if excludes_zero(comparison) else "")
    text += HOLM if row[(col, "p_holm")] < ALPHA else ""
    if not math.isnan(comparison["low"]):
        text += f" [{_number(comparison['low'], decimals, '+')}, {_number(comparison['high'], decimals, '+')}]"
    return text + (f" {format_p(row[(col, 'p')])}" if not math.isnan(row[(col, "p")]) else "")


def column_names(frame):
    return list(dict.fromkeys(c for c, _ in frame.columns))


def majority_values(frame):
    """{column: its majority-class baseline} for columns that have one (equal in every row)."""
    out = {}
    for col in column_names(frame):
        values = [v for v in frame[(col, "majority")] if not math.isnan(v)]
        if values:
            out[col] = values[0]
    return out


def display_rows(frame):
    """(header, rows) of strings: per column 'ours', 'paper', 'Δ' (Δ only with a reference row)."""
    columns = column_names(frame)
    with_delta = frame.attrs.get("reference") is not None
    decimals = frame.attrs.get("decimals", {})
    statistic = frame.attrs.get("statistic", "mean")
    header = [frame.index.name or ""]
    for col in columns:
        header += [col, f"{col} paper"] + ([f"{col} Δ"] if with_delta else [])
    rows = []
    for label, row in frame.iterrows():
        cells = [label]
        for col in columns:
            d = decimals.get(col, 1)
            cells += [ours_cell(row, col, d, statistic), _number(row[(col, "paper")], d)]
            cells += [delta_cell(row, col, d)] if with_delta else []
        rows.append(cells)
    baselines = majority_values(frame)
    if baselines:
        row = [MAJORITY_ROW]
        for col in columns:
            row += [_number(baselines.get(col, math.nan), decimals.get(col, 1)), "–"]
            row += ["–"] if with_delta else []
        rows.append(row)
    return header, rows


def to_markdown(frame):
    header, rows = display_rows(frame)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    notes = frame.attrs.get("notes", [])
    return "\n".join(lines + ([""] + [f"- {n}" for n in notes] if notes else [])) + "\n"


LATEX = (("±", r"$\pm$"), ("Δ", r"$\Delta$"), ("–", "--"), ("`", ""), ("⊘", r"$\oslash$"),
         ("†", r"$^\dagger$"), ("≥", r"$\geq$"), ("α", r"$\alpha$"), ("<", r"$<$"), ("−", "-"))


def _latex_escape(text):
    text = str(text).replace("\\", r"\textbackslash{}")
    for ch in "&%$#_{}":
        text = text.replace(ch, "\\" + ch)
    for plain, latex in LATEX:
        text = text.replace(plain, latex)
    return text


def to_latex(frame):
    header, rows = display_rows(frame)
    lines = [r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule",
             " & ".join(_latex_escape(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex_escape(c) for c in r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [f"% {_latex_escape(n)}" for n in frame.attrs.get("notes", [])]
    return "\n".join(lines) + "\n"


def to_csv(frame):
    """The raw numbers of every field, one line per row (no display strings)."""
    flat = frame.copy()
    flat.columns = [f"{c} {f}" for c, f in frame.columns]
    return flat.to_csv(float_format="%.6g", lineterminator="\n")


RENDERERS = {"md": to_markdown, "csv": to_csv, "latex": to_latex}
SUFFIX = {"md": "md", "csv": "csv", "latex": "tex"}
