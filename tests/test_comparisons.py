"""Cell intervals (intervals.py) and paired differences (comparisons.py) on hand-made cells, checked
by hand: the method chosen by n, the same resampled examples for every run, a 4-seed sign-flip test,
a paired example bootstrap, Holm."""

import math

import numpy as np
import pytest

from bertbench.evaluation import per_example, stats
from bertbench.results.cells import Cell
from bertbench.results.comparisons import excludes_zero, holm_adjust, paired, verdict
from bertbench.results.intervals import EXAMPLES, NONE, SEEDS, cell_interval, stacked_rows


def rows_of(correct):
    """'labels' rows of a run that is right exactly where `correct` is true (gold is always '1')."""
    preds = ["1" if c else "0" for c in correct]
    return per_example.rows("labels", ["1"] * len(correct), preds).tolist()


def run(seed, value, rows=None, pretrain_seed=0):
    record = {"kind": "finetune", "seed": seed, "pretrain_seed": pretrain_seed,
              "main_metric": {"name": "accuracy", "value": value}}
    if rows is not None:
        record["example_rows"] = {"form": "labels", "metric": "accuracy", "rows": rows}
    return record


def make_cell(runs):
    """A Cell of records (units from their seeds), as cells.cell builds it."""
    runs = sorted(runs, key=lambda r: (r["pretrain_seed"], r["seed"]))
    return Cell(tuple((r["pretrain_seed"], r["seed"]) for r in runs),
                tuple(r["main_metric"]["value"] for r in runs), tuple(runs))


HALF = [True] * 20 + [False] * 20  # 50% accuracy on 40 dev examples
OTHER_HALF = [not c for c in HALF]


def test_three_seeds_bootstrap_over_seeds():
    cell = make_cell([run(s, v, rows_of(HALF)) for s, v in enumerate([80.0, 82.0, 84.0])])
    low, high, method = cell_interval(cell)
    assert method == SEEDS and (low, high) == stats.bootstrap_interval([80.0, 82.0, 84.0], seed=0)
    assert 80.0 <= low < 82.0 < high <= 84.0
    median_low, median_high, _ = cell_interval(cell, "median")
    assert (median_low, median_high) == stats.bootstrap_interval([80.0, 82.0, 84.0], seed=0, stat=np.median)


def test_one_or_two_seeds_bootstrap_over_dev_examples_with_the_same_indices():
    one = make_cell([run(0, 50.0, rows_of(HALF))])
    low, high, method = cell_interval(one)
    assert method == EXAMPLES and 30.0 < low < 50.0 < high < 70.0
    # two runs right on complementary halves: with the SAME resampled examples for both runs, their mean
    # accuracy is 50% on every resample (independent resamples would spread it as wide as one run's)
    both = make_cell([run(0, 50.0, rows_of(HALF)), run(1, 50.0, rows_of(OTHER_HALF))])
    assert cell_interval(both) == (50.0, 50.0, EXAMPLES)
    twin = make_cell([run(0, 50.0, rows_of(HALF)), run(1, 50.0, rows_of(HALF))])
    assert cell_interval(twin) == (low, high, EXAMPLES)  # two identical runs: one run's interval


def test_no_interval_without_rows_or_with_mismatched_rows():
    low, high, method = cell_interval(make_cell([run(0, 50.0), run(1, 52.0)]))
    assert math.isnan(low) and math.isnan(high) and method == NONE
    assert cell_interval(make_cell([run(0, 50.0, rows_of(HALF)), run(1, 52.0)]))[2] == NONE  # one run lacks rows
    short = make_cell([run(0, 50.0, rows_of(HALF)), run(1, 50.0, rows_of(HALF[:10]))])
    assert stacked_rows(short.records) is None and cell_interval(short)[2] == NONE
    other_metric = run(0, 50.0, rows_of(HALF))
    other_metric["example_rows"]["metric"] = "pearson"  # not recomputable from 'labels' rows
    assert cell_interval(make_cell([other_metric]))[2] == NONE
    assert cell_interval(Cell())[2] == NONE


def test_paired_sign_flip_on_four_seeds_by_hand():
    """ours - reference = 2, 1, 3, -1 on the matched seeds: mean 1.25. Of the 16 sign assignments
    of magnitudes (2, 1, 3, 1), |sum| >= 5 needs the flipped magnitudes to sum to <= 1 or >= 6:
    {}, {1}, {1'} and their complements, 6 of 16: p = 0.375."""
    reference = make_cell([run(s, v) for s, v in enumerate([70.0, 71.0, 72.0, 73.0, 74.0])])  # seed 4: unpaired
    ours = make_cell([run(3, 72.0), run(1, 72.0), run(0, 72.0), run(2, 75.0),
                      run(0, 99.0, pretrain_seed=1)])  # another pretraining seed: no partner, left out
    result = paired(ours, reference)
    assert result["n"] == 4 and result["method"] == SEEDS
    assert result["delta"] == pytest.approx(1.25) and result["p"] == pytest.approx(0.375)
    assert (result["low"], result["high"]) == stats.t_interval([2.0, 1.0, 3.0, -1.0])
    assert not excludes_zero(result) and verdict(result["delta"], True) == "better"
    assert verdict(result["delta"], False) == "worse"


def test_paired_example_bootstrap_with_one_or_two_pairs():
    every = [True] * 40
    ours, reference = make_cell([run(0, 100.0, rows_of(every))]), make_cell([run(0, 50.0, rows_of(HALF))])
    result = paired(ours, reference)
    # ours is right wherever the reference is: every resample's Δ is > 0 (unless all 40 resampled
    # examples come from the reference's right half, probability 2^-40), so p is the floor 2/(R+1)
    assert result["method"] == EXAMPLES and result["n"] == 1 and result["delta"] == pytest.approx(50.0)
    assert result["p"] == pytest.approx(2 / 2001) and result["low"] > 0 and excludes_zero(result)
    # two pairs, swapped: ours (A, B) vs reference (B, A); the per-resample mean over the two runs is the
    # same on both sides, so every resampled Δ is exactly 0
    ours = make_cell([run(0, 50.0, rows_of(HALF)), run(1, 50.0, rows_of(OTHER_HALF))])
    reference = make_cell([run(0, 50.0, rows_of(OTHER_HALF)), run(1, 50.0, rows_of(HALF))])
    result = paired(ours, reference)
    assert result["method"] == EXAMPLES and result["n"] == 2
    assert (result["delta"], result["low"], result["high"], result["p"]) == (0.0, 0.0, 0.0, 1.0)


def test_paired_without_rows_or_partners_is_a_plain_difference():
    result = paired(make_cell([run(0, 60.0), run(1, 64.0)]), make_cell([run(0, 58.0), run(1, 58.0)]))
    assert result["delta"] == pytest.approx(4.0) and result["method"] == NONE and math.isnan(result["p"])
    result = paired(make_cell([run(5, 60.0)]), make_cell([run(0, 58.0)]))
    assert math.isnan(result["delta"]) and result["n"] == 0


def test_holm_over_three_comparisons_by_hand():
    """p = 0.01, 0.04, 0.03: sorted 0.01, 0.03, 0.04 -> 3 x 0.01 = 0.03, max(0.03, 2 x 0.03) = 0.06,
    max(0.06, 1 x 0.04) = 0.06; an untested comparison stays NaN and is not counted."""
    comparisons = [{"p": 0.01}, {"p": 0.04}, {"p": math.nan}, {"p": 0.03}]
    holm_adjust(comparisons)
    assert [c["p_holm"] for c in (comparisons[0], comparisons[1], comparisons[3])] == \
        pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(comparisons[2]["p_holm"])
