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
    with np.errstate(under="ignore"):
        pmode = np.exp(_approx_log_pmf(mode, m_, k_, n_))
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


#: The log-gamma guide (:func:`_approx_log_pmf`) is accurate to about 1e-9 relative on
#: these tables (tests/rules/test_fisher.py); a comparison with a threshold is taken from it
#: only when it clears the threshold by this relative margin (1000 times that error) in the
#: normal range, or when it is so small that Boost's pmf underflows to exactly 0.
_MARGIN = 1e-6
_TINY = 1e-250
_LOG_ZERO = -800.0  # exp(-800) ~ 1e-348, far below the smallest double (4.9e-324)


def _pmf_sign(k: np.ndarray, m_: np.ndarray, n_: np.ndarray, draws: np.ndarray,
              threshold: np.ndarray) -> np.ndarray:
    """The sign of ``hypergeom.pmf(k, ...) - threshold`` (-1, 0, 1), element-wise.

    Exactly the comparison scipy's algorithm makes (0 also for a NaN, as its search treats
    one), taken from the log-gamma guide where that is beyond doubt and from scipy's pmf
    elsewhere: the Boost pmf costs about 20 microseconds a table (#11 item 2).
    """
    log_approx = _approx_log_pmf(k, m_, n_, draws)
    with np.errstate(under="ignore"):
        approx = np.exp(log_approx)
    positive = threshold > _TINY
    zero = threshold == 0
    up = (positive & (approx > threshold * (1 + _MARGIN))) | (zero & (approx > _TINY))
    down = positive & (approx < threshold * (1 - _MARGIN))
    equal = zero & (log_approx < _LOG_ZERO)  # Boost's pmf is 0 there, as is the threshold
    sign = np.zeros(len(approx), dtype=np.int8)
    sign[up] = 1
    sign[down] = -1
    unsure = np.flatnonzero(~(up | down | equal))
    if len(unsure):
        diff = hypergeom.pmf(k[unsure], m_[unsure], n_[unsure], draws[unsure]) \
            - threshold[unsure]
        sign[unsure] = np.where(np.isnan(diff), 0, np.sign(diff)).astype(np.int8)
    return sign


def _approx_log_pmf(k: np.ndarray, m_: np.ndarray, n_: np.ndarray, draws: np.ndarray
                    ) -> np.ndarray:
    """Log of the hypergeometric pmf from log-gamma (-inf outside the support): a guide for
    comparisons, never a result."""
    k = np.asarray(k, dtype=np.int64)
    inside = (k >= np.maximum(draws - (m_ - n_), 0)) & (k <= np.minimum(n_, draws))
    kk = np.where(inside, k, 0).astype(float)
    m, n, d = m_.astype(float), n_.astype(float), draws.astype(float)
    with np.errstate(invalid="ignore", over="ignore"):
        log_pmf = (gammaln(n + 1) - gammaln(kk + 1) - gammaln(n - kk + 1)
                   + gammaln(m - n + 1) - gammaln(d - kk + 1) - gammaln(m - n - d + kk + 1)
                   - gammaln(m + 1) + gammaln(d + 1) + gammaln(m - d + 1))
    return np.where(inside, log_pmf, -np.inf)


def _search(m_: np.ndarray, n_: np.ndarray, draws: np.ndarray, threshold: np.ndarray,
            direction: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """scipy's ``_binary_search_for_binom_tst`` of ``fun = direction * pmf`` against
    ``direction * threshold``, stepped for every element together.

    Returns ``i`` in ``[lo - 1, hi]`` with ``fun(i) <= target < fun(i + 1)``, exactly as the
    scalar version, including its early return when ``fun(mid) == target`` (or is NaN):
    the search only ever compares ``fun`` with the target, and :func:`_pmf_sign` gives
    those comparisons exactly (#11 item 2).
    """
    def compare(v: np.ndarray, sel: np.ndarray) -> np.ndarray:
        """sign(fun(v) - target) for the elements ``sel``"""
        return direction * _pmf_sign(v, m_[sel], n_[sel], draws[sel], threshold[sel])

    lo = lo.astype(np.int64).copy()
    hi = hi.astype(np.int64).copy()
    result = np.zeros(len(lo), dtype=np.int64)
    done = np.zeros(len(lo), dtype=bool)
    while True:
        active = np.flatnonzero(~done & (lo < hi))
        if not len(active):
            break
        mid = lo[active] + (hi[active] - lo[active]) // 2
        sign = compare(mid, active)
        below, above = sign < 0, sign > 0
        hit = ~below & ~above
        lo[active[below]] = mid[below] + 1
        hi[active[above]] = mid[above] - 1
        result[active[hit]] = mid[hit]
        done[active[hit]] = True
    rest = np.flatnonzero(~done)
    if len(rest):
        at_lo = compare(lo[rest], rest) <= 0
        result[rest] = np.where(at_lo, lo[rest], lo[rest] - 1)
    return result
