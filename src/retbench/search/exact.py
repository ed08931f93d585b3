"""Exact blockwise top-k search by dot product (cosine similarity of L2-normalised rows).

Like faiss' ``contrib/exhaustive_search.py``: queries and database are walked in blocks (numpy's
BLAS for the scores) and each query's running top-k (and worst-k) is updated block by block by a
numba kernel (:mod:`retbench.search._numba_select`: one binary heap per list, O(log k) per
entering item; :func:`merge_block_numpy` where numba cannot be imported), so memory is
O(query_block x database_block) and never O(Q x N). Ties are broken deterministically by ascending
database index (items are streamed in index order and enter a full list only with a strictly
better score), so the result equals a stable sort of the full score matrix.
"""

from __future__ import annotations

import numpy as np

from retbench.metrics._validation import check_same_dimension, nonfinite_rows

#: default number of score entries materialised per (query block x database block).
_BLOCK_ELEMENTS = 1 << 24


def _check_matrix(name: str, x: object) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D numpy array (n, d), got {getattr(x, 'shape', type(x).__name__)}")
    if x.dtype != np.float32:
        raise ValueError(f"{name} must be float32, got dtype {x.dtype}; convert with {name}.astype(np.float32)")
    if nonfinite_rows(x).size:
        raise ValueError(f"{name} has non-finite values (NaN or inf)")
    return x


def topk(queries: np.ndarray, database: np.ndarray, k: int, *, exclude: np.ndarray | None = None,
         largest: bool = True, block_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The ``k`` best (or worst) database items of each query, exactly.

    Args:
        queries: (Q, D) float32. database: (N, D) float32. Scores are ``queries @ database.T``.
        k: number of results per query, 1 <= k <= N (N - 1 when ``exclude`` is given).
        exclude: optional (Q,) int, the database index to leave out of each query's results (its own
            row in leave-one-out), or -1 for none.
        largest: True for the highest scores (retrievals), False for the lowest ("worst-k").
        block_size: database rows per block (default: about 16M score entries per block).

    Returns:
        scores: (Q, k) float32, best first (highest first, or lowest first when ``largest=False``);
        indices: (Q, k) int64 database indices; equal scores are ordered by ascending index.
    """
    available = _check_inputs(queries, database, exclude)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= available:
        raise ValueError(f"k must be an integer in [1, {available}] (database size"
                         f"{' minus the excluded item' if available < database.shape[0] else ''}), got {k!r}")  # fmt: skip
    _check_block_size(block_size)
    top, worst = _search(queries, database, k if largest else 0, 0 if largest else k, exclude, block_size)
    return top if largest else worst


def _check_inputs(queries: np.ndarray, database: np.ndarray, exclude: np.ndarray | None) -> int:
    """Validate the search inputs; return how many items each query can get (N, or N - 1 with exclude)."""
    _check_matrix("queries", queries)
    _check_matrix("database", database)
    check_same_dimension("queries", queries, "database", database)
    n_queries, n_database = queries.shape[0], database.shape[0]
    if exclude is None:
        return n_database
    exclude = np.asarray(exclude)
    if exclude.shape != (n_queries,) or not np.issubdtype(exclude.dtype, np.integer):
        raise ValueError(f"exclude must be an integer array of shape ({n_queries},), got {exclude.dtype} {exclude.shape}")
    if exclude.size and (exclude.min() < -1 or exclude.max() >= n_database):
        raise ValueError(f"exclude entries must be -1 or database indices in [0, {n_database})")
    return n_database - (1 if (exclude >= 0).any() else 0)


def top_and_worst(queries: np.ndarray, database: np.ndarray, k_top: int, k_worst: int, *,
                  exclude: np.ndarray | None = None, block_size: int | None = None):  # fmt: skip
    """The ``k_top`` highest and the ``k_worst`` lowest scored database items of each query, in one pass.

    Each block of scores is computed once and serves both. Arguments as in :func:`topk` (either k
    may be 0, not both). Returns ``((top_scores, top_indices), (worst_scores, worst_indices))``,
    each as :func:`topk` returns it ((Q, k) arrays; (Q, 0) for a k of 0).
    """
    available = _check_inputs(queries, database, exclude)
    n_queries, n_database = queries.shape[0], database.shape[0]
    for name, k in (("k_top", k_top), ("k_worst", k_worst)):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= available:
            raise ValueError(f"{name} must be an integer in [0, {available}], got {k!r}")
    if k_top == k_worst == 0:
        raise ValueError("k_top and k_worst are both 0: nothing to search for")
    _check_block_size(block_size)
    return _search(queries, database, k_top, k_worst, exclude, block_size)


def _check_block_size(block_size: int | None) -> None:
    if block_size is not None and (isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer))
                                   or block_size < 1):  # fmt: skip
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")


def _search(queries: np.ndarray, database: np.ndarray, k_top: int, k_worst: int, exclude: np.ndarray | None,
            block_size: int | None):  # fmt: skip
    """:func:`top_and_worst` on validated inputs."""
    n_queries, n_database = queries.shape[0], database.shape[0]
    merge_block, order_lists = merge_kernel()
    q_block = max(1, min(n_queries, max(64, _BLOCK_ELEMENTS // max(n_database, 1))))
    db_block = int(block_size or max(1024, _BLOCK_ELEMENTS // q_block))
    exclude = np.full(n_queries, -1, dtype=np.int64) if exclude is None else np.asarray(exclude, dtype=np.int64)
    top = (np.zeros((n_queries, k_top), dtype=np.float32), np.zeros((n_queries, k_top), dtype=np.int64))
    worst = (np.zeros((n_queries, k_worst), dtype=np.float32), np.zeros((n_queries, k_worst), dtype=np.int64))
    n_top = np.zeros(n_queries, dtype=np.int64)
    n_worst = np.zeros(n_queries, dtype=np.int64)
    for q0 in range(0, n_queries, q_block):
        rows = slice(q0, min(q0 + q_block, n_queries))
        for d0 in range(0, n_database, db_block):
            scores = queries[rows] @ database[d0 : d0 + db_block].T
            merge_block(scores, d0, exclude[rows], top[0][rows], top[1][rows], n_top[rows], worst[0][rows],
                        worst[1][rows], n_worst[rows])  # fmt: skip
    for keys, index in (top, worst):
        order_lists(keys, index)
    np.negative(worst[0], out=worst[0])  # the worst list was kept as the best of the negated scores
    return top, worst


def merge_kernel():
    """``(merge_block, order_lists)``: the numba kernels of :mod:`retbench.search._numba_select`, or
    :func:`merge_block_numpy` (whose lists are always in ranking order) where numba cannot be imported."""
    try:
        from retbench.search._numba_select import merge_block, order_lists
    except ImportError:
        return merge_block_numpy, _already_ordered
    return merge_block, order_lists


def _already_ordered(keys: np.ndarray, index: np.ndarray) -> None:
    """:func:`merge_block_numpy` keeps its lists sorted: nothing to do."""


def merge_block_numpy(scores, first_index, exclude, top_score, top_index, n_top, worst_score, worst_index,
                      n_worst) -> None:  # fmt: skip
    """The numba kernel's contract in numpy (the fallback without numba, and its reference in the tests),
    with the lists kept in ranking order throughout (the numba kernel keeps heaps, ordered at the end).

    Each list (keys: the scores, or the negated scores for the worst list) and the block are merged
    by a stable sort (earlier items hold smaller indices, so ties keep ascending index). Every row
    has seen the same items, so ``n_top`` / ``n_worst`` are equal across rows here. An excluded item
    gets key -inf: it can only fill a list that is not full yet, and is pushed out by any other
    item, of which the caller guarantees at least k.
    """
    n_rows, n_cols = scores.shape
    rows = np.arange(n_rows)
    columns = exclude - first_index
    inside = (columns >= 0) & (columns < n_cols)
    block_index = np.broadcast_to(np.arange(first_index, first_index + n_cols, dtype=np.int64), scores.shape)
    for keys, index, filled, sign in ((top_score, top_index, n_top, 1), (worst_score, worst_index, n_worst, -1)):
        k = keys.shape[1]
        if k == 0 or n_rows == 0:
            continue
        have = int(filled[0])
        merged = np.concatenate([keys[:, :have], scores if sign > 0 else -scores], axis=1)
        merged[rows[inside], have + columns[inside]] = -np.inf
        merged_index = np.concatenate([index[:, :have], block_index], axis=1)
        order = np.argsort(-merged, axis=1, kind="stable")[:, :k]
        keep = order.shape[1]
        keys[:, :keep] = np.take_along_axis(merged, order, axis=1)
        index[:, :keep] = np.take_along_axis(merged_index, order, axis=1)
        filled[:] = keep
