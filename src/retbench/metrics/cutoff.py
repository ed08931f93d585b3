"""Rank-based retrieval metrics of each query: P@k, R@k, R-precision, mAP@R, mAP@k, nDCG@k, RR.

All use the strict ranking of :mod:`retbench.metrics.ranks` (descending score, ties by ascending
index) and return (Q,) float64 with NaN for a query without relevant items. ``R`` is the number
of relevant (ranked) items of the query, ``rank_j`` the 1-based rank of its j-th relevant item
(j = 1..R in ranking order) and ``rel_i`` 1 when the item at rank i is relevant. Definitions
(collected in docs/metrics.md):

- ``precision_at_k`` = #{j: rank_j <= k} / k (denominator k even when fewer than k items are ranked).
- ``recall_at_k`` = #{j: rank_j <= k} / R.
- ``r_precision`` = #{j: rank_j <= R} / R.
- ``map_at_r`` = (1/R) sum_{i<=R} P@i * rel_i: pytorch-metric-learning's ``mean_average_precision_at_r``
  (Musgrave et al., "A Metric Learning Reality Check", ECCV 2020).
- ``map_at_k`` = (1/min(k, R)) sum_{i<=k} P@i * rel_i (the normalisation that makes a perfect
  ranking score 1; pytorch-metric-learning's ``mean_average_precision`` divides by the number of
  relevant items retrieved in the top k instead).
- ``ndcg_at_k`` = DCG@k / IDCG@k with binary gains and log2 discount: DCG@k = sum_{rank_j<=k}
  1 / log2(rank_j + 1), IDCG@k = sum_{i=1}^{min(k, R)} 1 / log2(i + 1) (Jarvelin & Kekalainen 2002).
- ``reciprocal_rank`` = 1 / rank_1 (its mean over queries is the MRR).
"""

from __future__ import annotations

import numpy as np

from retbench.metrics._validation import check_k
from retbench.metrics.ranks import RelevantRanks, relevant_ranks


def _per_query(values: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    return np.where(n_relevant > 0, values, np.nan)


def hits_at_k(ranks: RelevantRanks, k: int) -> np.ndarray:
    """(Q,) int64, relevant items ranked in the top ``k``."""
    # The j-th relevant item (0-based) has rank >= j + 1: only the first k slots can be in the top k.
    return (ranks.rank[:, :k] <= k).sum(axis=1)


def precision_at_k_from_ranks(ranks: RelevantRanks, k: int) -> np.ndarray:
    k = check_k("k", k)
    return _per_query(hits_at_k(ranks, k) / k, ranks.n_relevant)


def recall_at_k_from_ranks(ranks: RelevantRanks, k: int) -> np.ndarray:
    k = check_k("k", k)
    return _per_query(hits_at_k(ranks, k) / np.maximum(ranks.n_relevant, 1), ranks.n_relevant)


def r_precision_from_ranks(ranks: RelevantRanks) -> np.ndarray:
    hits = np.count_nonzero(ranks.rank <= ranks.n_relevant[:, None], axis=1)
    return _per_query(hits / np.maximum(ranks.n_relevant, 1), ranks.n_relevant)


def _precision_sum_within(ranks: RelevantRanks, cutoff: np.ndarray, width: int) -> np.ndarray:
    """sum over relevant j with rank_j <= cutoff[q] of j / rank_j (j 1-based): sum_{i<=cutoff} P@i rel_i.

    Only the first ``width`` slots are looked at (enough when cutoff <= width, as rank_j >= j).
    """
    rank = ranks.rank[:, :width]
    j = np.arange(1, rank.shape[1] + 1, dtype=np.float64)[None, :]
    inside = rank <= cutoff[:, None]
    return np.where(inside, j / np.where(inside, rank, 1), 0.0).sum(axis=1)


def map_at_r_from_ranks(ranks: RelevantRanks) -> np.ndarray:
    total = _precision_sum_within(ranks, ranks.n_relevant, ranks.rank.shape[1])
    return _per_query(total / np.maximum(ranks.n_relevant, 1), ranks.n_relevant)


def map_at_k_from_ranks(ranks: RelevantRanks, k: int) -> np.ndarray:
    k = check_k("k", k)
    total = _precision_sum_within(ranks, np.full(ranks.n_relevant.shape, k, dtype=np.int64), k)
    return _per_query(total / np.maximum(np.minimum(ranks.n_relevant, k), 1), ranks.n_relevant)


def ndcg_at_k_from_ranks(ranks: RelevantRanks, k: int) -> np.ndarray:
    k = check_k("k", k)
    rank = ranks.rank[:, :k]
    inside = rank <= k
    dcg = np.where(inside, 1.0 / np.log2(np.where(inside, rank, 1) + 1.0), 0.0).sum(axis=1)
    discounts = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(1, k + 1) + 1.0))])
    ideal = discounts[np.minimum(ranks.n_relevant, k)]
    return _per_query(dcg / np.where(ideal > 0, ideal, 1.0), ranks.n_relevant)


def reciprocal_rank_from_ranks(ranks: RelevantRanks) -> np.ndarray:
    if ranks.rank.shape[1] == 0:
        return np.full(ranks.n_relevant.shape, np.nan)
    return _per_query(1.0 / np.where(ranks.n_relevant > 0, ranks.rank[:, 0], 1), ranks.n_relevant)


# Pure functions on score matrices: relevant (Q, N) bool, scores (Q, N) float, optional ranked (Q, N) bool.


def precision_at_k(relevant: np.ndarray, scores: np.ndarray, k: int, *, ranked: np.ndarray | None = None) -> np.ndarray:
    """(Q,) float64 precision in the top ``k`` (see module docstring); NaN without relevant items."""
    return precision_at_k_from_ranks(relevant_ranks(relevant, scores, ranked), k)


def recall_at_k(relevant: np.ndarray, scores: np.ndarray, k: int, *, ranked: np.ndarray | None = None) -> np.ndarray:
    """(Q,) float64 fraction of the relevant items ranked in the top ``k``; NaN without relevant items."""
    return recall_at_k_from_ranks(relevant_ranks(relevant, scores, ranked), k)


def r_precision(relevant: np.ndarray, scores: np.ndarray, *, ranked: np.ndarray | None = None) -> np.ndarray:
    """(Q,) float64 precision in the top R (R = number of relevant items); NaN without relevant items."""
    return r_precision_from_ranks(relevant_ranks(relevant, scores, ranked))


def map_at_r(relevant: np.ndarray, scores: np.ndarray, *, ranked: np.ndarray | None = None) -> np.ndarray:
    """(Q,) float64 pytorch-metric-learning's MAP@R per query; NaN without relevant items."""
    return map_at_r_from_ranks(relevant_ranks(relevant, scores, ranked))


def map_at_k(relevant: np.ndarray, scores: np.ndarray, k: int, *, ranked: np.ndarray | None = None) -> np.ndarray:
    """(Q,) float64 AP truncated at ``k``, normalised by min(k, R); NaN without relevant items."""
    return map_at_k_from_ranks(relevant_ranks(relevant, scores, ranked), k)


def ndcg_at_k(relevant: np.ndarray, scores: np.ndarray, k: int, *, ranked: np.ndarray | None = None) -> np.ndarray:
    """(Q,) float64 binary-gain nDCG@k; NaN without relevant items."""
    return ndcg_at_k_from_ranks(relevant_ranks(relevant, scores, ranked), k)


def reciprocal_rank(relevant: np.ndarray, scores: np.ndarray, *, ranked: np.ndarray | None = None) -> np.ndarray:
    """(Q,) float64 1 / rank of the first relevant item; NaN without relevant items."""
    return reciprocal_rank_from_ranks(relevant_ranks(relevant, scores, ranked))
