"""Blockwise exact ranking: :class:`RelevantRanks` of every query without an N x N matrix or row sorts.

For each block of ``B`` queries (memory O(B x N)):

1. ``scores = queries[block] @ database.T`` in float32 (cosine similarity of L2-normalised rows);
   numpy's BLAS on the CPU, torch on a CUDA device.
2. The scores of each query's relevant items (same label, the query itself excluded by index) are
   gathered and sorted: the query's *thresholds* (R per query, R = class size).
3. Every non-relevant item is placed among the thresholds (:mod:`retbench.metrics._counting`),
   which gives, for each relevant item, the number of non-relevant items at or above it, hence the
   exact :class:`RelevantRanks` (ties included) without sorting the row.

Two backends give the same integers: "numba" (CPU; steps 2-3 are parallel kernels, which also
compute the metrics that need every relevant item, so only the first max(ks) rank slots come
back) and "torch" (CUDA: a stable sort of each block on the GPU; the CPU without numba:
``torch.searchsorted`` over column chunks).
With numba, the next block's matrix product runs in a background thread while the current block
is counted.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from retbench.metrics import _counting
from retbench.metrics.average_precision import ap_from_ranks
from retbench.metrics.cutoff import map_at_r_from_ranks, r_precision_from_ranks
from retbench.metrics.pr_curve import pr_curve_from_ranks
from retbench.metrics.ranks import RelevantRanks

logger = logging.getLogger(__name__)

#: default block: this many score entries per block of queries (128 MiB of float32 scores on the CPU;
#: on CUDA the sort-based ranking needs about 40 bytes per entry, so 2**26 entries take about 2.7 GB).
BLOCK_ELEMENTS = 1 << 25
BLOCK_ELEMENTS_CUDA = 1 << 26
BACKENDS = ("auto", "numba", "torch")


@dataclass(frozen=True)
class RankingProblem:
    """Queries ranked against a database; relevance = equal integer label code.

    Attributes:
        queries: (Q, D) float32. database: (N, D) float32.
        query_codes: (Q,) int64 label code (-1: a label absent from the database, no relevant item).
        database_codes: (N,) int64 label code, >= 0.
        self_index: (Q,) int64 index of the query in the database, excluded from its ranking, or -1.
    """

    queries: np.ndarray
    query_codes: np.ndarray
    database: np.ndarray
    database_codes: np.ndarray
    self_index: np.ndarray

    def n_relevant(self) -> np.ndarray:
        """(Q,) int64 relevant items of each query (its own row excluded)."""
        counts = np.bincount(self.database_codes, minlength=int(self.query_codes.max(initial=0)) + 1)
        n = np.where(self.query_codes >= 0, counts[np.maximum(self.query_codes, 0)], 0)
        return (n - (self.self_index >= 0)).astype(np.int64)


@dataclass(frozen=True)
class BlockResult:
    """What the evaluator needs from one block of queries ``rows``.

    Attributes:
        rows: the block's query rows.
        ranks: :class:`RelevantRanks` of the block, at least its first ``k_max`` slots (all that
            the cut-off metrics read; the numba backend returns only those).
        full: (B, 4) float64 metrics that need every relevant item: AP (sklearn), AP (trapezoid),
            R-precision, MAP@R; NaN for queries without relevant items.
        pr_curve: (B, L) float64 interpolated precision at the recall levels (NaN rows likewise).
    """

    rows: slice
    ranks: RelevantRanks
    full: np.ndarray
    pr_curve: np.ndarray


def default_block_size(n_database: int, device: str = "cpu", n_queries: int | None = None) -> int:
    """Queries per block: at most about 128 MiB of float32 scores on the CPU (2**26 scores on CUDA), and
    at most an eighth of the queries so that the matrix products overlap the counting; at least 16."""
    elements = BLOCK_ELEMENTS if device == "cpu" else BLOCK_ELEMENTS_CUDA
    n = max(n_database, 1)
    queries = n if n_queries is None else max(n_queries, 1)  # leave-one-out: the database is the queries
    return int(max(16, min(elements // n, -(-queries // 8))))


def resolve_backend(backend: str, device: str) -> str:
    """'numba' on the CPU when numba is installed, else 'torch' (always 'torch' on CUDA)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device must be 'cpu' or 'cuda' / 'cuda:N', got {device!r}")
    if device != "cpu":
        if backend == "numba":
            raise ValueError(f"backend='numba' runs on the CPU only, got device={device!r}; use backend='torch'")
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but torch sees no CUDA GPU; use device='cpu'")
        return "torch"
    if backend == "auto":
        return "numba" if _counting.numba_kernel() is not None else "torch"
    if backend == "numba" and _counting.numba_kernel() is None:
        raise ValueError("backend='numba' needs the numba package: pip install numba (or use backend='torch')")
    return backend


def iter_blocks(problem: RankingProblem, *, block_size: int, backend: str, levels: np.ndarray, k_max: int,
                device: str = "cpu") -> Iterator[BlockResult]:  # fmt: skip
    """Yield a :class:`BlockResult` for each consecutive block of queries (exact; see module docstring)."""
    n_queries = problem.queries.shape[0]
    blocks = [slice(s, min(s + block_size, n_queries)) for s in range(0, n_queries, block_size)]
    if backend == "torch":
        for rows, ranks in _iter_torch(problem, blocks, device):
            yield BlockResult(rows, ranks, *_full_width_metrics(ranks, levels))
        return
    order = np.argsort(problem.database_codes, kind="stable")
    offsets = np.searchsorted(problem.database_codes[order], np.arange(int(problem.database_codes.max()) + 2))
    col_codes = problem.database_codes.astype(np.int32)
    # One output width for every block (the largest number of relevant items), so that per-query
    # sums do not depend on the block size, bit for bit.
    width = int(problem.n_relevant().max(initial=0))
    database_t = problem.database.T
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(np.matmul, problem.queries[blocks[0]], database_t) if blocks else None
        for i, rows in enumerate(blocks):
            scores = pending.result()
            if i + 1 < len(blocks):
                pending = pool.submit(np.matmul, problem.queries[blocks[i + 1]], database_t)
            ranks, full, pr_curve = _counting.rank_rows_numba(
                scores, problem.query_codes[rows], problem.self_index[rows], col_codes, order,
                offsets.astype(np.int64), width, levels, k_max,
            )  # fmt: skip
            yield BlockResult(rows, ranks, full, pr_curve)


def _full_width_metrics(ranks: RelevantRanks, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(full, pr_curve)`` of :class:`BlockResult` from full-width ranks: with numba, rows in parallel
    with the numba backend's own arithmetic; without it, the numpy definitions."""
    kernels = _counting.numba_kernel()
    if kernels is None:
        full = np.stack([ap_from_ranks(ranks, "sklearn"), ap_from_ranks(ranks, "trapezoid"),
                         r_precision_from_ranks(ranks), map_at_r_from_ranks(ranks)], axis=1)  # fmt: skip
        return full, pr_curve_from_ranks(ranks, levels.size)
    n_rows = ranks.rank.shape[0]
    full = np.full((n_rows, 4), np.nan)
    pr_curve = np.full((n_rows, levels.size), np.nan)
    kernels.full_width_metrics_rows(ranks.n_relevant, ranks.rank, ranks.n_ge, ranks.n_rel_ge,
                                    np.ascontiguousarray(levels, dtype=np.float64), full, pr_curve)  # fmt: skip
    return full, pr_curve


def _iter_torch(problem: RankingProblem, blocks: list[slice], device: str) -> Iterator[tuple[slice, RelevantRanks]]:
    import torch

    dev = torch.device(device)
    on_cpu = dev.type == "cpu"
    database = None if on_cpu else torch.from_numpy(problem.database).to(dev)
    codes = problem.database_codes
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(int(codes.max(initial=-1)) + 2))
    members = [torch.from_numpy(order[bounds[c] : bounds[c + 1]]).to(dev) for c in range(len(bounds) - 1)]
    width = int(np.diff(bounds).max(initial=0))  # the same for every block
    col_codes = torch.from_numpy(codes).to(dev)
    for rows in blocks:
        if on_cpu:  # numpy's BLAS is faster than torch's on the CPU; the tensor shares its memory
            scores = torch.from_numpy(problem.queries[rows] @ problem.database.T)
        else:
            scores = torch.from_numpy(problem.queries[rows]).to(dev) @ database.T
        if on_cpu:
            yield rows, _counting.rank_rows_torch(scores, problem.query_codes[rows], problem.self_index[rows],
                                                  col_codes, members, width)  # fmt: skip
        else:
            yield rows, _counting.rank_rows_torch_sorting(scores, problem.query_codes[rows], problem.self_index[rows],
                                                          col_codes, width)  # fmt: skip
