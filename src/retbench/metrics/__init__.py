"""Retrieval metrics: pure per-query functions, the blockwise evaluator and statistics over queries.

Definitions (AP in its "sklearn" and "trapezoid" forms, the tie rule, every cut-off metric, the
PR curve, the bootstrap) are collected in docs/metrics.md and in each module's docstring.

- :func:`evaluate` (leave-one-out), :func:`evaluate_query_gallery`, :func:`evaluate_ground_truth`
  -> :class:`Evaluation`; :func:`evaluate_ground_truth_setups`: several ground truths of the same
  queries and gallery (Revisited easy / medium / hard) in one score pass.
- Pure functions of ``relevant (Q, N) bool`` and ``scores (Q, N) float``: :func:`average_precision`,
  :func:`precision_at_k`, :func:`recall_at_k`, :func:`r_precision`, :func:`map_at_r`,
  :func:`map_at_k`, :func:`ndcg_at_k`, :func:`reciprocal_rank`, :func:`interpolated_pr_curve`,
  and :func:`relevant_ranks` (what they all share).
- :func:`bootstrap_ci`, :func:`paired_comparison`, :func:`sign_test_p_value` (log space: never 0).
- Revisited Oxford/Paris ground truth: :func:`load_revisited_ground_truth`, :func:`revisited_setup`.
"""

from retbench.metrics.average_precision import average_precision
from retbench.metrics.cutoff import (
    map_at_k,
    map_at_r,
    ndcg_at_k,
    precision_at_k,
    r_precision,
    recall_at_k,
    reciprocal_rank,
)
from retbench.metrics.evaluation import Evaluation, metric_keys
from retbench.metrics.pr_curve import interpolated_pr_curve, recall_levels
from retbench.metrics.protocols import (
    evaluate,
    evaluate_ground_truth,
    evaluate_ground_truth_setups,
    evaluate_query_gallery,
)
from retbench.metrics.ranks import RelevantRanks, relevant_ranks
from retbench.metrics.revisited import (
    RevisitedGroundTruth,
    load_revisited_ground_truth,
    parse_revisited_ground_truth,
    revisited_setup,
)
from retbench.metrics.statistics import (
    bootstrap_ci,
    p_value_text,
    paired_comparison,
    sign_test_log_p_value,
    sign_test_p_value,
)

__all__ = [
    "Evaluation",
    "RelevantRanks",
    "RevisitedGroundTruth",
    "average_precision",
    "bootstrap_ci",
    "evaluate",
    "evaluate_ground_truth",
    "evaluate_ground_truth_setups",
    "evaluate_query_gallery",
    "interpolated_pr_curve",
    "load_revisited_ground_truth",
    "map_at_k",
    "map_at_r",
    "metric_keys",
    "ndcg_at_k",
    "p_value_text",
    "paired_comparison",
    "parse_revisited_ground_truth",
    "precision_at_k",
    "r_precision",
    "recall_at_k",
    "recall_levels",
    "reciprocal_rank",
    "relevant_ranks",
    "revisited_setup",
    "sign_test_log_p_value",
    "sign_test_p_value",
]
