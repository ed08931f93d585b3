"""The numba kernel behind :func:`retbench.search.exact.top_and_worst` (imported lazily).

Each query keeps its running best and worst items in two small sorted buffers; a block of scores
is streamed through them in database order, so an item only costs a comparison with the current
k-th score unless it enters a buffer.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, nogil=True, cache=True)
def merge_block(scores, first_index, exclude, top_score, top_index, n_top, worst_score, worst_index,
                n_worst):  # pragma: no cover (jit)
    """Stream a block of scores into each query's running top and worst lists.

    scores (B, M) float32: the queries' scores of database items ``first_index .. first_index + M - 1``
    (blocks come in ascending database order); exclude (B,) int64 database index left out per query
    (-1: none). top_score / top_index (B, K1): running best, sorted by score descending, equal scores
    by ascending index, ``n_top[b]`` entries filled; worst_score / worst_index (B, K2) likewise with
    the lowest scores first. Ties keep the earlier (smaller) index because an item enters a full
    buffer only with a strictly better score.
    """
    n_rows, n_cols = scores.shape
    k_top = top_score.shape[1]
    k_worst = worst_score.shape[1]
    for b in numba.prange(n_rows):
        row = scores[b]
        skip = exclude[b] - first_index
        nt = n_top[b]
        nw = n_worst[b]
        top_bar = top_score[b, k_top - 1] if k_top > 0 and nt == k_top else -np.inf
        worst_bar = worst_score[b, k_worst - 1] if k_worst > 0 and nw == k_worst else np.inf
        for j in range(n_cols):
            if j == skip:
                continue
            x = row[j]
            if k_top > 0 and (nt < k_top or x > top_bar):
                pos = nt if nt < k_top else k_top - 1  # a full buffer drops its last entry
                while pos > 0 and top_score[b, pos - 1] < x:
                    top_score[b, pos] = top_score[b, pos - 1]
                    top_index[b, pos] = top_index[b, pos - 1]
                    pos -= 1
                top_score[b, pos] = x
                top_index[b, pos] = first_index + j
                if nt < k_top:
                    nt += 1
                if nt == k_top:
                    top_bar = top_score[b, k_top - 1]
            if k_worst > 0 and (nw < k_worst or x < worst_bar):
                pos = nw if nw < k_worst else k_worst - 1
                while pos > 0 and worst_score[b, pos - 1] > x:
                    worst_score[b, pos] = worst_score[b, pos - 1]
                    worst_index[b, pos] = worst_index[b, pos - 1]
                    pos -= 1
                worst_score[b, pos] = x
                worst_index[b, pos] = first_index + j
                if nw < k_worst:
                    nw += 1
                if nw == k_worst:
                    worst_bar = worst_score[b, k_worst - 1]
        n_top[b] = nt
        n_worst[b] = nw
