"""Bootstrap CIs, the paired comparison and the sign test."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from retbench.metrics import (
    bootstrap_ci,
    p_value_text,
    paired_comparison,
    sign_test_log_p_value,
    sign_test_p_value,
)


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


def exact_log10_sign_p(n_positive: int, n_negative: int) -> float:
    """log10 of the two-sided sign-test p-value with Python's exact integers (no floating underflow)."""
    n, k = n_positive + n_negative, min(n_positive, n_negative)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(0.0, math.log10(2 * tail) - n * math.log10(2))


@pytest.mark.parametrize("wins, losses", [(900, 3), (1100, 0), (5000, 40), (20000, 0)])
def test_sign_test_never_underflows_to_zero(wins, losses):
    exact = exact_log10_sign_p(wins, losses)
    log_p = sign_test_log_p_value(wins, losses)
    assert log_p / math.log(10) == pytest.approx(exact, rel=1e-12)
    p = sign_test_p_value(wins, losses)
    assert p > 0.0 and sign_test_p_value(losses, wins) == p
    if exact > math.log10(sys.float_info.min):
        assert p == pytest.approx(10.0**exact, rel=1e-9)  # representable: the true value
    else:
        assert p == sys.float_info.min  # floored, never 0.0
    exponent = math.floor(exact)
    mantissa = 10 ** (exact - exponent)
    assert p_value_text(log_p) == f"{mantissa:.1f}e{exponent}"


def test_p_value_text_formats():
    assert p_value_text(0.0) == "1"
    assert p_value_text(math.log(0.03125)) == "0.03125"
    assert p_value_text(math.log(1.234567e-3)) == "0.001235"
    assert p_value_text(-10000.0) == "1.1e-4343"  # exp(-10000) = 1.135e-4343
    assert p_value_text(math.log(9.996e-7)) == "1.0e-6"  # mantissa rounding carries into the exponent


def test_paired_comparison_reports_a_tiny_sign_test_p_value_exactly():
    n = 1500  # B wins every query: p = 2 * 2**-1500 ~ 2.8e-452, far below float64's range
    a = np.full(n, 0.2)
    b = np.full(n, 0.9)
    out = paired_comparison(a, b, n_bootstrap=0, n_permutations=0)
    assert out["n_b_better"] == n and out["sign_test_p_value"] > 0.0
    assert out["sign_test_p_value_floored"] is True and out["sign_test_p_value"] == sys.float_info.min
    assert out["sign_test_p_value_text"] == p_value_text(sign_test_log_p_value(0, n))
    assert out["sign_test_p_value_text"].endswith("e-452")
    small = paired_comparison(a[:40], b[:40], n_bootstrap=0, n_permutations=0)
    assert small["sign_test_p_value_floored"] is False and small["sign_test_p_value"] == pytest.approx(2 * 2.0**-40)


def test_table_shows_the_exact_text_of_a_floored_sign_test_p_value():
    from retbench.report.tables import map_table_markdown

    n = 1500
    comparison = paired_comparison(np.full(n, 0.9), np.full(n, 0.2), n_bootstrap=0, n_permutations=0)
    runs = [{"dataset": "d", "encoder": e, "map": m, "metrics": {}, "config": {"protocol": "query/gallery",
             "evaluation": {"ap_definition": "trapezoid"}}} for e, m in (("a", 0.9), ("b", 0.2))]  # fmt: skip
    table = map_table_markdown(runs, [{"dataset": "d", "encoder_a": "a", "encoder_b": "b", **comparison}])
    assert f"| {comparison['sign_test_p_value_text']} |" in table and "e-452" in table
    assert "| d | a | b | +0.700 |" in table and "1500 / 0 / 0" in table
    assert "query/gallery" in table and "trapezoid" in table
