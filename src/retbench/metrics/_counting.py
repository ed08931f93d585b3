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

- :func:`rank_rows_numba` (the CPU): one fused pass per row, rows in parallel without the GIL; x
  is placed in O(1) with a lookup table on a uniform grid over [min, max] of the thresholds (a
  binary search would cost ~log2 R dependent steps). It also computes the metrics that need
  every relevant item. A degenerate row with many exact ties (e.g. many identical embeddings) is
  re-ranked by a stable sort of the row instead.
- :func:`rank_rows_torch_sorting` (CUDA; also the CPU fallback where numba cannot be imported):
  a stable segmented sort of each block, cheap on a GPU, where many small counting kernels would
  be launch-bound.
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
        logger.info("numba is not installed: the evaluator sorts each block with torch (slower on the CPU)")
        return None
    return _numba_kernel


def rank_rows_numba(scores: np.ndarray, row_codes: np.ndarray, self_index: np.ndarray, members: np.ndarray,
                    offsets: np.ndarray, removed: np.ndarray, removed_offsets: np.ndarray, width: int,
                    levels: np.ndarray, k_max: int):  # fmt: skip
    """Rank a block of rows with numba: the first ``k_max`` slots of their ranks, and full-width metrics.

    Args:
        scores: (B, N) float32.
        row_codes: (B,) which list of ``members`` holds each row's relevant items (-1: none).
        self_index: (B,) database index of each query, excluded from its ranking, or -1.
        members, offsets: (M,) and (G + 1,) int64 lists of database indices, each ascending:
            ``members[offsets[g]:offsets[g + 1]]`` (the items of label code g, or query g's ok list).
        removed, removed_offsets: (J,) and (B + 1,) int64: the items removed from row b's ranking
            (Revisited junk), ``removed[removed_offsets[b]:removed_offsets[b + 1]]``, ascending.
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
    kernels.rank_rows(scores, thresholds, out.n_relevant, row_codes, self_index, members, offsets, removed,
                      removed_offsets, levels, out.rank, out.n_ge, out.n_rel_ge, full, pr_curve, needs_sort)  # fmt: skip
    for b in np.flatnonzero(needs_sort):  # rows with many ties: an exact stable sort of the row
        code = row_codes[b]
        relevant = members[offsets[code] : offsets[code + 1]]
        gone = removed[removed_offsets[b] : removed_offsets[b + 1]]
        _rank_row_by_sorting(b, scores[b], relevant, self_index[b], gone, levels, out, full, pr_curve)
    return out, full, pr_curve


def _rank_row_by_sorting(b, row, relevant_items, own, removed_items, levels, out, full, pr_curve) -> None:
    from retbench.metrics.ranks import relevant_ranks

    ranked = np.ones(row.size, dtype=bool)
    ranked[removed_items] = False
    if own >= 0:
        ranked[own] = False
    relevant = np.zeros(row.size, dtype=bool)
    relevant[relevant_items] = True
    exact = relevant_ranks(relevant & ranked, row, ranked)
    width = min(out.rank.shape[1], exact.rank.shape[1])
    out.rank[b, :width] = exact.rank[0, :width]
    out.n_ge[b, :width] = exact.n_ge[0, :width]
    out.n_rel_ge[b, :width] = exact.n_rel_ge[0, :width]
    # the same arithmetic as every other row of the block: the kernel's full-width metrics
    numba_kernel().full_width_metrics_rows(exact.n_relevant, exact.rank, exact.n_ge, exact.n_rel_ge, levels,
                                           full[b : b + 1], pr_curve[b : b + 1])  # fmt: skip


def rank_rows_torch_sorting(scores, relevant, removed, width: int):
    """Exact :class:`~retbench.metrics.ranks.RelevantRanks` of a block of rows by sorting each row (GPU path).

    The same integers as :func:`retbench.metrics.ranks.relevant_ranks` (stable sort of ``-score``,
    ties by ascending index; ``n_ge`` / ``n_rel_ge`` at the end of each tie group), in torch, for a
    GPU where a segmented sort of the block is cheap and counting kernels would be launch-bound.

    Args:
        scores: (B, N) float32 torch tensor on the device.
        relevant: (B, N) bool tensor on the device, item i is relevant to row b (unless removed).
        removed: (B, N) bool tensor on the device, item i is out of row b's ranking (the query
            itself, junk): neither relevant nor counted.
        width: output width (the largest number of relevant items of any query, for every block).
    """
    import torch

    from retbench.metrics.ranks import RelevantRanks

    dev = scores.device
    n_rows, n_cols = scores.shape
    out = RelevantRanks.empty(n_rows, width)
    if n_rows == 0 or width == 0 or n_cols == 0:
        return out
    # Removed items sort last (+inf key) and count nowhere; the stable sort keeps ascending index among ties.
    key = (-scores).masked_fill_(removed, float("inf"))
    key_sorted, order = torch.sort(key, dim=1, stable=True)
    del key
    kept = ~removed.gather(1, order)
    relevant = relevant.gather(1, order) & kept
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
