"""Uncertainty over queries: bootstrap confidence intervals and a paired comparison of two encoders.

Both resample *queries* (the unit of observation); queries without relevant items (NaN) are left
out. Everything is seeded with ``np.random.default_rng(seed)`` and bit-for-bit reproducible.
Resamples are drawn in chunks and turned into counts, so memory stays O(chunk x N) at any N.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping

import numpy as np

from retbench.metrics._validation import check_non_negative_int

#: resample-by-query entries materialised at once (chunk x N).
_CHUNK_ELEMENTS = 1 << 22


def _resample_counts(rng: np.random.Generator, n: int, n_resamples: int):
    """Yield (c, n) float64 arrays: how often each of the n queries is drawn in each of c resamples."""
    chunk = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, n_resamples, chunk):
        c = min(chunk, n_resamples - start)
        draws = rng.integers(0, n, size=(c, n))
        counts = np.empty((c, n))
        for i in range(c):  # row by row: the output stays in cache (one flat bincount is 2x slower)
            counts[i] = np.bincount(draws[i], minlength=n)
        yield counts


def bootstrap_ci(per_query: Mapping[str, np.ndarray], *, n_bootstrap: int = 1000, seed: int = 0,
                 confidence: float = 0.95) -> dict[str, list[float]]:  # fmt: skip
    """Percentile bootstrap CI of the mean of each per-query metric.

    Args:
        per_query: name -> (N,) float64 per-query values; NaN = query without relevant items.
            Resampling is over the queries where the *first* entry is not NaN (the same resamples
            for every metric, so the intervals are consistent with each other).
        n_bootstrap: number of resamples (0: return {}).
        seed: seed of ``np.random.default_rng``.
        confidence: interval mass (0.95 -> 2.5th and 97.5th percentiles of the resampled means).

    Returns:
        name -> [lo, hi]; [nan, nan] when there is no query with relevant items.
    """
    n_bootstrap = check_non_negative_int("n_bootstrap", n_bootstrap)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if n_bootstrap == 0 or not per_query:
        return {}
    names = list(per_query)
    first = np.asarray(per_query[names[0]], dtype=np.float64)
    keep = ~np.isnan(first)
    if not keep.any():
        return {name: [math.nan, math.nan] for name in names}
    values = np.stack([np.asarray(per_query[name], dtype=np.float64)[keep] for name in names], axis=1)
    present = ~np.isnan(values)
    filled = np.where(present, values, 0.0)
    rng = np.random.default_rng(seed)
    means = []
    for counts in _resample_counts(rng, int(keep.sum()), n_bootstrap):
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append((counts @ filled) / (counts @ present.astype(np.float64)))
    resampled = np.concatenate(means, axis=0)
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.nanpercentile(resampled, [tail, 100.0 - tail], axis=0)
    return {name: [float(lo[i]), float(hi[i])] for i, name in enumerate(names)}


def sign_test_log_p_value(n_positive: int, n_negative: int) -> float:
    """Natural log of the exact two-sided sign-test p-value (binomial, p = 1/2); 0.0 when n = 0.

    Computed in log space (log-sum-exp over the binomial tail), so it stays finite however many
    queries there are: ``log p`` of 10,000 wins and no loss is about -6931 (p ~ 1e-3010).
    """
    n = n_positive + n_negative
    if n == 0:
        return 0.0
    k = min(n_positive, n_negative)
    i = np.arange(k + 1)
    log_pmf = (math.lgamma(n + 1) - np.array([math.lgamma(v + 1) + math.lgamma(n - v + 1) for v in i])
               - n * math.log(2.0))  # fmt: skip
    top = float(log_pmf.max())
    log_tail = top + math.log(float(np.exp(log_pmf - top).sum()))
    return min(0.0, math.log(2.0) + log_tail)


def sign_test_p_value(n_positive: int, n_negative: int) -> float:
    """Exact two-sided sign test (binomial, p = 1/2) ignoring zero differences; 1.0 when there are none.

    Never 0.0: a p-value below the smallest positive normal float64 (``sys.float_info.min``,
    about 2.2e-308) is returned as that value; :func:`p_value_text` of
    :func:`sign_test_log_p_value` gives its true magnitude (``paired_comparison`` reports both).
    """
    return max(math.exp(sign_test_log_p_value(n_positive, n_negative)), sys.float_info.min)


def p_value_text(log_p: float, digits: int = 2) -> str:
    """A p-value given as its natural log, as text that never underflows.

    ``"0.0312"`` style (4 significant digits) down to 1e-4, scientific below (``"3.1e-2346"``
    for a p-value far below float64's range). ``log_p`` = 0 gives ``"1"``.
    """
    if log_p >= 0.0:
        return "1"
    log10 = log_p / math.log(10.0)
    if log10 >= -4.0:
        return f"{math.exp(log_p):.4g}"
    exponent = math.floor(log10)
    mantissa = 10.0 ** (log10 - exponent)
    if round(mantissa, digits - 1) >= 10.0:  # 9.99.. rounds up to the next power of ten
        mantissa, exponent = 1.0, exponent + 1
    return f"{mantissa:.{digits - 1}f}e{exponent}"


def paired_comparison(ap_a: np.ndarray, ap_b: np.ndarray, *, n_bootstrap: int = 1000, n_permutations: int = 10000,
                      seed: int = 0) -> dict:  # fmt: skip
    """Compare two encoders' per-query APs on the same queries (paired).

    Args:
        ap_a, ap_b: (N,) float64 per-query AP of encoders A and B, same query order; NaN entries
            (no relevant item) are dropped pairwise.
        n_bootstrap: resamples for the percentile 95% CI of the mean difference (0: no CI).
        n_permutations: random sign flips for the permutation test (0: no test).
        seed: seed of ``np.random.default_rng`` (the bootstrap and the permutations use separate streams).

    Returns:
        dict with ``n`` (queries used), ``mean_a``, ``mean_b``, ``mean_difference`` (A - B),
        ``ci95`` [lo, hi], ``permutation_p_value`` (two-sided paired sign-flip test of mean difference
        0, ``(1 + #{|perm| >= |observed|}) / (1 + n_permutations)``), ``sign_test_p_value`` (exact
        two-sided binomial test on the signs, zero differences dropped), ``n_a_better``,
        ``sign_test_p_value_text`` (its exact value as text, also where the float is floored at
        ``sys.float_info.min``: see :func:`sign_test_p_value`), ``sign_test_p_value_floored`` (True
        when it is), ``n_a_better``, ``n_b_better``, ``n_ties`` and the settings. NaN where
        undefined (n = 0).
    """
    a = np.asarray(ap_a, dtype=np.float64)
    b = np.asarray(ap_b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"ap_a and ap_b must be 1-D arrays of the same length (one AP per query), "
                         f"got shapes {np.shape(ap_a)} and {np.shape(ap_b)}")  # fmt: skip
    n_bootstrap = check_non_negative_int("n_bootstrap", n_bootstrap)
    n_permutations = check_non_negative_int("n_permutations", n_permutations)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    d = a - b
    n = int(d.size)
    result = {
        "n": n,
        "mean_a": float(a.mean()) if n else math.nan,
        "mean_b": float(b.mean()) if n else math.nan,
        "mean_difference": float(d.mean()) if n else math.nan,
        "ci95": [math.nan, math.nan],
        "permutation_p_value": math.nan,
        "sign_test_p_value": math.nan,
        "sign_test_p_value_text": "n/a",
        "sign_test_p_value_floored": False,
        "n_a_better": int((d > 0).sum()),
        "n_b_better": int((d < 0).sum()),
        "n_ties": int((d == 0).sum()),
        "n_bootstrap": n_bootstrap,
        "n_permutations": n_permutations,
        "seed": seed,
    }
    if n == 0:
        return result
    boot_rng, perm_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    if n_bootstrap:
        means = np.concatenate([counts @ d / n for counts in _resample_counts(boot_rng, n, n_bootstrap)])
        result["ci95"] = [float(v) for v in np.percentile(means, [2.5, 97.5])]
    if n_permutations:
        observed = abs(float(d.mean()))
        tolerance = 1e-12 * max(1.0, observed)
        chunk = max(1, _CHUNK_ELEMENTS // n)
        extreme = 0
        for start in range(0, n_permutations, chunk):
            c = min(chunk, n_permutations - start)
            signs = perm_rng.integers(0, 2, size=(c, n)).astype(np.float64) * 2.0 - 1.0
            extreme += int((np.abs(signs @ d / n) >= observed - tolerance).sum())
        result["permutation_p_value"] = (1.0 + extreme) / (1.0 + n_permutations)
    log_p = sign_test_log_p_value(result["n_a_better"], result["n_b_better"])
    result["sign_test_p_value"] = sign_test_p_value(result["n_a_better"], result["n_b_better"])
    result["sign_test_p_value_text"] = p_value_text(log_p)
    result["sign_test_p_value_floored"] = math.exp(log_p) < sys.float_info.min
    return result
