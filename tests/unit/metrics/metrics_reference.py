"""Slow, obviously-correct reference implementations (plain Python loops) of every retbench metric.

The fast vectorised / numba code is checked against these (STYLE.md habit 12). One query at a
time: ``rel`` is a list of bools, ``scores`` a list of floats, ``ranked`` a list of bools
(False = removed from the ranking, like the query itself or a junk item).
"""

from __future__ import annotations

import math


def ranking(scores, ranked=None):
    """Indices of the ranked items: descending score, equal scores by ascending index."""
    items = [i for i in range(len(scores)) if ranked is None or ranked[i]]
    return sorted(items, key=lambda i: (-scores[i], i))


def relevant_ranks(rel, scores, ranked=None):
    """1-based ranks of the relevant ranked items, in ranking order."""
    return [pos + 1 for pos, i in enumerate(ranking(scores, ranked)) if rel[i]]


def ap_sklearn(rel, scores, ranked=None):
    """Mean over relevant j of #relevant with score >= s_j / #items with score >= s_j (NaN if none)."""
    items = ranking(scores, ranked)
    positives = [i for i in items if rel[i]]
    if not positives:
        return math.nan
    total = 0.0
    for j in positives:
        at_or_above = [i for i in items if scores[i] >= scores[j]]
        total += sum(1 for i in at_or_above if rel[i]) / len(at_or_above)
    return total / len(positives)


def ap_trapezoid(rel, scores, ranked=None):
    """revisitop's compute_ap on the 0-based positions of the relevant items (ties by index)."""
    positions = [r - 1 for r in relevant_ranks(rel, scores, ranked)]
    if not positions:
        return math.nan
    ap = 0.0
    step = 1.0 / len(positions)
    for j, rank in enumerate(positions):
        precision_0 = 1.0 if rank == 0 else j / rank
        precision_1 = (j + 1) / (rank + 1)
        ap += (precision_0 + precision_1) * step / 2.0
    return ap


def _ranked_relevance(rel, scores, ranked):
    return [bool(rel[i]) for i in ranking(scores, ranked)]


def precision_at_k(rel, scores, k, ranked=None):
    flags = _ranked_relevance(rel, scores, ranked)
    if not any(flags):
        return math.nan
    return sum(flags[:k]) / k


def recall_at_k(rel, scores, k, ranked=None):
    flags = _ranked_relevance(rel, scores, ranked)
    if not any(flags):
        return math.nan
    return sum(flags[:k]) / sum(flags)


def r_precision(rel, scores, ranked=None):
    flags = _ranked_relevance(rel, scores, ranked)
    r = sum(flags)
    return math.nan if r == 0 else sum(flags[:r]) / r


def _sum_precision_at_hits(flags, cutoff):
    total, hits = 0.0, 0
    for i, flag in enumerate(flags[:cutoff], start=1):
        if flag:
            hits += 1
            total += hits / i
    return total


def map_at_r(rel, scores, ranked=None):
    flags = _ranked_relevance(rel, scores, ranked)
    r = sum(flags)
    return math.nan if r == 0 else _sum_precision_at_hits(flags, r) / r


def map_at_k(rel, scores, k, ranked=None):
    flags = _ranked_relevance(rel, scores, ranked)
    r = sum(flags)
    return math.nan if r == 0 else _sum_precision_at_hits(flags, k) / min(k, r)


def ndcg_at_k(rel, scores, k, ranked=None):
    flags = _ranked_relevance(rel, scores, ranked)
    r = sum(flags)
    if r == 0:
        return math.nan
    dcg = sum(1.0 / math.log2(i + 1) for i, flag in enumerate(flags[:k], start=1) if flag)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(k, r) + 1))
    return dcg / ideal


def reciprocal_rank(rel, scores, ranked=None):
    ranks = relevant_ranks(rel, scores, ranked)
    return math.nan if not ranks else 1.0 / ranks[0]


def pr_curve(rel, scores, levels, ranked=None):
    """Interpolated precision (max precision at recall >= r) at each level; tie-aware operating points."""
    items = ranking(scores, ranked)
    positives = [i for i in items if rel[i]]
    if not positives:
        return [math.nan] * len(levels)
    points = []
    for j in positives:
        at_or_above = [i for i in items if scores[i] >= scores[j]]
        n_rel = sum(1 for i in at_or_above if rel[i])
        points.append((n_rel / len(positives), n_rel / len(at_or_above)))
    return [max(p for r, p in points if r >= level) for level in levels]


def topk(score_rows, k, exclude=None, largest=True):
    """Per row: the k best (largest=True) or worst items, ties by ascending index."""
    out = []
    for q, row in enumerate(score_rows):
        items = [i for i in range(len(row)) if exclude is None or i != exclude[q]]
        sign = -1.0 if largest else 1.0
        out.append(sorted(items, key=lambda i: (sign * row[i], i))[:k])
    return out
