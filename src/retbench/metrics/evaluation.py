"""The :class:`Evaluation` result and how per-query values are turned into it.

Metric keys (the results.json contract): ``map``, ``precision@K``, ``recall@K``, ``r_precision``,
``map@r``, ``map@K``, ``ndcg@K``, ``mrr`` (K = each requested cut-off), plus ``<key>_ci95``.
Every aggregate is the mean over the queries that have at least one relevant item.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from retbench.metrics.average_precision import ap_from_ranks
from retbench.metrics.cutoff import (
    map_at_k_from_ranks,
    map_at_r_from_ranks,
    ndcg_at_k_from_ranks,
    precision_at_k_from_ranks,
    r_precision_from_ranks,
    recall_at_k_from_ranks,
    reciprocal_rank_from_ranks,
)
from retbench.jsonable import to_jsonable
from retbench.metrics.ranks import RelevantRanks


def metric_keys(ks: Sequence[int]) -> list[str]:
    """Aggregate metric keys in their documented order (per-query keys: the same with ``ap`` for ``map``)."""
    return (["map"] + [f"precision@{k}" for k in ks] + [f"recall@{k}" for k in ks] + ["r_precision", "map@r"]
            + [f"map@{k}" for k in ks] + [f"ndcg@{k}" for k in ks] + ["mrr"])  # fmt: skip


def per_query_key(metric_key: str) -> str:
    return "ap" if metric_key == "map" else metric_key


def per_query_metrics(ranks: RelevantRanks, ks: Sequence[int], ap_definition: str,
                      full: np.ndarray | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """Every per-query metric, (Q,) float64 each, NaN for queries without relevant items.

    ``full``: optional (Q, 4) precomputed AP (sklearn), AP (trapezoid), R-precision and MAP@R (the
    evaluator's kernel computes them); then ``ranks`` only needs its first max(ks) slots.
    """
    if full is None:
        values: dict[str, np.ndarray] = {"ap": ap_from_ranks(ranks, ap_definition)}
    else:
        values = {"ap": full[:, 0] if ap_definition == "sklearn" else full[:, 1]}
    for k in ks:
        values[f"precision@{k}"] = precision_at_k_from_ranks(ranks, k)
    for k in ks:
        values[f"recall@{k}"] = recall_at_k_from_ranks(ranks, k)
    values["r_precision"] = r_precision_from_ranks(ranks) if full is None else full[:, 2]
    values["map@r"] = map_at_r_from_ranks(ranks) if full is None else full[:, 3]
    for k in ks:
        values[f"map@{k}"] = map_at_k_from_ranks(ranks, k)
    for k in ks:
        values[f"ndcg@{k}"] = ndcg_at_k_from_ranks(ranks, k)
    values["mrr"] = reciprocal_rank_from_ranks(ranks)
    return values


def _nan_mean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


@dataclass(frozen=True)
class Evaluation:
    """Result of an evaluation (see docs/metrics.md for every definition).

    Attributes:
        ap: (N,) float64 AP of each query, NaN where the query has no relevant item.
        map: mean of the non-NaN ``ap``.
        metrics: aggregate metrics (keys: :func:`metric_keys`) and ``<key>_ci95: [lo, hi]`` when
            bootstrap CIs were computed.
        per_query: (N,) float64 per metric (``ap`` for AP), NaN for queries without relevant items.
        per_class: label -> {"n_images": queries of that label, "n_with_relevant": how many of them
            have relevant items, "ap": their mean AP, and the mean of every other per-query metric}.
        pr_curve: (L,) float64 mean interpolated precision at ``recall_levels`` over queries with relevant items.
        recall_levels: (L,) float64 ``np.linspace(0, 1, L)``.
        n_queries: number of queries; n_queries_without_relevant: how many have no relevant item.
        config: everything that defines the numbers (JSON-serialisable).
    """

    ap: np.ndarray
    map: float
    metrics: dict[str, float | list[float]]
    per_query: dict[str, np.ndarray]
    per_class: dict[str, dict[str, float]]
    pr_curve: np.ndarray
    recall_levels: np.ndarray
    n_queries: int
    n_queries_without_relevant: int
    config: dict = field(default_factory=dict)

    def to_dict(self, *, per_query: bool = True) -> dict:
        """JSON-serialisable dict (NaN -> None); ``per_query=False`` leaves out the per-query arrays but ``ap``."""
        out = {
            "map": self.map,
            "ap": self.ap,
            "metrics": self.metrics,
            "per_class": self.per_class,
            "pr_curve": {"recall": self.recall_levels, "precision": self.pr_curve},
            "n_queries": self.n_queries,
            "n_queries_without_relevant": self.n_queries_without_relevant,
            "config": self.config,
        }
        if per_query:
            out["per_query"] = self.per_query
        return to_jsonable(out)


def _per_class(per_query: dict[str, np.ndarray], query_labels: np.ndarray,
               has_relevant: np.ndarray) -> dict[str, dict[str, float]]:
    """Mean of every per-query value over each class's queries (NaN left out; NaN when none): one
    pass per key with ``np.bincount``, so the cost does not grow with classes x queries."""
    classes, codes = np.unique(np.asarray(query_labels).astype(str), return_inverse=True)
    n_classes = classes.size
    n_images = np.bincount(codes, minlength=n_classes)
    n_with = np.bincount(codes[has_relevant], minlength=n_classes)
    means: dict[str, np.ndarray] = {}
    for key, values in per_query.items():
        present = ~np.isnan(values)
        counts = np.bincount(codes[present], minlength=n_classes)
        sums = np.bincount(codes[present], weights=values[present], minlength=n_classes)
        with np.errstate(invalid="ignore", divide="ignore"):
            means[key] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return {str(label): {"n_images": int(n_images[c]), "n_with_relevant": int(n_with[c]),
                         **{key: float(means[key][c]) for key in per_query}}
            for c, label in enumerate(classes)}  # fmt: skip


def summarise(per_query: dict[str, np.ndarray], pr_sum: np.ndarray, levels: np.ndarray, *, ks: Sequence[int],
              query_labels: np.ndarray | None, ci95: dict[str, list[float]], config: dict) -> Evaluation:  # fmt: skip
    """Aggregate per-query values into an :class:`Evaluation`.

    ``pr_sum`` is the sum of the per-query PR curves over queries with relevant items; ``ci95`` maps
    per-query keys to [lo, hi] (empty when no bootstrap was run).
    """
    ap = per_query["ap"]
    has_relevant = ~np.isnan(ap)
    n_with = int(has_relevant.sum())
    metrics: dict[str, float | list[float]] = {}
    for key in metric_keys(ks):
        metrics[key] = _nan_mean(per_query[per_query_key(key)])
    for key in metric_keys(ks):  # ci95 is keyed like per_query ("ap" for "map")
        if per_query_key(key) in ci95:
            metrics[f"{key}_ci95"] = ci95[per_query_key(key)]
    per_class = _per_class(per_query, query_labels, has_relevant) if query_labels is not None else {}
    pr_curve = pr_sum / n_with if n_with else np.full(levels.shape, np.nan)
    return Evaluation(ap=ap, map=float(metrics["map"]), metrics=metrics, per_query=per_query, per_class=per_class,
                      pr_curve=pr_curve, recall_levels=levels, n_queries=int(ap.size),
                      n_queries_without_relevant=int(ap.size - n_with), config=config)  # fmt: skip
