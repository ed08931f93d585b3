"""What a report shows: pure, deterministic choices of queries and class pairs from saved results.

Every function takes arrays indexed by list line (the order of ``run["ap"]``) and breaks ties by
line, so the same folder always gives the same report (no random queries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


def ap_array(ap: Sequence[float | None]) -> np.ndarray:
    """results.json's ``ap`` (null for no relevant item / skipped) as (N,) float64 with NaN."""
    return np.array([np.nan if v is None else v for v in ap], dtype=np.float64)


def best_and_worst(ap: np.ndarray, n: int) -> tuple[list[int], list[int]]:
    """The ``n`` highest-AP and ``n`` lowest-AP queries (list lines), NaN left out; no line in both.

    Best: AP descending; worst: AP ascending, among the queries not in best; equal APs by
    ascending line. With fewer than ``2 n`` valid queries, worst gets what is left.
    """
    lines = np.flatnonzero(~np.isnan(ap))
    best = lines[np.lexsort((lines, -ap[lines]))][:n]
    rest = np.setdiff1d(lines, best)
    worst = rest[np.lexsort((rest, ap[rest]))][:n]
    return best.tolist(), worst.tolist()


def disagreements(ap_a: np.ndarray, ap_b: np.ndarray, n: int) -> tuple[list[int], list[int]]:
    """Queries where encoder A beats B the most, and where B beats A the most (list lines).

    Only queries with an AP under both encoders and a non-zero difference; ordered by the size of
    the difference, then by line.
    """
    d = ap_a - ap_b
    lines = np.flatnonzero(~np.isnan(d))
    a_better = lines[d[lines] > 0]
    b_better = lines[d[lines] < 0]
    a_better = a_better[np.lexsort((a_better, -d[a_better]))][:n]
    b_better = b_better[np.lexsort((b_better, d[b_better]))][:n]
    return a_better.tolist(), b_better.tolist()


@dataclass(frozen=True)
class ConfusedPair:
    """Two classes that retrieve each other.

    Only the first R retrievals of each query count, R = its number of relevant images (at most k):
    the slots a perfect ranking fills with its own class. ``a_to_b``: how many of the class-a
    queries' slots hold class-b images (``b_to_a`` the reverse); ``slots_a``/``slots_b``: how many
    slots there were; ``rate`` = (a_to_b + b_to_a) / (slots_a + slots_b). ``example_ab`` /
    ``example_ba``: (query line, retrieved line, score) of the highest-scoring such confusion, or None
    (``example_ba`` is never ``example_ab`` seen from its other end).
    """

    a: str
    b: str
    a_to_b: int
    b_to_a: int
    slots_a: int
    slots_b: int
    rate: float
    example_ab: tuple[int, int, float] | None
    example_ba: tuple[int, int, float] | None

    @property
    def rate_ab(self) -> float:
        return self.a_to_b / self.slots_a if self.slots_a else 0.0

    @property
    def rate_ba(self) -> float:
        return self.b_to_a / self.slots_b if self.slots_b else 0.0


def confused_pairs(labels: Sequence[str], query: np.ndarray, top_index: np.ndarray, top_score: np.ndarray,
                   n: int = 10) -> list[ConfusedPair]:  # fmt: skip
    """The ``n`` class pairs that most often take each other's places in the top of the ranking.

    Args:
        labels: (N,) label of each list line.
        query: (Q,) list lines of the queries (the evaluated items); top_index: (Q, k) list lines,
            best first; top_score: (Q, k).

    Returns:
        Pairs (a < b by label) by ``rate`` descending, then by label; pairs never confused are left out.
    """
    k = top_index.shape[1] if top_index.ndim == 2 else 0
    if k == 0 or len(query) == 0:
        return []
    classes, codes = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    n_classes = len(classes)
    q_codes = codes[query]
    r_codes = codes[top_index]
    per_class = np.bincount(q_codes, minlength=n_classes)
    depth = np.minimum(per_class[q_codes] - 1, k)  # R of each query, capped at k
    counted = np.arange(k)[None, :] < depth[:, None]
    slots = np.bincount(q_codes, weights=depth, minlength=n_classes).astype(np.int64)
    wrong = counted & (r_codes != q_codes[:, None])
    rows, cols = np.nonzero(wrong)
    directed = q_codes[rows].astype(np.int64) * n_classes + r_codes[rows, cols]
    keys, counts = np.unique(directed, return_counts=True)
    count_of = dict(zip(keys.tolist(), counts.tolist()))
    pairs: dict[tuple[int, int], tuple[int, int]] = {}
    for key in count_of:
        a, b = divmod(key, n_classes)
        lo, hi = (a, b) if a < b else (b, a)
        pairs[(lo, hi)] = (count_of.get(lo * n_classes + hi, 0), count_of.get(hi * n_classes + lo, 0))

    def rate(pair: tuple[int, int]) -> float:
        total = slots[pair[0]] + slots[pair[1]]
        return sum(pairs[pair]) / total if total else 0.0

    chosen = sorted(pairs, key=lambda p: (-rate(p), classes[p[0]], classes[p[1]]))[:n]

    def example(a: int, b: int, avoid: tuple[int, int, float] | None = None) -> tuple[int, int, float] | None:
        hit = counted & (q_codes[:, None] == a) & (r_codes == b)
        if avoid is not None:  # not the other direction's example seen from its other end
            hit &= ~((query[:, None] == avoid[1]) & (top_index == avoid[0]))
        hit_rows, hit_cols = np.nonzero(hit)
        if not len(hit_rows):
            return None
        scores = top_score[hit_rows, hit_cols]
        best = np.lexsort((query[hit_rows], -scores))[0]
        return int(query[hit_rows[best]]), int(top_index[hit_rows[best], hit_cols[best]]), float(scores[best])

    out = []
    for a, b in chosen:
        ab = example(a, b)
        out.append(
            ConfusedPair(
                a=str(classes[a]),
                b=str(classes[b]),
                a_to_b=pairs[(a, b)][0],
                b_to_a=pairs[(a, b)][1],
                slots_a=int(slots[a]),
                slots_b=int(slots[b]),
                rate=rate((a, b)),
                example_ab=ab,
                example_ba=example(b, a, avoid=ab),
            )
        )
    return out
