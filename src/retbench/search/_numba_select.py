"""The numba kernel behind :func:`retbench.search.exact.top_and_worst` (imported lazily).

Each query keeps its running best and worst items in two small sorted lists; a block of scores
is streamed through them in database order, so an item only costs a comparison with the current
k-th entry unless it enters a list. The worst list is the best list of the negated scores.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always")
def _push(keys, index, b, filled, key, item):  # pragma: no cover (jit)
    """Insert ``key`` (with ``item``) into row b of ``keys`` (sorted descending, ``filled`` entries used)
    if it beats the last entry of a full list; return the new number of entries. Equal keys stay
    behind the earlier ones, so ties keep the smaller index."""
    k = keys.shape[1]
    if filled == k and not key > keys[b, k - 1]:
        return filled
    pos = filled if filled < k else k - 1  # a full list drops its last entry
    while pos > 0 and keys[b, pos - 1] < key:
        keys[b, pos] = keys[b, pos - 1]
        index[b, pos] = index[b, pos - 1]
        pos -= 1
    keys[b, pos] = key
    index[b, pos] = item
    return min(filled + 1, k)


@numba.njit(parallel=True, nogil=True, cache=True)
def merge_block(scores, first_index, exclude, top_score, top_index, n_top, worst_score, worst_index,
                n_worst):  # pragma: no cover (jit)
    """Stream a block of scores into each query's running top and worst lists.

    scores (B, M) float32: the queries' scores of database items ``first_index .. first_index + M - 1``
    (blocks come in ascending database order); exclude (B,) int64 database index left out per query
    (-1: none). top_score / top_index (B, K1): running best, sorted by score descending, equal scores
    by ascending index, ``n_top[b]`` entries filled; worst_score / worst_index (B, K2): kept as the
    best of the *negated* scores while streaming (so sorted by score ascending once negated back),
    ``n_worst[b]`` entries filled. Callers negate ``worst_score`` after the last block.
    """
    n_rows, n_cols = scores.shape
    k_top = top_score.shape[1]
    k_worst = worst_score.shape[1]
    for b in numba.prange(n_rows):
        row = scores[b]
        skip = exclude[b] - first_index
        nt = n_top[b]
        nw = n_worst[b]
        for j in range(n_cols):
            if j != skip:
                if k_top > 0:
                    nt = _push(top_score, top_index, b, nt, row[j], first_index + j)
                if k_worst > 0:
                    nw = _push(worst_score, worst_index, b, nw, -row[j], first_index + j)
        n_top[b] = nt
        n_worst[b] = nw
