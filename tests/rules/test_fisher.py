"""The vectorized Fisher exact test gives scipy's p-values exactly (#11 item 2).

Kinetics and the rules compare these p-values with ``significance_alpha`` and print them
(3 significant digits): any difference from ``scipy.stats.fisher_exact`` could change an
assessment, so equality is tested, not closeness.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import fisher_exact

from pipeline.fisher import fisher_two_sided
from pipeline.kinetics import fisher_pvalues


def _scipy(a1, d1, a2, d2) -> np.ndarray:
    return np.array([fisher_exact([[x, y - x], [z, w - z]])[1]
                     for x, y, z, w in zip(a1, d1, a2, d2, strict=True)])


def test_random_read_count_tables_equal_scipy_exactly():
    rng = np.random.default_rng(11)
    n = 1500
    d1, d2 = rng.integers(0, 4000, n), rng.integers(0, 4000, n)
    frac = rng.choice([0.0005, 0.005, 0.05, 0.5, 1.0], n)
    a1 = (d1 * rng.random(n) * frac).astype(int)
    a2 = (d2 * rng.random(n) * rng.choice([0.0005, 0.005, 0.05, 0.5, 1.0], n)).astype(int)
    got = fisher_two_sided(a1, d1, a2, d2)
    assert np.array_equal(got, _scipy(a1, d1, a2, d2))


def test_edge_tables_equal_scipy():
    # zero margins (p = 1), the mode itself, both tails, tiny and one-sided tables
    tables = np.array([[0, 0, 0, 0], [0, 10, 0, 10], [5, 5, 5, 5], [10, 10, 0, 10],
                       [0, 10, 10, 10], [1, 1000, 50, 1000], [3, 7, 3, 7], [0, 1, 1, 1],
                       [1, 1, 0, 1], [2, 20, 2, 20], [0, 5000, 12, 4800], [40, 900, 2, 1100]])
    got = fisher_two_sided(*tables.T)
    assert np.array_equal(got, _scipy(*tables.T))


def test_kinetics_pvalues_use_one_call_for_distinct_tables_and_nan_for_unknown():
    alt1 = np.array([1, 1, np.nan, 5, 7])
    dep1 = np.array([1000, 1000, 800, 4, 500])  # row 4: alt > depth -> NaN
    alt2 = np.array([30, 30, 10, 1, 9])
    dep2 = np.array([900, 900, 800, 100, 500])
    got = fisher_pvalues(alt1, dep1, alt2, dep2)
    assert np.isnan(got[2]) and np.isnan(got[3])
    assert got[0] == got[1] == fisher_exact([[1, 999], [30, 870]])[1]
    assert got[4] == fisher_exact([[7, 493], [9, 491]])[1]


def test_deep_tables_equal_scipy_exactly():
    # Pooled read counts reach tens of thousands of reads: the log-gamma guide of the
    # search (pipeline.fisher._search) must still lead to scipy's very p-values.
    rng = np.random.default_rng(29)
    n = 800
    d1, d2 = rng.integers(1, 60000, n), rng.integers(1, 60000, n)
    a1 = (d1 * rng.random(n) * rng.choice([0.0001, 0.002, 0.02, 0.3], n)).astype(int)
    a2 = (d2 * rng.random(n) * rng.choice([0.0001, 0.002, 0.02, 0.3], n)).astype(int)
    # and tables next to their mode (near-ties with the threshold)
    a2[:100] = np.round(a1[:100] * d2[:100] / d1[:100]).astype(int) + rng.integers(-1, 2, 100)
    a2 = np.clip(a2, 0, d2)
    # and tables whose probabilities underflow to 0 (p-values of 0 and denormals)
    a1[100:120], d1[100:120] = 0, 50000
    a2[100:120] = rng.integers(20000, 50001, 20)
    d2[100:120] = 50000
    got = fisher_two_sided(a1, d1, a2, d2)
    assert np.array_equal(got, _scipy(a1, d1, a2, d2))


def test_log_gamma_guide_is_far_more_accurate_than_its_margin():
    # The guide decides a comparison only when it clears the threshold by _MARGIN
    # (relative); its own error must stay far below that, up to very deep tables.
    from scipy.stats import hypergeom

    from pipeline.fisher import _LOG_ZERO, _MARGIN, _TINY, _approx_log_pmf

    rng = np.random.default_rng(7)
    n = 50000
    total = rng.integers(2, 400000, n)
    succ = (total * rng.random(n)).astype(np.int64)
    draws = (total * rng.random(n)).astype(np.int64)
    lo, hi = np.maximum(draws - (total - succ), 0), np.minimum(succ, draws)
    k = lo + ((hi - lo) * rng.random(n)).astype(np.int64)
    exact = hypergeom.pmf(k, total, succ, draws)
    log_guide = _approx_log_pmf(k, total, succ, draws)
    normal = exact > _TINY
    error = np.abs(np.exp(log_guide[normal]) - exact[normal]) / exact[normal]
    assert normal.sum() > 10000
    assert error.max() < _MARGIN / 100
    # Where the guide says "far below the smallest double", scipy's pmf is exactly 0.
    underflow = log_guide < _LOG_ZERO
    assert underflow.sum() > 1000
    assert (exact[underflow] == 0).all()
