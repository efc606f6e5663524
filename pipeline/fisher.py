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
from scipy.special import gammaln
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
    # The mode's probability only decides "is the observed table the mode" (within 1e-14):
    # computed exactly only where the log-gamma guide cannot tell (#11 item 2).
    pmode = _approx_pmf(mode, m_, k_, n_)
    unsure = np.flatnonzero(~((pmode > pexact * (1 + _MARGIN)) & (pexact > _TINY)))
    pmode[unsure] = hypergeom.pmf(mode[unsure], m_[unsure], k_[unsure], n_[unsure])
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
    search = ~(_pmf_sign(n_, m_, k_, n_, threshold) > 0)  # ~(pmf(n) > threshold)
    if search.any():
        s = np.flatnonzero(search)
        ms, ks, ns = m_[s], k_[s], n_[s]
        guess = _search(ms, ks, ns, threshold[s], -1, mode[s], n_[s].copy())
        p[s] = p[s] + hypergeom.sf(guess, ms, ks, ns)
    return p


def _upper_tail(x: np.ndarray, m_: np.ndarray, k_: np.ndarray, n_: np.ndarray,
                mode: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Observed count at or above the mode: sf(x - 1) plus the matching lower tail."""
    p = hypergeom.sf(x - 1, m_, k_, n_)
    zero = np.zeros_like(x)
    search = ~(_pmf_sign(zero, m_, k_, n_, threshold) > 0)  # ~(pmf(0) > threshold)
    if search.any():
        s = np.flatnonzero(search)
        ms, ks, ns = m_[s], k_[s], n_[s]
        guess = _search(ms, ks, ns, threshold[s], 1, np.zeros(len(s), dtype=np.int64),
                        mode[s].copy())
        p[s] = p[s] + hypergeom.cdf(guess, ms, ks, ns)
    return p


#: The log-gamma guide (:func:`_approx_pmf`) is accurate to about 1e-9 relative on these
#: tables; a comparison with a threshold is taken from it only when it clears the
#: threshold by this relative margin (1000 times that error), and only in the normal range.
_MARGIN = 1e-6
_TINY = 1e-250


def _pmf_sign(k: np.ndarray, m_: np.ndarray, n_: np.ndarray, draws: np.ndarray,
              threshold: np.ndarray) -> np.ndarray:
    """The sign of ``hypergeom.pmf(k, ...) - threshold`` (-1, 0, 1), element-wise.

    Taken from the log-gamma guide where it is beyond doubt (see ``_MARGIN``), from
    scipy's pmf elsewhere: the very comparison scipy's algorithm makes, at a fraction of
    its cost (scipy's Boost pmf is about 20 microseconds a table; #11 item 2).
    """
    approx = _approx_pmf(k, m_, n_, draws)
    normal = (approx > _TINY) & (threshold > _TINY)
    sign = np.zeros(len(approx), dtype=np.int8)
    sign[normal & (approx > threshold * (1 + _MARGIN))] = 1
    sign[normal & (approx < threshold * (1 - _MARGIN))] = -1
    unsure = np.flatnonzero(sign == 0)
    if len(unsure):
        exact = hypergeom.pmf(k[unsure], m_[unsure], n_[unsure], draws[unsure])
        sign[unsure] = np.sign(exact - threshold[unsure]).astype(np.int8)
    return sign


def _search(m_: np.ndarray, n_: np.ndarray, draws: np.ndarray, threshold: np.ndarray,
            direction: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """scipy's binary search for ``fun = direction * pmf`` against ``direction * threshold``.

    ``fun`` is monotone (non-decreasing) on ``[lo, hi]``. The search first runs on the
    log-gamma guide; its answer ``i`` is kept when ``fun`` itself brackets the target
    strictly inside the range, ``fun(i) < target < fun(i + 1)`` with ``lo <= i < hi``:
    then ``i`` is the only such index, no step of the binary search can hit the target
    exactly, and :func:`_binary_search` of ``fun`` returns ``i`` too. Any other element is
    searched on scipy's pmf as before (#11 item 2).
    """
    target = direction * threshold

    def exact(v: np.ndarray, sel: np.ndarray) -> np.ndarray:
        return direction * hypergeom.pmf(v, m_[sel], n_[sel], draws[sel])

    def guide(v: np.ndarray, sel: np.ndarray) -> np.ndarray:
        return direction * _approx_pmf(v, m_[sel], n_[sel], draws[sel])

    guess = _binary_search(guide, target, lo, hi)
    ok = (guess >= lo) & (guess < hi)
    inside = np.flatnonzero(ok)
    if len(inside):
        at = guess[inside]
        args = (m_[inside], n_[inside], draws[inside], threshold[inside])
        # direction * (pmf - threshold) < 0 at i and > 0 at i + 1
        ok[inside] = ((direction * _pmf_sign(at, *args) < 0)
                      & (direction * _pmf_sign(at + 1, *args) > 0))
    redo = np.flatnonzero(~ok)
    if len(redo):
        guess[redo] = _binary_search(lambda v, sel: exact(v, redo[sel]), target[redo],
                                     lo[redo], hi[redo])
    return guess


def _approx_pmf(k: np.ndarray, m_: np.ndarray, n_: np.ndarray, draws: np.ndarray
                ) -> np.ndarray:
    """Hypergeometric pmf from log-gamma: a guide for comparisons, never a result."""
    k = np.asarray(k, dtype=np.int64)
    inside = (k >= np.maximum(draws - (m_ - n_), 0)) & (k <= np.minimum(n_, draws))
    kk = np.where(inside, k, 0).astype(float)
    m, n, d = m_.astype(float), n_.astype(float), draws.astype(float)
    with np.errstate(invalid="ignore", over="ignore"):
        log_pmf = (gammaln(n + 1) - gammaln(kk + 1) - gammaln(n - kk + 1)
                   + gammaln(m - n + 1) - gammaln(d - kk + 1) - gammaln(m - n - d + kk + 1)
                   - gammaln(m + 1) + gammaln(d + 1) + gammaln(m - d + 1))
        return np.where(inside, np.exp(log_pmf), 0.0)


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
