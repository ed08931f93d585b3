"""Bootstrap CIs, the paired comparison and the sign test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retbench.metrics import bootstrap_ci, paired_comparison, sign_test_p_value


def loop_bootstrap(values: np.ndarray, n_bootstrap: int, seed: int) -> list[float]:
    """Textbook percentile bootstrap of the mean, drawing the same indices as the fast version."""
    rng = np.random.default_rng(seed)
    n = values.size
    means = [values[rng.integers(0, n, size=n)].mean() for _ in range(n_bootstrap)]
    return [float(v) for v in np.percentile(means, [2.5, 97.5])]


def test_bootstrap_matches_a_loop_over_resamples():
    values = np.random.default_rng(0).random(37)
    got = bootstrap_ci({"ap": values}, n_bootstrap=200, seed=5)["ap"]
    np.testing.assert_allclose(got, loop_bootstrap(values, 200, 5), rtol=0, atol=1e-12)


def test_bootstrap_skips_nan_queries_and_is_reproducible():
    values = np.random.default_rng(1).random(50)
    with_nan = np.concatenate([values, [np.nan, np.nan]])
    a = bootstrap_ci({"ap": with_nan, "other": with_nan * 2}, n_bootstrap=100, seed=2)
    b = bootstrap_ci({"ap": with_nan, "other": with_nan * 2}, n_bootstrap=100, seed=2)
    assert a == b
    np.testing.assert_allclose(a["ap"], loop_bootstrap(values, 100, 2), atol=1e-12)
    np.testing.assert_allclose(a["other"], 2 * np.asarray(a["ap"]), atol=1e-12)
    assert bootstrap_ci({"ap": values}, n_bootstrap=100, seed=3) != a


def test_bootstrap_in_chunks_equals_one_chunk(monkeypatch):
    import retbench.metrics.statistics as statistics

    values = np.random.default_rng(2).random(30)
    whole = bootstrap_ci({"ap": values}, n_bootstrap=64, seed=0)
    monkeypatch.setattr(statistics, "_CHUNK_ELEMENTS", 30 * 5)  # 5 resamples per chunk
    assert bootstrap_ci({"ap": values}, n_bootstrap=64, seed=0) == whole


def test_bootstrap_disabled_and_degenerate_cases():
    assert bootstrap_ci({"ap": np.ones(3)}, n_bootstrap=0) == {}
    assert bootstrap_ci({"ap": np.ones(3)}, n_bootstrap=10) == {"ap": [1.0, 1.0]}
    out = bootstrap_ci({"ap": np.full(3, np.nan)}, n_bootstrap=10)
    assert all(math.isnan(v) for v in out["ap"])


def test_paired_comparison_fields_and_values():
    rng = np.random.default_rng(0)
    a = rng.random(200)
    b = a - 0.05 + 0.01 * rng.standard_normal(200)
    a[3] = np.nan  # dropped pairwise
    out = paired_comparison(a, b, n_bootstrap=300, n_permutations=500, seed=1)
    keep = ~np.isnan(a)
    assert out["n"] == 199
    assert out["mean_difference"] == pytest.approx(np.mean(a[keep] - b[keep]))
    assert out["mean_a"] == pytest.approx(np.mean(a[keep])) and out["mean_b"] == pytest.approx(np.mean(b[keep]))
    lo, hi = out["ci95"]
    assert lo < out["mean_difference"] < hi and lo > 0
    assert out["permutation_p_value"] == pytest.approx(1 / 501)  # no sign flip reaches a clear effect
    assert out["sign_test_p_value"] < 1e-10
    assert out["n_a_better"] + out["n_b_better"] + out["n_ties"] == 199
    assert paired_comparison(a, b, n_bootstrap=300, n_permutations=500, seed=1) == out


def test_permutation_p_value_matches_a_loop():
    rng = np.random.default_rng(4)
    a, b = rng.random(25), rng.random(25)
    out = paired_comparison(a, b, n_bootstrap=0, n_permutations=400, seed=9)
    # Same generator stream as the implementation: second child of SeedSequence(9).
    perm_rng = np.random.default_rng(np.random.SeedSequence(9).spawn(2)[1])
    d = a - b
    flips = perm_rng.integers(0, 2, size=(400, 25)) * 2.0 - 1.0
    extreme = sum(abs(np.mean(f * d)) >= abs(d.mean()) - 1e-12 for f in flips)
    assert out["permutation_p_value"] == pytest.approx((1 + extreme) / 401)
    assert math.isnan(out["ci95"][0])


def test_identical_encoders_give_no_evidence():
    a = np.random.default_rng(5).random(40)
    out = paired_comparison(a, a.copy(), n_bootstrap=50, n_permutations=100)
    assert out["mean_difference"] == 0.0 and out["n_ties"] == 40
    assert out["permutation_p_value"] == 1.0 and out["sign_test_p_value"] == 1.0


def test_no_usable_query_returns_nan():
    out = paired_comparison(np.array([np.nan]), np.array([0.5]))
    assert out["n"] == 0 and math.isnan(out["mean_difference"]) and math.isnan(out["permutation_p_value"])


def test_sign_test_against_exact_binomial_sums():
    assert sign_test_p_value(0, 0) == 1.0
    assert sign_test_p_value(5, 0) == pytest.approx(2 / 32)
    assert sign_test_p_value(3, 3) == 1.0
    n, k = 20, 6
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    assert sign_test_p_value(k, n - k) == pytest.approx(2 * tail)
    assert sign_test_p_value(n - k, k) == pytest.approx(2 * tail)
