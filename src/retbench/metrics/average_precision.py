"""Average Precision (AP) of each query, in two documented definitions.

``"sklearn"`` (the default, the retbench contract)
    Identical to ``sklearn.metrics.average_precision_score(y_true, scores)`` over the ranked items,
    including its tie handling: items with equal scores share one threshold, so

        AP = (1 / R) * sum over relevant items j of  n_rel_ge(j) / n_ge(j)

    where ``R`` is the number of relevant items, ``n_ge(j)`` the number of items with score >= the
    score of j and ``n_rel_ge(j)`` the number of relevant ones among them (the step-wise area
    ``sum_n (R_n - R_{n-1}) P_n`` of the precision-recall curve). Reference: scikit-learn,
    ``sklearn/metrics/_ranking.py`` (``average_precision_score``, ``precision_recall_curve``).

``"trapezoid"``
    The AP of the Revisited Oxford/Paris benchmark (``compute_ap`` in revisitop
    ``python/evaluate.py``; Radenovic et al., CVPR 2018): trapezoid rule over the ranked list,

        AP = (1 / R) * sum over relevant items j (0-based j in ranking order, 0-based position p_j)
             of (P0_j + P1_j) / 2,  P0_j = j / p_j (1 when p_j = 0),  P1_j = (j + 1) / (p_j + 1).

    It needs a strict ranking: retbench breaks ties by ascending index (a stable sort of
    ``-score``), whereas revisitop's ``np.argsort`` leaves the order of tied items unspecified.

A query without relevant items has AP = NaN (it is left out of the mean, like revisitop; sklearn
itself warns and returns a meaningless value there).
"""

from __future__ import annotations

import numpy as np

from retbench.metrics._validation import check_ap_definition
from retbench.metrics.ranks import RelevantRanks, relevant_ranks


def average_precision(relevant: np.ndarray, scores: np.ndarray, *, ranked: np.ndarray | None = None,
                      definition: str = "sklearn") -> np.ndarray:  # fmt: skip
    """AP of each query from its full score row.

    Args:
        relevant: (Q, N) bool, item i is relevant to query q (1-D: one query).
        scores: (Q, N) float32 or float64, higher = better; equal values are ties.
        ranked: optional (Q, N) bool, False removes an item from that query's ranking (see
            :func:`retbench.metrics.ranks.relevant_ranks`).
        definition: ``"sklearn"`` (default) or ``"trapezoid"`` (see the module docstring).

    Returns:
        (Q,) float64, NaN for a query without relevant (ranked) items. With ``"sklearn"`` and float64
        scores it equals ``sklearn.metrics.average_precision_score(relevant[q], scores[q])`` up to
        float64 rounding (tested at 1e-9).
    """
    definition = check_ap_definition(definition)
    return ap_from_ranks(relevant_ranks(relevant, scores, ranked), definition)


def ap_from_ranks(ranks: RelevantRanks, definition: str = "sklearn") -> np.ndarray:
    """(Q,) float64 AP from :class:`RelevantRanks`; NaN where ``n_relevant == 0``."""
    definition = check_ap_definition(definition)
    valid = ranks.valid
    if definition == "sklearn":
        terms = np.where(valid, ranks.n_rel_ge / ranks.n_ge, 0.0)
    else:
        j = np.arange(ranks.rank.shape[1], dtype=np.float64)[None, :]
        position = np.where(valid, ranks.rank - 1, 1).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            p0 = np.where(position == 0, 1.0, j / position)
        p1 = (j + 1.0) / (position + 1.0)
        terms = np.where(valid, (p0 + p1) / 2.0, 0.0)
    return _mean_over_relevant(terms, ranks.n_relevant)


def _mean_over_relevant(terms: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    total = terms.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n_relevant > 0, total / np.maximum(n_relevant, 1), np.nan)
