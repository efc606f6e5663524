"""Two-sided Fisher exact test for many 2x2 read-count tables at once (issue #11 item 2).

``scipy.stats.fisher_exact`` takes one table per call (about 1 ms each): a 10,000-patient
cohort has tens of thousands of distinct draw-pair tables, which made the kinetics step
take minutes. This module applies scipy's own two-sided algorithm (scipy 1.17,
``scipy/stats/_stats_py.py``: the p-value is the sum of the probabilities of all tables no
more likely than the observed one, found by a binary search on the far side of the mode)
to whole arrays: the same ``scipy.stats.hypergeom`` probability functions, evaluated
element-wise, and the same binary search stepped for every table together. The p-values
are therefore the very floats ``fisher_exact`` returns (tests/rules/test_fisher.py checks
equality on random and edge-case tables), so no decision or printed p-value changes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import hypergeom

#: scipy's relative tolerance when comparing table probabilities (``gamma = 1 + 1e-14``).
_EPSILON = 1e-14
_GAMMA = 1 + _EPSILON


def fisher_two_sided(alt1: np.ndarray, depth1: np.ndarray, alt2: np.ndarray,
                     depth2: np.ndarray) -> np.ndarray:
    """Two-sided Fisher exact p-values of ``[[alt1, depth1-alt1], [alt2, depth2-alt2]]``.

    Parameters
    ----------
    alt1, depth1, alt2, depth2
        Integer alt-read counts and depths (reads) of the earlier and the later draw, one
        table per element; the caller ensures ``0 <= alt <= depth``.

    Returns
    -------
    numpy.ndarray
        float64 p-values, equal to ``scipy.stats.fisher_exact(table)[1]`` per table.
    """
    c00 = np.asarray(alt1, dtype=np.int64)
    c01 = np.asarray(depth1, dtype=np.int64) - c00
    c10 = np.asarray(alt2, dtype=np.int64)
    c11 = np.asarray(depth2, dtype=np.int64) - c10
    n1, n2, n = c00 + c01, c10 + c11, c00 + c10
    total = n1 + n2
    out = np.ones(len(c00), dtype="float64")
    # scipy: a zero row or column sum gives p = 1.
    todo = (n1 > 0) & (n2 > 0) & (n > 0) & ((c01 + c11) > 0)
    if not todo.any():
        return out
    idx = np.flatnonzero(todo)
    x, m_, k_, n_ = c00[idx], total[idx], n1[idx], n[idx]
    # scipy computes ``int((n + 1) * (n1 + 1) / (n1 + n2 + 2))`` in float64: the same here.
    mode = ((n_ + 1) * (k_ + 1) / (m_ + 2)).astype(np.int64)
    pexact = hypergeom.pmf(x, m_, k_, n_)
    pmode = hypergeom.pmf(mode, m_, k_, n_)
    with np.errstate(invalid="ignore", divide="ignore"):
        at_mode = np.abs(pexact - pmode) / np.maximum(pexact, pmode) <= _EPSILON
    p = np.ones(len(idx), dtype="float64")
    threshold = pexact * _GAMMA
    lower = ~at_mode & (x < mode)
    upper = ~at_mode & ~(x < mode)
    if lower.any():
        p[lower] = _lower_tail(x[lower], m_[lower], k_[lower], n_[lower], mode[lower],
                               threshold[lower])
    if upper.any():
        p[upper] = _upper_tail(x[upper], m_[upper], k_[upper], n_[upper], mode[upper],
                               threshold[upper])
    out[idx] = np.minimum(p, 1.0)
    return out


def _lower_tail(x: np.ndarray, m_: np.ndarray, k_: np.ndarray, n_: np.ndarray,
                mode: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Observed count below the mode: cdf(x) plus the matching upper tail."""
    p = hypergeom.cdf(x, m_, k_, n_)
    search = ~(hypergeom.pmf(n_, m_, k_, n_) > threshold)
    if search.any():
        s = np.flatnonzero(search)
        ms, ks, ns = m_[s], k_[s], n_[s]
        guess = _binary_search(lambda v, sel: -hypergeom.pmf(v, ms[sel], ks[sel], ns[sel]),
                               -threshold[s], mode[s], n_[s].copy())
        p[s] = p[s] + hypergeom.sf(guess, ms, ks, ns)
    return p


def _upper_tail(x: np.ndarray, m_: np.ndarray, k_: np.ndarray, n_: np.ndarray,
                mode: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Observed count at or above the mode: sf(x - 1) plus the matching lower tail."""
    p = hypergeom.sf(x - 1, m_, k_, n_)
    search = ~(hypergeom.pmf(np.zeros_like(x), m_, k_, n_) > threshold)
    if search.any():
        s = np.flatnonzero(search)
        ms, ks, ns = m_[s], k_[s], n_[s]
        guess = _binary_search(lambda v, sel: hypergeom.pmf(v, ms[sel], ks[sel], ns[sel]),
                               threshold[s], np.zeros(len(s), dtype=np.int64), mode[s].copy())
        p[s] = p[s] + hypergeom.cdf(guess, ms, ks, ns)
    return p


def _binary_search(fun: Callable[[np.ndarray, np.ndarray], np.ndarray], target: np.ndarray,
                   lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """scipy's ``_binary_search_for_binom_tst`` stepped for every element together.

    Returns ``i`` in ``[lo - 1, hi]`` with ``fun(i) <= target < fun(i + 1)``, exactly as the
    scalar version (including its early return when ``fun(mid) == target`` or is NaN).
    """
    lo = lo.astype(np.int64).copy()
    hi = hi.astype(np.int64).copy()
    result = np.zeros(len(lo), dtype=np.int64)
    done = np.zeros(len(lo), dtype=bool)
    while True:
        active = np.flatnonzero(~done & (lo < hi))
        if not len(active):
            break
        mid = lo[active] + (hi[active] - lo[active]) // 2
        val = fun(mid, active)
        below = val < target[active]
        above = val > target[active]
        hit = ~below & ~above
        lo[active[below]] = mid[below] + 1
        hi[active[above]] = mid[above] - 1
        result[active[hit]] = mid[hit]
        done[active[hit]] = True
    rest = np.flatnonzero(~done)
    if len(rest):
        at_lo = fun(lo[rest], rest) <= target[rest]
        result[rest] = np.where(at_lo, lo[rest], lo[rest] - 1)
    return result
