"""Exact blockwise top-k search by dot product (cosine similarity of L2-normalised rows).

Like faiss' ``contrib/exhaustive_search.py``: queries and database are walked in blocks and a
running top-k is merged block by block, so memory is O(query_block x (k + database_block)) and
never O(Q x N). Ties are broken deterministically by ascending database index (a stable sort of
the candidates, which are kept in index order), so the result equals a stable sort of the full
score matrix.
"""

from __future__ import annotations

import numpy as np

from retbench.metrics._validation import check_same_dimension

#: default number of score entries materialised per (query block x database block).
_BLOCK_ELEMENTS = 1 << 22


def _check_matrix(name: str, x: object) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D numpy array (n, d), got {getattr(x, 'shape', type(x).__name__)}")
    if x.dtype != np.float32:
        raise ValueError(f"{name} must be float32, got dtype {x.dtype}; convert with {name}.astype(np.float32)")
    if not np.isfinite(x).all():
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
        block_size: database rows per block (default: about 4M score entries per block).

    Returns:
        scores: (Q, k) float32, best first (highest first, or lowest first when ``largest=False``);
        indices: (Q, k) int64 database indices; equal scores are ordered by ascending index.
    """
    available = _check_inputs(queries, database, exclude)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= available:
        raise ValueError(f"k must be an integer in [1, {available}] (database size"
                         f"{' minus the excluded item' if available < database.shape[0] else ''}), got {k!r}")  # fmt: skip
    top, worst = top_and_worst(queries, database, k if largest else 0, 0 if largest else k, exclude=exclude,
                               block_size=block_size)  # fmt: skip
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
    exclude = None if exclude is None else np.asarray(exclude)
    for name, k in (("k_top", k_top), ("k_worst", k_worst)):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= available:
            raise ValueError(f"{name} must be an integer in [0, {available}], got {k!r}")
    if k_top == k_worst == 0:
        raise ValueError("k_top and k_worst are both 0: nothing to search for")
    if block_size is not None and (isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer))
                                   or block_size < 1):  # fmt: skip
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    k_max = max(k_top, k_worst)
    db_block = int(block_size or max(k_max, _BLOCK_ELEMENTS // max(n_queries, 1), 1024))
    q_block = max(1, _BLOCK_ELEMENTS // max(db_block + k_max, 1))
    # One track per requested end: key = sign * score, the best k keys kept.
    tracks = [(k, np.float32(sign)) for k, sign in ((k_top, 1.0), (k_worst, -1.0))]
    results = [(np.zeros((n_queries, k), dtype=np.float32), np.zeros((n_queries, k), dtype=np.int64))
               for k, _ in tracks]  # fmt: skip
    for q0 in range(0, n_queries, q_block):
        q1 = min(q0 + q_block, n_queries)
        # Running best of each track, kept sorted by (key descending, index ascending).
        best = [(np.full((q1 - q0, 0), -np.inf, dtype=np.float32), np.zeros((q1 - q0, 0), dtype=np.int64))
                for _ in tracks]  # fmt: skip
        for d0 in range(0, n_database, db_block):
            d1 = min(d0 + db_block, n_database)
            scores = queries[q0:q1] @ database[d0:d1].T
            index = np.broadcast_to(np.arange(d0, d1, dtype=np.int64), scores.shape)
            # the excluded item of each query of this block that falls in this database block
            rows = np.flatnonzero((exclude[q0:q1] >= d0) & (exclude[q0:q1] < d1)) if exclude is not None else None
            columns = None if rows is None else exclude[q0:q1][rows] - d0
            for t, (k, sign) in enumerate(tracks):
                if k == 0:
                    continue
                key = scores * sign
                if rows is not None:
                    key[rows, columns] = -np.inf
                # Earlier blocks hold smaller indices, so [best, block] is in index order within ties
                # and a stable sort of -key keeps the (key desc, index asc) order.
                merged_key = np.concatenate([best[t][0], key], axis=1)
                merged_index = np.concatenate([best[t][1], index], axis=1)
                best[t] = _best_k(merged_key, merged_index, k)
        for t, (k, sign) in enumerate(tracks):
            if k:
                results[t][0][q0:q1] = best[t][0] * sign
                results[t][1][q0:q1] = best[t][1]
    return results[0], results[1]


def _best_k(key: np.ndarray, index: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest keys of each row of ``key`` (B, M), ties in column order, and their ``index``.

    Only the candidates at or above each row's k-th largest key (ties included) are sorted: a
    partition and a radix sort of a boolean mask find them in O(M), so a block costs O(M + k log k)
    instead of a full O(M log M) sort.
    """
    if key.shape[1] <= k:
        order = np.argsort(-key, axis=1, kind="stable")
    else:
        kth = np.partition(key, key.shape[1] - k, axis=1)[:, key.shape[1] - k, None]
        candidate = key >= kth  # at least k per row; more only where the k-th value is tied
        width = int(candidate.sum(axis=1).max())
        columns = np.argsort(~candidate, axis=1, kind="stable")[:, :width]  # candidates first, in column order
        picked = np.take_along_axis(key, columns, axis=1)
        picked[~np.take_along_axis(candidate, columns, axis=1)] = -np.inf  # rows with fewer candidates: padding
        order = np.take_along_axis(columns, np.argsort(-picked, axis=1, kind="stable"), axis=1)
    order = order[:, :k]
    return np.take_along_axis(key, order, axis=1), np.take_along_axis(index, order, axis=1)
