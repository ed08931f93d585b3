"""Where the relevant items of each query land in its ranking: the one input every metric needs.

Every retrieval metric in retbench is a function of, for each query and each of its relevant
items, three integers (see docs/metrics.md):

- ``rank``: the item's 1-based position in the ranking, under the **tie rule**: items are ordered
  by descending score, and items with equal scores by ascending index (a stable sort of
  ``-score``). Cut-off metrics (P@k, R@k, nDCG@k, MRR, R-precision, mAP@R, mAP@k) and the
  trapezoid AP use it.
- ``n_ge``: the number of ranked items whose score is ``>=`` the item's score (ties share one
  threshold, as in ``sklearn.metrics.precision_recall_curve``). The sklearn AP and the PR curve use it.
- ``n_rel_ge``: the number of relevant items whose score is ``>=`` the item's score.

:class:`RelevantRanks` holds them padded to ``(n_queries, max_relevant)`` with the relevant items
in ranking order. :func:`relevant_ranks` computes them exactly from a score matrix by sorting; the
fast evaluator (:mod:`retbench.metrics._engine`) computes the same integers without sorting rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retbench.metrics._validation import check_mask, check_relevance_and_scores

#: rank given to padding slots: larger than any real rank, so ``rank <= k`` is False there.
RANK_PAD = np.iinfo(np.int64).max // 4


@dataclass(frozen=True)
class RelevantRanks:
    """Ranks of the relevant items of ``Q`` queries, padded to ``(Q, R)`` with ``R = max n_relevant``.

    Attributes:
        n_relevant: (Q,) int64, relevant items of each query that are in its ranking.
        rank: (Q, R) int64, 1-based rank of the j-th relevant item (ranking order); ``RANK_PAD`` in padding.
        n_ge: (Q, R) int64, ranked items with score >= that item's score; 1 in padding.
        n_rel_ge: (Q, R) int64, relevant items with score >= that item's score; 0 in padding.
    """

    n_relevant: np.ndarray
    rank: np.ndarray
    n_ge: np.ndarray
    n_rel_ge: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        """(Q, R) bool: True where slot j holds a relevant item (j < n_relevant)."""
        return np.arange(self.rank.shape[1])[None, :] < self.n_relevant[:, None]

    @staticmethod
    def empty(n_queries: int, width: int) -> RelevantRanks:
        """``n_queries`` rows of padding, to be filled in."""
        return RelevantRanks(
            n_relevant=np.zeros(n_queries, dtype=np.int64),
            rank=np.full((n_queries, width), RANK_PAD, dtype=np.int64),
            n_ge=np.ones((n_queries, width), dtype=np.int64),
            n_rel_ge=np.zeros((n_queries, width), dtype=np.int64),
        )


def relevant_ranks(relevant: np.ndarray, scores: np.ndarray, ranked: np.ndarray | None = None) -> RelevantRanks:
    """Exact :class:`RelevantRanks` of each query from its full score row (sorting; O(N log N) per query).

    Args:
        relevant: (Q, N) bool (or 0/1), ``relevant[q, i]``: item i is relevant to query q. 1-D = one query.
        scores: (Q, N) float (float32 or float64; compared exactly, equal values are ties), higher = better.
        ranked: optional (Q, N) bool, ``False`` removes item i from query q's ranking altogether (the
            query itself in leave-one-out, "junk" items in Revisited Oxford/Paris): it is neither
            relevant nor counted before anything. Default: every item is ranked.

    Returns:
        The ranks of the relevant ranked items, in ranking order (descending score, ties by ascending index).
    """
    rel, sc = check_relevance_and_scores(relevant, scores)
    n_queries = sc.shape[0]
    if ranked is None:
        keep = np.ones_like(rel)
    else:
        keep = check_mask("ranked", ranked, sc.shape)
    # Stable sort of -score: ties keep ascending index. Unranked items go last (key +inf) and count nowhere.
    key = np.where(keep, -sc, np.inf)
    order = np.argsort(key, axis=1, kind="stable")
    key_sorted = np.take_along_axis(key, order, axis=1)
    keep_sorted = np.take_along_axis(keep, order, axis=1)
    rel_sorted = np.take_along_axis(rel, order, axis=1) & keep_sorted
    cum_kept = np.cumsum(keep_sorted, axis=1, dtype=np.int64)
    cum_rel = np.cumsum(rel_sorted, axis=1, dtype=np.int64)
    # Last position of each tie group: counts there are the ">= score" counts of the whole group.
    group_end = np.ones_like(keep_sorted)
    group_end[:, :-1] = key_sorted[:, 1:] != key_sorted[:, :-1]
    big = np.iinfo(np.int64).max
    n_ge_all = np.minimum.accumulate(np.where(group_end, cum_kept, big)[:, ::-1], axis=1)[:, ::-1]
    n_rel_ge_all = np.minimum.accumulate(np.where(group_end, cum_rel, big)[:, ::-1], axis=1)[:, ::-1]

    n_relevant = rel_sorted.sum(axis=1).astype(np.int64)
    width = int(n_relevant.max()) if n_queries else 0
    out = RelevantRanks.empty(n_queries, width)
    if width == 0:
        return out
    # Positions of the relevant items, in ranking order (stable argsort moves True first, keeping order).
    pos = np.argsort(~rel_sorted, axis=1, kind="stable")[:, :width]
    valid = np.arange(width)[None, :] < n_relevant[:, None]
    out.n_relevant[:] = n_relevant
    out.rank[valid] = np.take_along_axis(cum_kept, pos, axis=1)[valid]
    out.n_ge[valid] = np.take_along_axis(n_ge_all, pos, axis=1)[valid]
    out.n_rel_ge[valid] = np.take_along_axis(n_rel_ge_all, pos, axis=1)[valid]
    return out
