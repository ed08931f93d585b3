"""Interpolated precision-recall curve of each query, on fixed recall levels.

The operating points of a query are those of ``sklearn.metrics.precision_recall_curve`` at the
scores of its relevant items (ties share one threshold): for relevant item j,

    recall_j = n_rel_ge(j) / R,   precision_j = n_rel_ge(j) / n_ge(j).

The interpolated precision at recall level r is the best precision at recall >= r
(``max {precision_j : recall_j >= r}``, the PASCAL VOC / TREC convention), evaluated at
``np.linspace(0, 1, levels)``. At r = 0 it is the best precision of any operating point (sklearn's
artificial (recall 0, precision 1) end point is not used). The mean of these curves over the queries
that have relevant items is the dataset's PR curve.
"""

from __future__ import annotations

import numpy as np

from retbench.metrics._validation import check_pr_levels
from retbench.metrics.ranks import RelevantRanks, relevant_ranks


def recall_levels(levels: int = 101) -> np.ndarray:
    """(levels,) float64 ``np.linspace(0, 1, levels)``."""
    return np.linspace(0.0, 1.0, check_pr_levels(levels))


def interpolated_pr_curve(relevant: np.ndarray, scores: np.ndarray, *, ranked: np.ndarray | None = None,
                          levels: int = 101) -> np.ndarray:  # fmt: skip
    """(Q, levels) float64 interpolated precision at :func:`recall_levels`; NaN rows without relevant items."""
    return pr_curve_from_ranks(relevant_ranks(relevant, scores, ranked), levels)


def pr_curve_from_ranks(ranks: RelevantRanks, levels: int = 101) -> np.ndarray:
    """(Q, levels) float64 interpolated precision of each query (see module docstring)."""
    grid = recall_levels(levels)
    n_queries, width = ranks.rank.shape
    out = np.full((n_queries, grid.size), np.nan)
    has = ranks.n_relevant > 0
    if width == 0 or not has.any():
        return out
    valid = ranks.valid
    precision = np.where(valid, ranks.n_rel_ge / ranks.n_ge, 0.0)
    # Best precision at or after slot j (recall is non-decreasing along the ranking).
    best_after = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    n_rel = np.maximum(ranks.n_relevant, 1)[:, None]
    # Smallest integer count m with m / R >= level (float comparison, as a loop over levels would do).
    need = np.ceil(grid[None, :] * n_rel).astype(np.int64)
    need -= ((need - 1) / n_rel >= grid[None, :]) & (need > 0)
    need += (need / n_rel < grid[None, :]) & (need < n_rel)
    # First slot j whose n_rel_ge reaches `need`: n_rel_ge is non-decreasing along each row, so one
    # global searchsorted on rows shifted apart by (width + 1) finds it for every (query, level).
    stride = width + 1
    shifted = np.where(valid, ranks.n_rel_ge, stride - 1) + np.arange(n_queries)[:, None] * stride
    targets = need + np.arange(n_queries)[:, None] * stride
    found = np.searchsorted(shifted.ravel(), targets.ravel()).reshape(targets.shape)
    first = found - np.arange(n_queries)[:, None] * width
    first = np.clip(first, 0, width - 1)
    curve = np.take_along_axis(best_after, first, axis=1)
    out[has] = curve[has]
    return out
