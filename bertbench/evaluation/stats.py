"""Statistics that say which differences are real: intervals, paired tests, multiple comparisons, power.

Everything takes plain numbers (numpy arrays) and a seed; nothing here knows records or tables.

    interval = bootstrap_interval([81.2, 80.1, 82.0, 79.5])          # 95% percentile bootstrap of the mean
    p = sign_flip_pvalue([1.2, 0.4, -0.3, 0.9])                      # paired permutation test, two-sided
    adjusted = holm([0.01, 0.04, 0.03])                              # Holm-Bonferroni step-down
    n = seeds_for_power(paired_sd=1.5, delta=1.0)                    # paired seeds for 80% power at alpha 0.05

Over seeds (n >= 3 runs): the percentile bootstrap of the mean, and the exact paired sign-flip test
(all 2^n sign assignments; Monte Carlo past 2^16). Over dev examples (one run): the same bootstrap
resamples examples, and a paired bootstrap compares two systems on the same resamples (Koehn 2004;
Berg-Kirkpatrick et al. 2012), for metrics that are functions of per-example statistics.
"""

import itertools
import math

import numpy as np

CONFIDENCE = 0.95
NUM_RESAMPLES = 10_000
EXACT_SIGN_FLIPS = 16  # up to 2^16 assignments enumerated exactly; beyond, NUM_RESAMPLES random ones


def bootstrap_interval(values, confidence=CONFIDENCE, num_resamples=NUM_RESAMPLES, seed=0, stat=np.mean):
    """(low, high) percentile-bootstrap interval of stat(values); (nan, nan) for fewer than 2 values."""
    values = np.asarray(values, float)
    if len(values) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(num_resamples, len(values)))  # [resamples, n]
    stats = np.apply_along_axis(stat, 1, values[idx]) if stat is not np.mean else values[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    return float(np.quantile(stats, tail)), float(np.quantile(stats, 1.0 - tail))


def sign_flip_pvalue(differences, num_resamples=NUM_RESAMPLES, seed=0):
    """Two-sided p-value of H0 "the paired differences are symmetric around 0" (mean statistic).

    Exact over all 2^n sign assignments for n <= EXACT_SIGN_FLIPS (the observed assignment is one
    of them, so p >= 2^-n); otherwise Monte Carlo with the observed assignment counted (p >= 1/(R+1)).
    """
    d = np.asarray(differences, float)
    if len(d) == 0:
        return math.nan
    observed = abs(d.mean())
    tolerance = 1e-12 * max(1.0, observed)  # ties within rounding count as extreme
    if len(d) <= EXACT_SIGN_FLIPS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))  # [2^n, n]
        means = np.abs(signs @ d) / len(d)
        return float(np.mean(means >= observed - tolerance))
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(num_resamples, len(d)))
    extreme = np.sum(np.abs(signs @ d) / len(d) >= observed - tolerance)
    return float((extreme + 1) / (num_resamples + 1))


def holm(pvalues):
    """Holm-Bonferroni adjusted p-values (same order as given; nan stays nan and is not counted)."""
    p = np.asarray(pvalues, float)
    out = np.full(len(p), math.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))  # step-down: adjusted p never decreases
        out[i] = running
    return out.tolist()


def t_interval(values, confidence=CONFIDENCE):
    """(low, high) Student-t interval of the mean; (nan, nan) for fewer than 2 values.

    With a handful of seeds a percentile bootstrap of the mean is far too narrow (3 values have only
    10 distinct resampled means); the t interval widens with the few degrees of freedom.
    """
    from scipy import stats as scipy_stats

    values = np.asarray(values, float)
    if len(values) < 2:
        return math.nan, math.nan
    half = scipy_stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


def paired_difference(a, b, confidence=CONFIDENCE, num_resamples=NUM_RESAMPLES, seed=0):
    """Paired comparison of per-seed values a[i] vs b[i] (same seeds): {delta, low, high, p, n}.

    delta is mean(a - b); the interval is the paired Student-t interval (`t_interval`); p is the exact
    sign-flip test (distribution-free; with n pairs it cannot go below 2 / 2^n).
    """
    d = np.asarray(a, float) - np.asarray(b, float)
    low, high = t_interval(d, confidence)
    return {"delta": float(d.mean()) if len(d) else math.nan, "low": low, "high": high,
            "p": sign_flip_pvalue(d, num_resamples, seed), "n": int(len(d))}


def example_bootstrap(metric, stats, confidence=CONFIDENCE, num_resamples=2_000, seed=0):
    """Interval of a corpus-level metric by resampling dev examples.

    metric: fn(per-example stats [k, ...] numpy) -> float; stats: [num_examples, ...] array.
    """
    stats = np.asarray(stats, float)
    if len(stats) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    values = [metric(stats[rng.integers(0, len(stats), len(stats))]) for _ in range(num_resamples)]
    tail = (1.0 - confidence) / 2.0
    return float(np.nanquantile(values, tail)), float(np.nanquantile(values, 1.0 - tail))


def paired_example_bootstrap(metric, stats_a, stats_b, confidence=CONFIDENCE, num_resamples=2_000, seed=0):
    """Two systems scored on the same dev examples: {delta, low, high, p, n} of metric(a) - metric(b).

    Both are resampled with the SAME example indices; p is two-sided: twice the share of resampled
    deltas on the other side of 0 from the observed one (capped at 1), at least 1/(R+1).
    """
    a, b = np.asarray(stats_a, float), np.asarray(stats_b, float)
    if len(a) != len(b):
        raise ValueError(f"paired bootstrap needs the same examples: {len(a)} vs {len(b)}")
    delta = metric(a) - metric(b)
    rng = np.random.default_rng(seed)
    deltas = np.empty(num_resamples)
    for r in range(num_resamples):
        idx = rng.integers(0, len(a), len(a))
        deltas[r] = metric(a[idx]) - metric(b[idx])
    tail = (1.0 - confidence) / 2.0
    crossing = np.sum(deltas <= 0) if delta > 0 else np.sum(deltas >= 0)
    p = 1.0 if delta == 0 else min(1.0, 2.0 * (crossing + 1) / (num_resamples + 1))
    return {"delta": float(delta), "low": float(np.quantile(deltas, tail)),
            "high": float(np.quantile(deltas, 1.0 - tail)), "p": float(p), "n": int(len(a))}


def seeds_for_power(paired_sd, delta, alpha=0.05, power=0.8, max_seeds=10_000):
    """Smallest number of paired seeds whose two-sided paired t-test detects a true mean difference
    `delta` with probability >= `power` at level `alpha`, when the paired differences have SD
    `paired_sd` (noncentral t). None when it needs more than max_seeds; 2 is the least possible."""
    from scipy import stats as scipy_stats

    if not paired_sd or paired_sd <= 0 or math.isnan(paired_sd):
        return 2 if delta else None
    effect = abs(delta) / paired_sd
    for n in range(2, max_seeds + 1):
        df = n - 1
        critical = scipy_stats.t.ppf(1 - alpha / 2, df)
        nc = effect * math.sqrt(n)
        achieved = scipy_stats.nct.sf(critical, df, nc) + scipy_stats.nct.cdf(-critical, df, nc)
        if achieved >= power:
            return n
    return None
