"""The hot loop of the evaluator: rank each query's relevant items without sorting its row.

For a query with relevant scores (its *thresholds*, R of them) and a row of N scores, each relevant
item's rank only depends on how many non-relevant items score above it. So instead of sorting the
row (O(N log N), slow), every non-relevant item x is *placed* among the sorted thresholds:

- ``p_ge(x)`` = number of thresholds <= x: the item counts in the sklearn "score >= s" count of
  the p_ge lowest relevant items;
- ``p_strict(x)`` = number of relevant items ranked after x under the tie rule (descending score,
  then ascending index): equal to p_ge unless x ties with a relevant score, in which case it
  precedes exactly the tied relevant items with a larger index.

Histograms of p_ge and p_strict, summed from the top, give for every relevant item the number of
non-relevant items at or above it, hence its rank, ``n_ge`` and ``n_rel_ge`` exactly
(:class:`~retbench.metrics.ranks.RelevantRanks`), ties included.

Two implementations:

- :func:`rank_rows_numba` (CPU, used when numba is installed): one fused pass per row, rows in
  parallel without the GIL; x is placed in O(1) with a lookup table on a uniform grid over
  [min, max] of the thresholds (a binary search would cost ~log2 R dependent steps). It also
  computes the metrics that need every relevant item. A degenerate row with many exact ties
  (e.g. many identical embeddings) is re-ranked by a stable sort of the row instead.
- :func:`rank_rows_torch` (CPU without numba): ``torch.searchsorted`` and ``scatter_add_`` over
  column chunks.
- :func:`rank_rows_torch_sorting` (CUDA): a stable segmented sort of each block on the GPU, where
  sorting is cheap and many small counting kernels would be launch-bound.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

logger = logging.getLogger(__name__)


@functools.cache
def numba_kernel():
    """The numba kernels module (:mod:`retbench.metrics._numba_kernel`), or None without numba.

    Compiled on first use and cached on disk by numba (``cache=True``).
    """
    try:
        from retbench.metrics import _numba_kernel
    except ImportError:
        logger.info("numba is not installed: the evaluator uses the torch counting path (slower on CPU)")
        return None
    return _numba_kernel


def rank_rows_numba(scores: np.ndarray, row_codes: np.ndarray, self_index: np.ndarray, col_codes: np.ndarray,
                    members: np.ndarray, offsets: np.ndarray, width: int, levels: np.ndarray, k_max: int):  # fmt: skip
    """Rank a block of rows with numba: the first ``k_max`` slots of their ranks, and full-width metrics.

    Args:
        scores: (B, N) float32. row_codes: (B,) label code of each query (-1: none relevant).
        self_index: (B,) database index of each query, excluded from its ranking, or -1.
        col_codes: (N,) int32 label code of each database item.
        members, offsets: (N,) and (C + 1,) int64, database indices grouped by code:
            ``members[offsets[c]:offsets[c + 1]]`` are the items of code c, ascending.
        width: max relevant items of a row (threshold buffer width).
        levels: (L,) float64 recall levels of the PR curve.
        k_max: slots of :class:`~retbench.metrics.ranks.RelevantRanks` to return (the largest cut-off).

    Returns:
        ranks: RelevantRanks of width min(k_max, width) (enough for every cut-off metric <= k_max);
        full: (B, 4) float64 columns AP (sklearn), AP (trapezoid), R-precision, MAP@R, NaN without
            relevant items; pr_curve: (B, L) float64 interpolated precision (NaN rows likewise).
    """
    from retbench.metrics.ranks import RelevantRanks

    kernels = numba_kernel()
    if kernels is None:
        raise RuntimeError("rank_rows_numba needs numba: pip install numba, or use backend='torch'")
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    n_rows = scores.shape[0]
    row_codes = row_codes.astype(np.int64)
    self_index = self_index.astype(np.int64)
    out = RelevantRanks.empty(n_rows, min(k_max, width))
    thresholds = np.full((n_rows, width), np.inf, dtype=np.float32)
    kernels.gather_thresholds(scores, row_codes, self_index, members, offsets, thresholds, out.n_relevant)
    thresholds.sort(axis=1)  # numpy's sort: several times faster than numba's on rows of this size
    full = np.full((n_rows, 4), np.nan)
    pr_curve = np.full((n_rows, levels.size), np.nan)
    needs_sort = np.zeros(n_rows, dtype=bool)
    kernels.rank_rows(scores, thresholds, out.n_relevant, row_codes, self_index, col_codes, members, offsets,
                      levels, out.rank, out.n_ge, out.n_rel_ge, full, pr_curve, needs_sort)  # fmt: skip
    for b in np.flatnonzero(needs_sort):  # rows with many ties: an exact stable sort of the row
        _rank_row_by_sorting(b, scores[b], row_codes[b], self_index[b], col_codes, levels, out, full, pr_curve)
    return out, full, pr_curve


def _rank_row_by_sorting(b, row, code, own, col_codes, levels, out, full, pr_curve) -> None:
    from retbench.metrics.ranks import relevant_ranks

    ranked = np.ones(row.size, dtype=bool)
    if own >= 0:
        ranked[own] = False
    exact = relevant_ranks(col_codes == code, row, ranked)
    width = min(out.rank.shape[1], exact.rank.shape[1])
    out.rank[b, :width] = exact.rank[0, :width]
    out.n_ge[b, :width] = exact.n_ge[0, :width]
    out.n_rel_ge[b, :width] = exact.n_rel_ge[0, :width]
    # the same arithmetic as every other row of the block: the kernel's full-width metrics
    numba_kernel().full_width_metrics_rows(exact.n_relevant, exact.rank, exact.n_ge, exact.n_rel_ge, levels,
                                           full[b : b + 1], pr_curve[b : b + 1])  # fmt: skip


def rank_rows_torch(scores, row_codes: np.ndarray, self_index: np.ndarray, col_codes, members: list, width: int,
                    *, chunk_elements: int = 1 << 23):  # fmt: skip
    """Exact :class:`~retbench.metrics.ranks.RelevantRanks` of a block of rows with torch (any device).

    Args:
        scores: (B, N) float32 torch tensor (on the device that does the work).
        row_codes: (B,) int64 numpy label code of each query (-1: none relevant).
        self_index: (B,) int64 numpy database index of each query, excluded from its ranking, or -1.
        col_codes: (N,) int64 tensor on the device, label code of each database item.
        members: per code, an ascending int64 tensor (on the device) of the database items of that code.
        width: max class size (threshold buffer width; the same for every block).
        chunk_elements: score entries processed at once (bounds the temporary memory).
    """
    import torch

    from retbench.metrics.ranks import RelevantRanks

    dev = scores.device
    n_rows, n_cols = scores.shape
    # Thresholds sorted by (score ascending, index descending): the order of the relevant items
    # from the bottom of the ranking up. The query itself gets +inf and sorts into the padding.
    values = torch.full((n_rows, width), float("inf"), dtype=torch.float32, device=dev)
    index = torch.full((n_rows, width), -1, dtype=torch.int64, device=dev)
    n_relevant = np.zeros(n_rows, dtype=np.int64)
    for code in np.unique(row_codes):
        if code < 0:
            continue
        local_np = np.flatnonzero(row_codes == code)
        local = torch.from_numpy(local_np).to(dev)
        cols = members[code].flip(0)
        vals = scores[local][:, cols]
        idx = cols.expand(local.numel(), cols.numel()).clone()
        own = idx == torch.from_numpy(self_index[local_np]).to(dev)[:, None]
        vals.masked_fill_(own, float("inf"))
        idx.masked_fill_(own, -1)
        order = torch.sort(vals, dim=1, stable=True).indices
        values[local, : cols.numel()] = vals.gather(1, order)
        index[local, : cols.numel()] = idx.gather(1, order)
        n_relevant[local_np] = cols.numel() - own.sum(dim=1).cpu().numpy()
    # p_ge(x) = thresholds <= x; p_strict(x) = relevant items ranked after x (ties: larger index).
    dump = width + 1  # bin for the relevant items and the query itself, ignored
    hist_ge = torch.zeros((n_rows, width + 2), dtype=torch.int64, device=dev)
    hist_strict = torch.zeros((n_rows, width + 2), dtype=torch.int64, device=dev)
    q_codes = torch.from_numpy(row_codes).to(dev)
    step = max(1, chunk_elements // max(n_rows, 1))
    for start in range(0, n_cols if width else 0, step):
        x = scores[:, start : start + step].contiguous()
        p_ge = torch.searchsorted(values, x, right=True)
        p_lt = torch.searchsorted(values, x, right=False)
        skip = col_codes[None, start : start + step] == q_codes[:, None]
        p_ge.masked_fill_(skip, dump)
        hist_ge.scatter_add_(1, p_ge, torch.ones_like(p_ge))
        tied = (p_ge != p_lt) & ~skip
        if bool(tied.any()):
            rows_t, cols_t = tied.nonzero(as_tuple=True)
            lo, hi = p_lt[rows_t, cols_t], p_ge[rows_t, cols_t]
            after = torch.zeros_like(lo)
            for offset in range(int((hi - lo).max())):  # tied thresholds with a larger index come first
                m = lo + offset
                after += (m < hi) & (index[rows_t, m.clamp(max=width - 1)] > cols_t + start)
            p_ge[rows_t, cols_t] = lo + after
        hist_strict.scatter_add_(1, p_ge, torch.ones_like(p_ge))
    return _ranks_from_histograms(values.cpu().numpy(), n_relevant, hist_ge[:, : width + 1].cpu().numpy(),
                                  hist_strict[:, : width + 1].cpu().numpy())  # fmt: skip


def _ranks_from_histograms(thresholds: np.ndarray, n_relevant: np.ndarray, hist_ge: np.ndarray,
                           hist_strict: np.ndarray):  # fmt: skip
    """RelevantRanks from sorted thresholds (B, W) and the p_ge / p_strict histograms (B, W + 1)."""
    from retbench.metrics.ranks import RelevantRanks

    n_rows, width = thresholds.shape
    out = RelevantRanks.empty(n_rows, width)
    out.n_relevant[:] = n_relevant
    if width == 0:
        return out
    above_ge = np.cumsum(hist_ge[:, ::-1], axis=1)[:, ::-1]  # [b, p]: items above >= p thresholds
    above_strict = np.cumsum(hist_strict[:, ::-1], axis=1)[:, ::-1]
    m = np.arange(width)
    valid = m[None, :] < n_relevant[:, None]
    # First and last position of each group of equal thresholds.
    starts = np.ones((n_rows, width), dtype=bool)
    starts[:, 1:] = thresholds[:, 1:] != thresholds[:, :-1]
    ends = np.ones((n_rows, width), dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, m, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, m, width - 1)[:, ::-1], axis=1)[:, ::-1]
    last = np.minimum(last, n_relevant[:, None] - 1)
    r = n_relevant[:, None]
    rank_asc = (r - m) + np.take_along_axis(above_strict, m[None, :] + 1, axis=1)  # slot j = r - 1 - m
    rel_ge_asc = r - first
    ge_asc = rel_ge_asc + np.take_along_axis(above_ge, np.clip(last + 1, 0, width), axis=1)
    slot = np.clip(r - 1 - m, 0, width - 1)
    rows = np.broadcast_to(np.arange(n_rows)[:, None], valid.shape)
    out.rank[rows[valid], slot[valid]] = rank_asc[valid]
    out.n_rel_ge[rows[valid], slot[valid]] = rel_ge_asc[valid]
    out.n_ge[rows[valid], slot[valid]] = ge_asc[valid]
    return out


def rank_rows_torch_sorting(scores, row_codes: np.ndarray, self_index: np.ndarray, col_codes, width: int):
    """Exact :class:`~retbench.metrics.ranks.RelevantRanks` of a block of rows by sorting each row (GPU path).

    The same integers as :func:`retbench.metrics.ranks.relevant_ranks` (stable sort of ``-score``,
    ties by ascending index; ``n_ge`` / ``n_rel_ge`` at the end of each tie group), in torch, for a
    GPU where a segmented sort of the block is cheap and the counting kernels of
    :func:`rank_rows_torch` would be launch-bound.

    Args:
        scores: (B, N) float32 torch tensor on the device.
        row_codes: (B,) int64 numpy label code of each query (-1: none relevant).
        self_index: (B,) int64 numpy database index of each query, excluded from its ranking, or -1.
        col_codes: (N,) int64 tensor on the device, label code of each database item.
        width: output width (the largest number of relevant items of any query, for every block).
    """
    import torch

    from retbench.metrics.ranks import RelevantRanks

    dev = scores.device
    n_rows, n_cols = scores.shape
    out = RelevantRanks.empty(n_rows, width)
    if n_rows == 0 or width == 0 or n_cols == 0:
        return out
    codes = torch.from_numpy(row_codes).to(dev)
    own = torch.from_numpy(self_index).to(dev)
    # The query itself sorts last (+inf key) and counts nowhere; the stable sort keeps ascending index among ties.
    key = (-scores).contiguous()
    has_own = own >= 0
    key[has_own.nonzero(as_tuple=True)[0], own[has_own]] = float("inf")
    key_sorted, order = torch.sort(key, dim=1, stable=True)
    del key
    kept = torch.ones_like(key_sorted, dtype=torch.bool)
    kept[:, -1] = ~has_own  # the query itself, when excluded, is the single +inf at the end
    relevant = (col_codes[order] == codes[:, None]) & kept
    del order
    cum_kept = torch.cumsum(kept, dim=1, dtype=torch.int32)  # N < 2**31: int32 halves the memory
    cum_rel = torch.cumsum(relevant, dim=1, dtype=torch.int32)
    group_end = torch.ones_like(kept)
    group_end[:, :-1] = key_sorted[:, 1:] != key_sorted[:, :-1]
    del key_sorted
    big = torch.iinfo(torch.int32).max
    n_ge_all = torch.cummin(torch.where(group_end, cum_kept, big).flip(1), dim=1).values.flip(1)
    n_rel_ge_all = torch.cummin(torch.where(group_end, cum_rel, big).flip(1), dim=1).values.flip(1)
    del group_end
    n_relevant = relevant.sum(dim=1)
    # Positions of the relevant items in ranking order: a stable sort moves the relevant ones first.
    width = min(width, n_cols)
    pos = torch.sort((~relevant).to(torch.uint8), dim=1, stable=True).indices[:, :width]
    valid = torch.arange(width, device=dev)[None, :] < n_relevant[:, None]
    valid_np = np.zeros(out.rank.shape, dtype=bool)
    valid_np[:, :width] = valid.cpu().numpy()
    out.n_relevant[:] = n_relevant.cpu().numpy()
    out.rank[valid_np] = cum_kept.gather(1, pos)[valid].cpu().numpy()
    out.n_ge[valid_np] = n_ge_all.gather(1, pos)[valid].cpu().numpy()
    out.n_rel_ge[valid_np] = n_rel_ge_all.gather(1, pos)[valid].cpu().numpy()
    return out
