"""The numba kernel behind :func:`retbench.metrics._counting.rank_rows_numba` (imported lazily).

See :mod:`retbench.metrics._counting` for what it computes. Each row is one query: its relevant
scores are gathered and sorted (the *thresholds*), every item of the row is placed among them in
O(1) with a lookup table on a uniform grid, and the per-position histograms give the exact ranks.
"""

from __future__ import annotations

import numba
import numpy as np


#: ties (relevant vs non-relevant score) after which a row is left to an exact sort by the caller.
MAX_TIES = 64


@numba.njit(inline="always")
def _search_cell(x, code, next_code, padded):  # pragma: no cover (jit)
    """Thresholds <= x when x falls in a cell holding several: binary search within that cell.

    ``code`` = -1 - (thresholds in earlier cells); ``next_code`` encodes the same for the next cell.
    """
    lo = -1 - code
    hi = next_code if next_code >= 0 else -1 - next_code  # thresholds lo..hi-1 (0-based) are in the cell
    while lo < hi:  # first position whose threshold (padded[position + 1]) is > x
        mid = (lo + hi) >> 1
        if padded[mid + 1] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(parallel=True, nogil=True, cache=True)
def gather_thresholds(scores, row_codes, self_index, members, offsets, thresholds, n_relevant):  # pragma: no cover
    """Copy each row's relevant scores (the query itself excluded by index) into ``thresholds`` (B, W).

    scores (B, N) float32; row_codes (B,) int64: which list of ``members`` holds the row's relevant
    items (a label code, or one list per query; -1: no relevant item); self_index (B,) int64 (-1:
    none); members / offsets: lists of database indices, each ascending
    (``members[offsets[c]:offsets[c + 1]]``). ``thresholds`` comes filled with +inf (padding).
    """
    for b in numba.prange(scores.shape[0]):
        code = row_codes[b]
        if code < 0:
            continue
        own = self_index[b]
        r = 0
        for u in range(offsets[code], offsets[code + 1]):
            if members[u] != own:
                thresholds[b, r] = scores[b, members[u]]
                r += 1
        n_relevant[b] = r


@numba.njit(inline="always")
def _place(x, t_lo, inv, zero, top, lut, cell_first, padded):  # pragma: no cover (jit)
    """Number of thresholds <= x (see the grid in :func:`rank_rows`)."""
    g = int(min(max((x - t_lo) * inv, zero), top))
    p = lut[g]
    if p < 0:
        return _search_cell(x, p, lut[g + 1], padded)
    return p + (x >= cell_first[g])


@numba.njit(parallel=True, nogil=True, cache=True)
def rank_rows(scores, thresholds, n_relevant, row_codes, self_index, members, offsets, removed, removed_offsets,
              levels, rank, n_ge, n_rel_ge, full, pr_curve, needs_sort):  # pragma: no cover (jit)
    """Rank the relevant items of a block of rows and compute the metrics that need all of them.

    thresholds (B, W) float32: each row's relevant scores sorted ascending (+inf padding), n_relevant
    (B,) how many; removed / removed_offsets: the items taken out of row b's ranking besides the query
    itself (Revisited "junk"), ``removed[removed_offsets[b]:removed_offsets[b + 1]]`` ascending and
    disjoint from the row's relevant items; levels (L,) float64 recall levels; other inputs as in
    :func:`gather_thresholds` (``members`` of a row's code are its relevant items, plus the query
    itself in leave-one-out). Outputs: ``rank``, ``n_ge``, ``n_rel_ge`` (B, K), the first K slots of
    :class:`~retbench.metrics.ranks.RelevantRanks` (pre-filled with padding); ``full`` (B, 4) and
    ``pr_curve`` (B, L) float64 (see :func:`_full_width_metrics`), left untouched for rows without
    relevant items; ``needs_sort`` (B,) bool set for rows with more than ``MAX_TIES`` ties between a
    relevant and a non-relevant score (their tie handling would cost O(N x R)): the caller re-ranks
    those rows by sorting them.
    """
    n_rows, n_cols = scores.shape
    for b in numba.prange(n_rows):
        r = n_relevant[b]
        if r == 0:
            continue
        code = row_codes[b]
        first, last = offsets[code], offsets[code + 1]
        own = self_index[b]
        removed_first, removed_last = removed_offsets[b], removed_offsets[b + 1]
        row = scores[b]
        # padded[p] is the p-th smallest threshold (1-based), -inf in front and +inf behind.
        padded = np.empty(r + 2, dtype=np.float32)
        padded[0] = -np.inf
        padded[r + 1] = np.inf
        padded[1 : r + 1] = thresholds[b, :r]
        # Uniform grid of 8r cells over [min, max] threshold; the cell map is monotone in x. lut[g] =
        # number of thresholds in cells < g, stored as -1 - lut[g] when cell g holds several;
        # cell_first[g] = the threshold in cell g (+inf if none).
        t_lo = padded[1]
        n_cells = 8 * r
        span = np.float64(padded[r]) - np.float64(t_lo)
        inv = np.float32(min(n_cells / span, 1e30)) if span > 0 else np.float32(0.0)  # finite: no 0 * inf
        top = np.float32(n_cells)
        zero = np.float32(0.0)
        lut = np.zeros(n_cells + 2, dtype=np.int32)
        cell_first = np.full(n_cells + 1, np.inf, dtype=np.float32)
        for j in range(1, r + 1):
            g = int(min((padded[j] - t_lo) * inv, top))
            lut[g + 1] += 1
            cell_first[g] = min(cell_first[g], padded[j])
        for g in range(1, n_cells + 2):
            lut[g] += lut[g - 1]
        for g in range(n_cells + 1):
            if lut[g + 1] - lut[g] > 1:
                lut[g] = -1 - lut[g]
        # hist[p]: items above exactly p thresholds (score >= threshold: the sklearn count).
        # moved[p]: corrections for non-relevant items tied with relevant scores, which under the tie
        # rule precede only the tied relevant items with a larger index (the strict ranking).
        hist = np.zeros(r + 2, dtype=np.int64)
        moved = np.zeros(r + 2, dtype=np.int64)
        cells = np.empty(n_cols, dtype=np.int32)
        for k in range(n_cols):  # the cell of every item (float32 arithmetic: monotone in x; vectorised)
            cells[k] = np.int32(min(max((row[k] - t_lo) * inv, zero), top))
        # Items tied with a threshold are noted during the scan and sorted out after it (the relevant
        # items themselves are among them), which keeps the scan loop lean. A full buffer means more
        # than MAX_TIES ties with non-relevant items.
        tie_cap = (last - first) + (removed_last - removed_first) + MAX_TIES + 1  # + 1: the query itself
        tie_k = np.empty(tie_cap, dtype=np.int64)
        tie_p = np.empty(tie_cap, dtype=np.int64)
        n_noted = 0
        for k in range(n_cols):  # every item; the relevant, the removed and the query are taken out below
            x = row[k]
            g = cells[k]
            p = lut[g]
            if p < 0:
                p = _search_cell(x, p, lut[g + 1], padded)
                tie = padded[p] == x
            else:  # thresholds in earlier cells are < x, so a tie can only be with this cell's one
                first_in_cell = cell_first[g]
                p += x >= first_in_cell
                tie = x == first_in_cell
            hist[p] += 1
            if tie:
                if n_noted == tie_cap:  # degenerate row (e.g. many identical embeddings): sort it instead
                    needs_sort[b] = True
                    break
                tie_k[n_noted] = k
                tie_p[n_noted] = p
                n_noted += 1
        if needs_sort[b]:
            continue
        # Ties of ranked non-relevant items (a merge walk skips the relevant and removed ones; the noted
        # items come in ascending index): under the tie rule such an item precedes only the tied
        # relevant items with a larger index.
        n_ties = 0
        u_member = first
        u_removed = removed_first
        for t in range(n_noted):
            k = tie_k[t]
            while u_member < last and members[u_member] < k:
                u_member += 1
            while u_removed < removed_last and removed[u_removed] < k:
                u_removed += 1
            if k == own or (u_member < last and members[u_member] == k) or (
                    u_removed < removed_last and removed[u_removed] == k):
                continue
            n_ties += 1
            if n_ties > MAX_TIES:  # its tie handling would cost O(N x R): sort the row instead
                needs_sort[b] = True
                break
            x = row[k]
            n_tied = 0
            n_after = 0
            for u in range(first, last):
                c = members[u]
                if c != own and row[c] == x:
                    n_tied += 1
                    n_after += c > k
            p = tie_p[t]
            moved[p] -= 1
            moved[p - n_tied + n_after] += 1
        if needs_sort[b]:
            continue
        # Take out what the scan counted but is not a ranked non-relevant item: the relevant items (the
        # thresholds themselves: each was placed after its last equal threshold, no lookup needed; this
        # needs finite scores, which the callers check), the removed items, and the query itself.
        m = r
        while m >= 1:
            g0 = m  # thresholds g0..m are equal
            while g0 > 1 and padded[g0 - 1] == padded[m]:
                g0 -= 1
            hist[m] -= m - g0 + 1
            m = g0 - 1
        for u in range(removed_first, removed_last):
            hist[_place(row[removed[u]], t_lo, inv, zero, top, lut, cell_first, padded)] -= 1
        if own >= 0:
            hist[_place(row[own], t_lo, inv, zero, top, lut, cell_first, padded)] -= 1
        _finish_row(b, r, padded, hist, hist + moved, levels, rank, n_ge, n_rel_ge, full, pr_curve)


@numba.njit(inline="always")
def _finish_row(b, r, padded, hist, strict, levels, rank, n_ge, n_rel_ge, full, pr_curve):  # pragma: no cover (jit)
    """From a row's histograms (modified in place) to its rank slots and full-width metrics.

    padded: the r thresholds ascending with -inf / +inf ends; hist[p] / strict[p]: non-relevant items
    above exactly p thresholds (score >= threshold) / ranked before exactly p relevant items.
    """
    for p in range(r - 1, -1, -1):  # suffix sums: non-relevant items above >= p thresholds
        hist[p] += hist[p + 1]
        strict[p] += strict[p + 1]
    # The relevant item at ascending position m (1-based in padded: m + 1) is ranking slot
    # j = r - 1 - m; among equal scores the larger index sits lower, i.e. later in the ranking.
    slot_rank = np.empty(r, dtype=np.int64)
    slot_ge = np.empty(r, dtype=np.int64)
    slot_rel_ge = np.empty(r, dtype=np.int64)
    m = r - 1
    while m >= 0:
        g0 = m
        while g0 > 0 and padded[g0] == padded[m + 1]:
            g0 -= 1
        above = hist[m + 1]
        for mm in range(g0, m + 1):
            j = r - 1 - mm
            slot_rank[j] = j + 1 + strict[mm + 1]
            slot_rel_ge[j] = r - g0
            slot_ge[j] = r - g0 + above
        m = g0 - 1
    for j in range(min(r, rank.shape[1])):
        rank[b, j] = slot_rank[j]
        n_ge[b, j] = slot_ge[j]
        n_rel_ge[b, j] = slot_rel_ge[j]
    _full_width_metrics(b, r, slot_rank, slot_ge, slot_rel_ge, levels, full, pr_curve)


@numba.njit(inline="always")
def _full_width_metrics(b, r, slot_rank, slot_ge, slot_rel_ge, levels, full, pr_curve):  # pragma: no cover (jit)
    """The metrics that need every relevant item, as in average_precision.py, cutoff.py, pr_curve.py.

    full[b] = (AP sklearn, AP trapezoid, R-precision, MAP@R); pr_curve[b] = interpolated precision.
    """
    ap_sklearn = 0.0
    ap_trapezoid = 0.0
    hits = 0
    map_r = 0.0
    best_after = np.empty(r, dtype=np.float64)
    for j in range(r):
        rank_j = slot_rank[j]
        precision = slot_rel_ge[j] / slot_ge[j]
        best_after[j] = precision
        ap_sklearn += precision
        position = rank_j - 1
        p0 = 1.0 if position == 0 else j / position
        ap_trapezoid += (p0 + (j + 1.0) / (position + 1.0)) / 2.0
        if rank_j <= r:
            hits += 1
            map_r += (j + 1.0) / rank_j
    full[b, 0] = ap_sklearn / r
    full[b, 1] = ap_trapezoid / r
    full[b, 2] = hits / r
    full[b, 3] = map_r / r
    for j in range(r - 2, -1, -1):
        best_after[j] = max(best_after[j], best_after[j + 1])
    # Level i needs the first slot whose recall n_rel_ge / r reaches it: the smallest count m with
    # m / r >= level (same float operations as pr_curve_from_ranks), found by a forward walk.
    first = 0
    for i in range(levels.size):
        need = np.int64(np.ceil(levels[i] * r))
        if need > 0 and (need - 1) / r >= levels[i]:
            need -= 1
        if need / r < levels[i] and need < r:
            need += 1
        while first < r - 1 and slot_rel_ge[first] < need:
            first += 1
        pr_curve[b, i] = best_after[first]


@numba.njit(parallel=True, nogil=True, cache=True)
def full_width_metrics_rows(n_relevant, rank, n_ge, n_rel_ge, levels, full, pr_curve):  # pragma: no cover (jit)
    """:func:`_full_width_metrics` of every row of full-width ranks (the torch backend's blocks).

    n_relevant (B,) int64; rank, n_ge, n_rel_ge (B, W) int64 with every relevant item of each row
    (W >= n_relevant); outputs as in :func:`rank_rows` (rows without relevant items untouched).
    """
    for b in numba.prange(rank.shape[0]):
        r = n_relevant[b]
        if r > 0:
            _full_width_metrics(b, r, rank[b], n_ge[b], n_rel_ge[b], levels, full, pr_curve)
