"""The numba kernel behind :func:`retbench.search.exact.top_and_worst` (imported lazily).

Each query keeps its running best and worst items in two binary heaps whose root is the weakest
kept entry; a block of scores is streamed through them in database order, so an item only costs a
comparison with the root unless it enters, and entering costs O(log k) whatever the order of the
scores (so long lists, k in the thousands, cost little more than short ones). The worst list is the
best list of the negated scores. The heaps are put in ranking order once, after the last block
(:func:`order_lists`).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always")
def _weaker(keys, index, b, i, j):  # pragma: no cover (jit)
    """Entry i ranks after entry j: a lower key, or an equal key and a larger database index."""
    return keys[b, i] < keys[b, j] or (keys[b, i] == keys[b, j] and index[b, i] > index[b, j])


@numba.njit(inline="always")
def _swap(keys, index, b, i, j):  # pragma: no cover (jit)
    keys[b, i], keys[b, j] = keys[b, j], keys[b, i]
    index[b, i], index[b, j] = index[b, j], index[b, i]


@numba.njit(inline="always")
def _sift_down(keys, index, b, pos, size):  # pragma: no cover (jit)
    """Move entry ``pos`` of row b's heap (its first ``size`` entries) down to its place."""
    while True:
        child = 2 * pos + 1
        if child >= size:
            return
        if child + 1 < size and _weaker(keys, index, b, child + 1, child):
            child += 1
        if not _weaker(keys, index, b, child, pos):
            return
        _swap(keys, index, b, pos, child)
        pos = child


@numba.njit(inline="always")
def _push(keys, index, b, filled, key, item):  # pragma: no cover (jit)
    """Offer ``key`` (with ``item``) to row b's heap (``filled`` entries, weakest at the root); return
    the new number of entries. Items come in ascending index, so an item whose key only equals the
    root's ranks after it and stays out: ties keep the smaller index."""
    k = keys.shape[1]
    if filled < k:  # not full: append and sift up
        pos = filled
        keys[b, pos] = key
        index[b, pos] = item
        while pos > 0:
            parent = (pos - 1) >> 1
            if not _weaker(keys, index, b, pos, parent):
                break
            _swap(keys, index, b, pos, parent)
            pos = parent
        return filled + 1
    if not key > keys[b, 0]:
        return filled
    keys[b, 0] = key  # replace the weakest and sift down
    index[b, 0] = item
    _sift_down(keys, index, b, 0, k)
    return filled


@numba.njit(parallel=True, nogil=True, cache=True)
def merge_block(scores, first_index, exclude, top_score, top_index, n_top, worst_score, worst_index,
                n_worst):  # pragma: no cover (jit)
    """Stream a block of scores into each query's running top and worst heaps.

    scores (B, M) float32: the queries' scores of database items ``first_index .. first_index + M - 1``
    (blocks come in ascending database order); exclude (B,) int64 database index left out per query
    (-1: none). top_score / top_index (B, K1): the running best as a heap, ``n_top[b]`` entries
    filled; worst_score / worst_index (B, K2): the running worst, kept as the best of the *negated*
    scores, ``n_worst[b]`` entries filled. After the last block callers put both in ranking order
    with :func:`order_lists` and negate ``worst_score``.
    """
    n_rows, n_cols = scores.shape
    k_top = top_score.shape[1]
    k_worst = worst_score.shape[1]
    for b in numba.prange(n_rows):
        row = scores[b]
        skip = exclude[b] - first_index
        nt = n_top[b]
        nw = n_worst[b]
        # An item must beat the root of a full heap: kept in a local, the common case (no entry) is
        # one comparison per list. +inf: a list of length 0 takes nothing.
        top_floor = _floor(top_score, b, nt)
        worst_floor = _floor(worst_score, b, nw)
        for j in range(n_cols):
            x = row[j]
            if (x > top_floor or nt < k_top) and j != skip:
                nt = _push(top_score, top_index, b, nt, x, first_index + j)
                top_floor = _floor(top_score, b, nt)
            if (-x > worst_floor or nw < k_worst) and j != skip:
                nw = _push(worst_score, worst_index, b, nw, -x, first_index + j)
                worst_floor = _floor(worst_score, b, nw)
        n_top[b] = nt
        n_worst[b] = nw


@numba.njit(inline="always")
def _floor(keys, b, filled):  # pragma: no cover (jit)
    """What an item must beat to enter row b's heap: its root once full, -inf before (+inf for k = 0)."""
    k = keys.shape[1]
    if k == 0:
        return np.inf
    return keys[b, 0] if filled == k else -np.inf


@numba.njit(parallel=True, nogil=True, cache=True)
def order_lists(keys, index):  # pragma: no cover (jit)
    """Sort each row's full heap into ranking order: key descending, equal keys by ascending index."""
    n_rows, k = keys.shape
    for b in numba.prange(n_rows):
        for last in range(k - 1, 0, -1):  # heap sort: the weakest goes to the end, then re-heapify the rest
            _swap(keys, index, b, 0, last)
            _sift_down(keys, index, b, 0, last)
