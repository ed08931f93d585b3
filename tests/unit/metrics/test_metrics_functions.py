"""The pure per-query metric functions against loop oracles, hand-worked cases and other libraries."""

from __future__ import annotations

import math

from tests.unit.metrics import metrics_reference as ref
import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from retbench.metrics import (
    average_precision,
    interpolated_pr_curve,
    map_at_k,
    map_at_r,
    ndcg_at_k,
    precision_at_k,
    r_precision,
    recall_at_k,
    reciprocal_rank,
    recall_levels,
    relevant_ranks,
)


def random_case(seed: int, n_queries: int = 12, n_items: int = 40, n_values: int | None = 5):
    """Random relevance and scores; with ``n_values`` the scores take few distinct values (many ties)."""
    rng = np.random.default_rng(seed)
    relevant = rng.random((n_queries, n_items)) < rng.uniform(0.05, 0.5, size=(n_queries, 1))
    relevant[0] = False  # a query without relevant items
    scores = rng.standard_normal((n_queries, n_items))
    if n_values:
        scores = np.round(scores * n_values / 4) / n_values
    ranked = rng.random((n_queries, n_items)) > 0.1
    return relevant, scores, ranked


def rows(relevant, scores, ranked):
    for q in range(relevant.shape[0]):
        yield relevant[q].tolist(), scores[q].tolist(), None if ranked is None else ranked[q].tolist()


PER_QUERY = [
    (lambda r, s, m: average_precision(r, s, ranked=m), lambda r, s, m: ref.ap_sklearn(r, s, m)),
    (lambda r, s, m: average_precision(r, s, ranked=m, definition="trapezoid"), lambda r, s, m: ref.ap_trapezoid(r, s, m)),
    (lambda r, s, m: r_precision(r, s, ranked=m), lambda r, s, m: ref.r_precision(r, s, m)),
    (lambda r, s, m: map_at_r(r, s, ranked=m), lambda r, s, m: ref.map_at_r(r, s, m)),
    (lambda r, s, m: reciprocal_rank(r, s, ranked=m), lambda r, s, m: ref.reciprocal_rank(r, s, m)),
] + [
    pair
    for k in (1, 3, 10, 50)
    for pair in [
        (lambda r, s, m, k=k: precision_at_k(r, s, k, ranked=m), lambda r, s, m, k=k: ref.precision_at_k(r, s, k, m)),
        (lambda r, s, m, k=k: recall_at_k(r, s, k, ranked=m), lambda r, s, m, k=k: ref.recall_at_k(r, s, k, m)),
        (lambda r, s, m, k=k: map_at_k(r, s, k, ranked=m), lambda r, s, m, k=k: ref.map_at_k(r, s, k, m)),
        (lambda r, s, m, k=k: ndcg_at_k(r, s, k, ranked=m), lambda r, s, m, k=k: ref.ndcg_at_k(r, s, k, m)),
    ]
]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n_values", [None, 3])
@pytest.mark.parametrize("use_mask", [False, True])
def test_every_metric_matches_the_loop_oracle(seed, n_values, use_mask):
    relevant, scores, ranked = random_case(seed, n_values=n_values)
    mask = ranked if use_mask else None
    for fast, slow in PER_QUERY:
        got = fast(relevant, scores, mask)
        want = [slow(r, s, m) for r, s, m in rows(relevant, scores, mask)]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("levels", [2, 11, 101])
def test_pr_curve_matches_the_loop_oracle(seed, levels):
    relevant, scores, ranked = random_case(seed, n_values=3)
    got = interpolated_pr_curve(relevant, scores, ranked=ranked, levels=levels)
    grid = recall_levels(levels)
    want = [ref.pr_curve(r, s, grid, m) for r, s, m in rows(relevant, scores, ranked)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n_values", [None, 2, 4])
def test_ap_equals_sklearn_with_ties(seed, n_values):
    relevant, scores, _ = random_case(seed, n_values=n_values)
    got = average_precision(relevant, scores)
    for q in range(1, relevant.shape[0]):
        if relevant[q].any():
            assert got[q] == pytest.approx(average_precision_score(relevant[q], scores[q]), abs=1e-9)


def test_ap_equals_sklearn_on_float64_scores_of_a_large_row():
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((3, 5000))
    relevant = rng.random((3, 5000)) < 0.02
    for q in range(3):
        assert average_precision(relevant[q], scores[q])[0] == pytest.approx(
            average_precision_score(relevant[q], scores[q]), abs=1e-9
        )


def test_hand_worked_example_without_ties():
    relevant = [1, 0, 1, 0, 0]
    scores = [0.9, 0.8, 0.7, 0.6, 0.5]
    # relevant at ranks 1 and 3: AP = (1/1 + 2/3) / 2
    assert average_precision(relevant, scores)[0] == pytest.approx((1 + 2 / 3) / 2)
    # trapezoid: positions 0 and 2: ((1 + 1) / 2 + (1/2 + 2/3) / 2) / 2
    assert average_precision(relevant, scores, definition="trapezoid")[0] == pytest.approx((1 + (0.5 + 2 / 3) / 2) / 2)
    assert precision_at_k(relevant, scores, 2)[0] == 0.5
    assert recall_at_k(relevant, scores, 2)[0] == 0.5
    assert r_precision(relevant, scores)[0] == 0.5
    assert map_at_r(relevant, scores)[0] == pytest.approx(0.5)  # (1/1) / 2
    assert map_at_k(relevant, scores, 3)[0] == pytest.approx((1 + 2 / 3) / 2)
    assert ndcg_at_k(relevant, scores, 3)[0] == pytest.approx((1 + 1 / 2) / (1 + 1 / math.log2(3)))
    assert reciprocal_rank(relevant, scores)[0] == 1.0


def test_hand_worked_example_with_a_tie():
    # Items 0 (not relevant) and 1 (relevant) tie at 0.9; item 2 (relevant) scores 0.5.
    relevant = [0, 1, 1]
    scores = [0.9, 0.9, 0.5]
    # sklearn: one threshold at 0.9 (precision 1/2, recall 1/2), then 0.5 (precision 2/3, recall 1).
    assert average_precision(relevant, scores)[0] == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    # Strict ranking breaks the tie by index: item 0 first, so the relevant items are at ranks 2 and 3.
    ranks = relevant_ranks(relevant, scores)
    assert ranks.rank[0].tolist() == [2, 3]
    assert ranks.n_ge[0].tolist() == [2, 3]
    assert ranks.n_rel_ge[0].tolist() == [1, 2]
    assert precision_at_k(relevant, scores, 1)[0] == 0.0
    assert reciprocal_rank(relevant, scores)[0] == 0.5
    # trapezoid on positions 1, 2: ((0 + 1/2)/2 + (1/2 + 2/3)/2) / 2
    assert average_precision(relevant, scores, definition="trapezoid")[0] == pytest.approx((0.25 + (0.5 + 2 / 3) / 2) / 2)


def test_tie_order_is_by_index_not_by_relevance():
    # The relevant item comes first in index order, so it wins the tie.
    assert precision_at_k([1, 0], [0.3, 0.3], 1)[0] == 1.0
    assert precision_at_k([0, 1], [0.3, 0.3], 1)[0] == 0.0
    # ... while the sklearn AP does not depend on the order within a tie.
    assert average_precision([1, 0], [0.3, 0.3])[0] == average_precision([0, 1], [0.3, 0.3])[0] == 0.5


def test_query_without_relevant_items_is_nan_everywhere():
    relevant = np.zeros((1, 4), dtype=bool)
    scores = np.arange(4.0)[None]
    for value in (average_precision(relevant, scores), r_precision(relevant, scores), map_at_r(relevant, scores),
                  precision_at_k(relevant, scores, 2), ndcg_at_k(relevant, scores, 2), reciprocal_rank(relevant, scores)):  # fmt: skip
        assert np.isnan(value[0])
    assert np.isnan(interpolated_pr_curve(relevant, scores)).all()


def test_unranked_items_are_removed_before_ranking():
    relevant = [1, 0, 1]
    scores = [0.1, 0.9, 0.5]
    # Removing the non-relevant top item makes the ranking perfect.
    assert average_precision(relevant, scores, ranked=[True, False, True])[0] == 1.0
    # A removed relevant item no longer counts as relevant.
    assert average_precision(relevant, scores, ranked=[False, True, True])[0] == 0.5


def test_precision_at_k_larger_than_the_list_keeps_k_as_denominator():
    assert precision_at_k([1, 1], [0.2, 0.1], 4)[0] == 0.5


def test_p_at_k_and_r_at_k_match_torchmetrics_on_shifted_scores():
    torch = pytest.importorskip("torch")
    from torchmetrics.functional.retrieval import retrieval_precision, retrieval_recall

    rng = np.random.default_rng(3)
    scores = rng.standard_normal((8, 60)).astype(np.float32)  # continuous: no ties
    relevant = rng.random((8, 60)) < 0.2
    relevant[:, 0] = True
    for k in (1, 5, 10):
        p = precision_at_k(relevant, scores, k)
        r = recall_at_k(relevant, scores, k)
        for q in range(8):
            preds = torch.from_numpy(scores[q] + 2.0)  # torchmetrics ignores relevant items scored <= 0
            target = torch.from_numpy(relevant[q])
            assert p[q] == pytest.approx(float(retrieval_precision(preds, target, top_k=k)), abs=1e-6)
            assert r[q] == pytest.approx(float(retrieval_recall(preds, target, top_k=k)), abs=1e-6)


def test_torchmetrics_treats_non_positive_scores_as_misses():
    """Why the comparison above shifts the scores: unshifted, torchmetrics disagrees."""
    torch = pytest.importorskip("torch")
    from torchmetrics.functional.retrieval import retrieval_precision

    preds = torch.tensor([-0.1, -0.2, -0.3])
    target = torch.tensor([True, False, False])
    assert float(retrieval_precision(preds, target, top_k=1)) == 0.0
    assert precision_at_k([1, 0, 0], [-0.1, -0.2, -0.3], 1)[0] == 1.0


def test_map_at_r_and_r_precision_match_pytorch_metric_learning():
    torch = pytest.importorskip("torch")
    from pytorch_metric_learning.distances import CosineSimilarity
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN

    rng = np.random.default_rng(4)
    labels = rng.integers(0, 5, 120)
    centers = rng.standard_normal((5, 16))
    x = centers[labels] + rng.standard_normal((120, 16)) * 1.5
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    calc = AccuracyCalculator(include=("mean_average_precision_at_r", "r_precision", "mean_average_precision"),
                              k=None, device=torch.device("cpu"), knn_func=CustomKNN(CosineSimilarity()))  # fmt: skip
    got = calc.get_accuracy(torch.from_numpy(x), torch.from_numpy(labels))
    scores = x.astype(np.float64) @ x.astype(np.float64).T
    relevant = labels[:, None] == labels[None, :]
    ranked = ~np.eye(120, dtype=bool)
    assert np.mean(map_at_r(relevant, scores, ranked=ranked)) == pytest.approx(got["mean_average_precision_at_r"], abs=1e-6)
    assert np.mean(r_precision(relevant, scores, ranked=ranked)) == pytest.approx(got["r_precision"], abs=1e-6)
    # With k = all items, pml's mean_average_precision is the (untied) full AP.
    assert np.mean(average_precision(relevant, scores, ranked=ranked)) == pytest.approx(
        got["mean_average_precision"], abs=1e-6
    )
