"""Blockwise exact ranking: :class:`RelevantRanks` of every query without an N x N matrix or row sorts.

For each block of ``B`` queries (memory O(B x N)):

1. ``scores = queries[block] @ database.T`` in float32 (cosine similarity of L2-normalised rows);
   numpy's BLAS on the CPU, torch on a CUDA device.
2. The scores of each query's relevant items (:class:`RankingProblem`: the same label, the query
   itself excluded by index; or a per-query ground-truth list) are gathered and sorted: the
   query's *thresholds* (R per query, e.g. R = class size).
3. Every other item is placed among the thresholds (:mod:`retbench.metrics._counting`), which
   gives, for each relevant item, the number of non-relevant items at or above it, hence the exact
   :class:`RelevantRanks` (ties included) without sorting the row. Items removed from a query's
   ranking (the query itself, Revisited junk) count nowhere.

Two backends give the same integers: "numba" (CPU; steps 2-3 are parallel kernels, which also
compute the metrics that need every relevant item, so only the first max(ks) rank slots come
back) and "torch" (a stable sort of each block: CUDA, and the CPU where numba cannot be imported).
With numba, the next block's matrix product runs in a background thread while the current block
is counted.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Iterator, Sequence
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
class IndexLists:
    """Lists of database indices, packed: list g is ``members[offsets[g]:offsets[g + 1]]``, ascending, unique.

    Attributes:
        offsets: (G + 1,) int64, nondecreasing, ``offsets[0] == 0``.
        members: (offsets[-1],) int64.
    """

    offsets: np.ndarray
    members: np.ndarray

    @staticmethod
    def by_code(codes: np.ndarray) -> IndexLists:
        """One list per label code 0..max(codes): the indices of the items with that code."""
        codes = np.asarray(codes, dtype=np.int64)
        members = np.argsort(codes, kind="stable").astype(np.int64)
        offsets = np.searchsorted(codes[members], np.arange(int(codes.max(initial=-1)) + 2)).astype(np.int64)
        return IndexLists(offsets, members)

    @staticmethod
    def of(lists: list[np.ndarray]) -> IndexLists:
        """Pack integer index arrays (sorted and deduplicated here)."""
        parts = [np.unique(np.asarray(items, dtype=np.int64)) for items in lists]
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([p.size for p in parts], out=offsets[1:])
        members = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return IndexLists(offsets, members.astype(np.int64))

    def lengths(self) -> np.ndarray:
        """(G,) int64 size of each list."""
        return np.diff(self.offsets)

    def rows(self, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(row, item)`` pairs: ``(b, i)`` for every item i of list ``groups[b]``, for each b (-1: no list)."""
        groups = np.asarray(groups, dtype=np.int64)
        valid = groups >= 0
        starts = np.where(valid, self.offsets[np.maximum(groups, 0)], 0)
        counts = np.where(valid, self.offsets[np.maximum(groups, 0) + 1] - starts, 0)
        row = np.repeat(np.arange(groups.size), counts)
        first = np.repeat(starts - np.cumsum(counts) + counts, counts)  # start of each pair's list, minus its offset
        return row, self.members[first + np.arange(row.size)]


@dataclass(frozen=True)
class RankingProblem:
    """Queries ranked against a database, each query with its relevant and removed database items.

    Build it with :meth:`same_label` (relevance = equal label) or :meth:`with_lists` (per-query
    ground truth).

    Attributes:
        queries: (Q, D) float32. database: (N, D) float32.
        query_codes: (Q,) int64, which list of ``relevant`` holds each query's relevant items (a label
            code, or the query's own list; -1: none relevant).
        relevant: :class:`IndexLists` of relevant database items.
        self_index: (Q,) int64 index of the query in the database, excluded from its ranking (never
            relevant, never counted), or -1; in leave-one-out it is a member of its class's list.
        removed: :class:`IndexLists` with one list per query: database items taken out of that
            query's ranking (Revisited junk), disjoint from its relevant items and from its
            ``self_index``; None: none.
    """

    queries: np.ndarray
    query_codes: np.ndarray
    database: np.ndarray
    relevant: IndexLists
    self_index: np.ndarray
    removed: IndexLists | None = None

    @staticmethod
    def same_label(queries: np.ndarray, query_codes: np.ndarray, database: np.ndarray, database_codes: np.ndarray,
                   self_index: np.ndarray) -> RankingProblem:  # fmt: skip
        """Relevant = same integer label code (``query_codes`` -1: a label absent from the database)."""
        return RankingProblem(queries, np.asarray(query_codes, dtype=np.int64), database,
                              IndexLists.by_code(database_codes), np.asarray(self_index, dtype=np.int64))  # fmt: skip

    @staticmethod
    def with_lists(queries: np.ndarray, database: np.ndarray, relevant: list[np.ndarray],
                   removed: list[np.ndarray]) -> RankingProblem:  # fmt: skip
        """Relevant = ``relevant[q]``, and ``removed[q]`` out of query q's ranking; an index in both is removed."""
        removed_lists = IndexLists.of(removed)
        kept = [np.setdiff1d(np.asarray(r, dtype=np.int64), removed_lists.members[removed_lists.offsets[q]:
                                                                                    removed_lists.offsets[q + 1]])
                for q, r in enumerate(relevant)]  # fmt: skip
        n = queries.shape[0]
        return RankingProblem(queries, np.arange(n, dtype=np.int64), database, IndexLists.of(kept),
                              np.full(n, -1, dtype=np.int64), removed_lists)  # fmt: skip

    def n_relevant(self) -> np.ndarray:
        """(Q,) int64 relevant items of each query (its own row excluded)."""
        lengths = np.append(self.relevant.lengths(), 0)  # code -1 reads the appended 0
        return (lengths[self.query_codes] - self.query_is_in_its_list()).astype(np.int64)

    def query_is_in_its_list(self) -> np.ndarray:
        """(Q,) bool: the query's own database row (``self_index``) is in its relevant list."""
        n_items = max(self.database.shape[0], 1)
        group = np.repeat(np.arange(self.relevant.lengths().size, dtype=np.int64), self.relevant.lengths())
        keys = group * n_items + self.relevant.members  # ascending: lists are contiguous, each ascending
        probe = self.query_codes * n_items + self.self_index
        at = np.minimum(np.searchsorted(keys, probe), max(keys.size - 1, 0))
        found = keys[at] == probe if keys.size else np.zeros(probe.shape, dtype=bool)
        return found & (self.query_codes >= 0) & (self.self_index >= 0)

    def removed_pairs(self, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        """``(row, item)``: item is out of the ranking of query ``rows.start + row`` (the query itself included)."""
        row_ids = np.arange(rows.stop - rows.start)
        own = self.self_index[rows]
        pairs = [(row_ids[own >= 0], own[own >= 0])]
        if self.removed is not None:
            pairs.append(self.removed.rows(np.arange(rows.start, rows.stop)))
        return np.concatenate([r for r, _ in pairs]), np.concatenate([i for _, i in pairs])

    def removed_offsets(self, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        """``(removed, offsets)`` for the kernel: row b of the block ``rows`` removes
        ``removed[offsets[b]:offsets[b + 1]]`` (empty arrays when nothing is removed)."""
        n_rows = rows.stop - rows.start
        if self.removed is None:
            return np.zeros(0, dtype=np.int64), np.zeros(n_rows + 1, dtype=np.int64)
        return self.removed.members, self.removed.offsets[rows.start : rows.stop + 1]


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
    for (result,) in iter_shared_blocks([problem], block_size=block_size, backend=backend, levels=levels,
                                        k_max=k_max, device=device):  # fmt: skip
        yield result


def iter_shared_blocks(problems: Sequence[RankingProblem], *, block_size: int, backend: str, levels: np.ndarray,
                       k_max: int, device: str = "cpu") -> Iterator[list[BlockResult]]:  # fmt: skip
    """:func:`iter_blocks` of several problems on the same queries and database (e.g. the Revisited
    easy / medium / hard setups), computing each block's score matrix once for all of them.

    Yields, per block of queries, one :class:`BlockResult` per problem (in order).
    """
    first = problems[0]
    for other in problems[1:]:
        if other.queries is not first.queries or other.database is not first.database:
            raise ValueError("iter_shared_blocks: every problem must hold the same queries and database arrays")
    n_queries = first.queries.shape[0]
    blocks = [slice(s, min(s + block_size, n_queries)) for s in range(0, n_queries, block_size)]
    if backend == "torch":
        for rows, ranks in _iter_torch(problems, blocks, device):
            yield [BlockResult(rows, r, *_full_width_metrics(r, levels)) for r in ranks]
        return
    # One output width per problem for every block (its largest number of relevant items), so that
    # per-query sums do not depend on the block size, bit for bit.
    widths = [int(p.n_relevant().max(initial=0)) for p in problems]
    database_t = first.database.T
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(np.matmul, first.queries[blocks[0]], database_t) if blocks else None
        for i, rows in enumerate(blocks):
            scores = pending.result()
            if i + 1 < len(blocks):
                pending = pool.submit(np.matmul, first.queries[blocks[i + 1]], database_t)
            results = []
            for problem, width in zip(problems, widths):
                ranks, full, pr_curve = _counting.rank_rows_numba(
                    scores, problem.query_codes[rows], problem.self_index[rows], problem.relevant.members,
                    problem.relevant.offsets, *problem.removed_offsets(rows), width, levels, k_max,
                )  # fmt: skip
                results.append(BlockResult(rows, ranks, full, pr_curve))
            yield results


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


def _iter_torch(problems: Sequence[RankingProblem], blocks: list[slice],
                device: str) -> Iterator[tuple[slice, list[RelevantRanks]]]:  # fmt: skip
    import torch

    first = problems[0]
    dev = torch.device(device)
    database = None if dev.type == "cpu" else torch.from_numpy(first.database).to(dev)
    widths = [int(p.n_relevant().max(initial=0)) for p in problems]  # the same for every block
    n_items = first.database.shape[0]
    for rows in blocks:
        if dev.type == "cpu":  # numpy's BLAS is faster than torch's on the CPU; the tensor shares its memory
            scores = torch.from_numpy(first.queries[rows] @ first.database.T)
        else:
            scores = torch.from_numpy(first.queries[rows]).to(dev) @ database.T
        shape = (scores.shape[0], n_items)
        ranks = []
        for problem, width in zip(problems, widths):
            relevant = _block_mask(problem.relevant.rows(problem.query_codes[rows]), shape, dev)
            removed = _block_mask(problem.removed_pairs(rows), shape, dev)
            ranks.append(_counting.rank_rows_torch_sorting(scores, relevant, removed, width))
        yield rows, ranks


def _block_mask(pairs: tuple[np.ndarray, np.ndarray], shape: tuple[int, int], dev) -> "torch.Tensor":
    """(B, N) bool tensor on ``dev``, True at the ``(row, item)`` pairs."""
    import torch

    mask = torch.zeros(shape, dtype=torch.bool, device=dev)
    row, item = pairs
    mask[torch.from_numpy(row).to(dev), torch.from_numpy(item).to(dev)] = True
    return mask
