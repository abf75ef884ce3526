"""How many paired seeds a column needs to resolve a 1- and a 2-point difference (80% power, α 0.05).

Per column, the SD of the paired differences (ours - reference over matched units) is measured in
every comparison of the table with at least 2 pairs, and pooled over the comparisons by degrees of
freedom: sd² = Σ (n_i - 1) s_i² / Σ (n_i - 1) (the root-mean-square of the SDs when the n_i are
equal). `bertbench.evaluation.stats.seeds_for_power` turns it into a number of paired seeds (a
paired t-test, noncentral t). Printed by `table --power` and by `run --dry-run` when records exist.
"""

import math

import numpy as np

from bertbench.evaluation import stats
from bertbench.results.cells import table_cells

DIFFERENCES = (1.0, 2.0)  # points (display units of the column)
POWER, ALPHA = 0.8, 0.05


def paired_sd(cells, reference):
    """(pooled SD of the paired differences, comparisons used, pairs used) of one column's cells
    {variant: Cell} against the `reference` variant; SD NaN when no comparison has 2 pairs."""
    if reference not in cells:
        return math.nan, 0, 0
    ref = cells[reference].by_unit()
    squares, dof, used, pairs = 0.0, 0, 0, 0
    for name, cell in cells.items():
        ours = cell.by_unit()
        common = sorted(set(ours) & set(ref))
        if name == reference or len(common) < 2:
            continue
        d = np.array([ours[u] - ref[u] for u in common])
        squares += float(np.var(d, ddof=1)) * (len(d) - 1)
        dof += len(d) - 1
        used, pairs = used + 1, pairs + len(d)
    return (math.sqrt(squares / dof) if dof else math.nan), used, pairs


def _seeds(n):
    return "more than 10,000" if n is None else f"{n}"


def power_lines(records, experiment):
    """One line per column: the pooled paired SD and the paired seeds for a 1- and a 2-point difference."""
    if not experiment.reference:
        return [f"power: {experiment.name} has no reference row, so no paired comparisons"]
    _, cells = table_cells(records, experiment)
    lines = [f"power ({POWER:.0%} power, two-sided α {ALPHA}, paired seeds; from the SD of paired "
             f"differences to the reference row, pooled over the table's comparisons):"]
    for col in experiment.columns:
        sd, used, pairs = paired_sd(cells[col.name], experiment.reference)
        unit = "pretraining seeds" if col.source == "pretrain" else "seeds"
        if math.isnan(sd):
            lines.append(f"  {col.name}: not measurable yet (needs a comparison with ≥ 2 paired {unit})")
            continue
        needs = [stats.seeds_for_power(sd, delta, alpha=ALPHA, power=POWER) for delta in DIFFERENCES]
        lines.append(f"  {col.name}: paired SD {sd:.{col.decimals + 1}f} ({used} comparisons, {pairs} pairs) -> "
                     + ", ".join(f"{delta:g} point{'s' * (delta != 1)}: {_seeds(n)} {unit}"
                                 for delta, n in zip(DIFFERENCES, needs, strict=True)))
    return lines
