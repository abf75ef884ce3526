"""bertbench.evaluation.stats against hand-computed cases and scipy.stats."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from bertbench.evaluation import stats


def test_sign_flip_test_on_four_seeds_worked_by_hand():
    # |d| sums to 2.8, the observed sum is 2.2; a flipped subset S gives 2.8 - 2 sum(S), extreme when
    # sum(S) <= 0.3 or >= 2.5: {}, {-0.3}, and their complements -> 4 of the 16 assignments.
    assert stats.sign_flip_pvalue([1.2, 0.4, -0.3, 0.9]) == pytest.approx(4 / 16)
    assert stats.sign_flip_pvalue([1.0, 1.0, 1.0]) == pytest.approx(2 / 8)  # the least p for n = 3
    assert stats.sign_flip_pvalue([0.0, 0.0]) == 1.0
    assert math.isnan(stats.sign_flip_pvalue([]))


def test_sign_flip_test_equals_scipy_paired_permutation_test():
    rng = np.random.default_rng(3)
    a, b = rng.normal(80, 2, 7), rng.normal(79, 2, 7)
    ours = stats.sign_flip_pvalue(a - b)
    ref = scipy_stats.permutation_test((a, b), lambda x, y: np.mean(x - y), permutation_type="samples",
                                       alternative="two-sided", n_resamples=np.inf)
    assert ours == pytest.approx(ref.pvalue)


def test_monte_carlo_sign_flips_agree_with_the_exact_test():
    d = np.random.default_rng(0).normal(0.3, 1.0, 20)  # 2^20 assignments: Monte Carlo
    exact = np.mean([abs(np.mean(d * s)) >= abs(d.mean()) - 1e-12
                     for s in np.random.default_rng(1).choice((1.0, -1.0), (200_000, 20))])
    assert stats.sign_flip_pvalue(d, num_resamples=20_000) == pytest.approx(exact, abs=0.01)


def test_holm_on_three_pvalues_worked_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01, max(that, 2 x 0.03), max(that, 1 x 0.04)
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    out = stats.holm([0.02, float("nan")])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1])


def test_bootstrap_interval_is_seeded_and_agrees_with_scipy():
    values = [81.2, 80.1, 82.0, 79.5, 80.7]
    low, high = stats.bootstrap_interval(values, seed=0)
    assert (low, high) == stats.bootstrap_interval(values, seed=0)
    assert low < np.mean(values) < high
    ref = scipy_stats.bootstrap((np.asarray(values),), np.mean, confidence_level=0.95, method="percentile",
                                n_resamples=10_000, random_state=0).confidence_interval
    assert low == pytest.approx(ref.low, abs=0.1) and high == pytest.approx(ref.high, abs=0.1)
    assert all(math.isnan(x) for x in stats.bootstrap_interval([80.0]))


def test_t_interval_equals_scipy():
    values = [1.0, 0.5, 2.0, 1.0]
    ref = scipy_stats.t.interval(0.95, 3, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert stats.t_interval(values) == pytest.approx(ref)
    assert all(math.isnan(x) for x in stats.t_interval([1.0]))


def test_paired_difference_reports_mean_interval_and_test():
    a, b = [80.0, 81.0, 82.0, 83.0], [79.0, 80.5, 80.0, 82.0]
    out = stats.paired_difference(a, b)
    assert out["delta"] == pytest.approx(1.125) and out["n"] == 4
    # differences 1, 0.5, 2, 1: mean 1.125, sd 0.629, t(0.975, 3) = 3.182 -> 1.125 +- 1.001
    assert (out["low"], out["high"]) == pytest.approx((1.125 - 1.0008, 1.125 + 1.0008), abs=1e-3)
    assert out["p"] == pytest.approx(1 / 8)  # all differences positive: 2 of 16 assignments as extreme


def test_paired_example_bootstrap_detects_a_real_gap_and_not_a_null_one():
    rng = np.random.default_rng(0)
    accuracy = lambda x: 100.0 * x.mean()  # noqa: E731 - per-example correctness -> accuracy
    better = (rng.random(800) < 0.80).astype(float)
    worse = np.where(rng.random(800) < 0.15, 0.0, better)  # loses 15% of its correct answers
    gap = stats.paired_example_bootstrap(accuracy, better, worse, seed=0)
    assert gap["delta"] > 0 and gap["low"] > 0 and gap["p"] < 0.01
    same = stats.paired_example_bootstrap(accuracy, better, better.copy(), seed=0)
    assert same["delta"] == 0 and same["p"] == 1.0
    low, high = stats.example_bootstrap(accuracy, better, seed=0)
    assert low < accuracy(better) < high
    se = 100 * math.sqrt(0.8 * 0.2 / 800)  # binomial standard error of an 80% accuracy on 800 examples
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_seeds_for_power_matches_the_paired_t_test_tables():
    # Cohen's d = 0.5 needs 34 pairs and d = 1.0 needs 10 for 80% power at alpha 0.05 (two-sided)
    assert stats.seeds_for_power(paired_sd=2.0, delta=1.0) == 34
    assert stats.seeds_for_power(paired_sd=1.0, delta=1.0) == 10
    assert stats.seeds_for_power(paired_sd=0.1, delta=2.0) == 3  # one degree of freedom has too heavy tails
    assert stats.seeds_for_power(paired_sd=1.0, delta=2.0) == 5
    assert stats.seeds_for_power(paired_sd=50.0, delta=0.01, max_seeds=100) is None
