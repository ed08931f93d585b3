"""Exact blockwise top-k: equals a stable sort of the full score matrix, for any block size."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retbench.search import topk
from retbench.search.exact import top_and_worst


def full_matrix_topk(queries, database, k, exclude=None, largest=True):
    """Oracle: stable sort of the whole score matrix (ties by ascending index)."""
    scores = queries @ database.T
    key = -scores if largest else scores.copy()
    if exclude is not None:
        rows = np.flatnonzero(exclude >= 0)
        key[rows, exclude[rows]] = np.inf
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


def loop_topk(queries, database, k, exclude=None, largest=True):
    """Second oracle, plain Python."""
    out = []
    for q in range(queries.shape[0]):
        row = [float(np.dot(queries[q], database[i])) for i in range(database.shape[0])]
        items = [i for i in range(len(row)) if exclude is None or i != exclude[q]]
        out.append(sorted(items, key=lambda i: ((-row[i]) if largest else row[i], i))[:k])
    return np.array(out)


@pytest.fixture(params=["numba", "numpy"])
def kernel(request, monkeypatch):
    """Run the test with the numba kernel and with its numpy equivalent (the fallback without numba)."""
    from retbench.search import exact

    if request.param == "numpy":
        monkeypatch.setattr(exact, "merge_kernel", lambda: (exact.merge_block_numpy, exact._already_ordered))
    return request.param


def data(seed, n_queries=9, n_database=70, dim=6, grid=True):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n_queries, dim))
    d = rng.standard_normal((n_database, dim))
    if grid:  # coordinates on a 1/2 grid: exact float32 dot products, many ties
        q, d = np.round(q * 2) / 2, np.round(d * 2) / 2
    return q.astype(np.float32), d.astype(np.float32)


@pytest.mark.parametrize("block_size", [1, 5, 16, 69, 70, 1000])
@pytest.mark.parametrize("largest", [True, False])
def test_blockwise_equals_full_matrix(block_size, largest, kernel):
    q, d = data(0)
    scores, index = topk(q, d, 7, largest=largest, block_size=block_size)
    want_scores, want_index = full_matrix_topk(q, d, 7, largest=largest)
    np.testing.assert_array_equal(index, want_index)
    np.testing.assert_array_equal(scores, want_scores)
    np.testing.assert_array_equal(index, loop_topk(q, d, 7, largest=largest))
    assert scores.dtype == np.float32 and index.dtype == np.int64


@pytest.mark.parametrize("block_size", [3, 64])
def test_exclude_leaves_out_each_query_itself(block_size, kernel):
    _, d = data(1)
    exclude = np.arange(9)
    exclude[4] = -1  # this query excludes nothing
    scores, index = topk(d[:9], d, 5, exclude=exclude, block_size=block_size)
    want_scores, want_index = full_matrix_topk(d[:9], d, 5, exclude=exclude)
    np.testing.assert_array_equal(index, want_index)
    assert all(exclude[q] not in index[q] for q in range(9) if exclude[q] >= 0)
    assert 4 in index[4]  # its own row (score = its squared norm) is allowed back


def test_worst_k_for_galleries():
    q, d = data(2, grid=False)
    scores, index = topk(q, d, 5, largest=False)
    assert (np.diff(scores, axis=1) >= 0).all()
    np.testing.assert_array_equal(index, np.argsort(q @ d.T, axis=1, kind="stable")[:, :5])


@pytest.mark.parametrize("order", ["random", "ascending", "descending"])
def test_long_lists_stay_exact_whatever_the_order_of_the_scores(order, kernel):
    # Long lists (k = 40 of 300, and k = 300: every item) through the heaps, with the database in an
    # order where every item of query 0 enters its top list (ascending scores) or its worst list
    # (descending).
    q, d = data(5, n_database=300)
    if order != "random":
        by_score = np.argsort(d @ q[0], kind="stable")
        d = np.ascontiguousarray(d[by_score if order == "ascending" else by_score[::-1]])
    for k in (40, 300):
        for largest in (True, False):
            scores, index = topk(q, d, k, largest=largest, block_size=64)
            want_scores, want_index = full_matrix_topk(q, d, k, largest=largest)
            np.testing.assert_array_equal(index, want_index)
            np.testing.assert_array_equal(scores, want_scores)


def test_k_equal_to_all_items_is_a_full_stable_ranking():
    q, d = data(3, n_database=20)
    _, index = topk(q, d, 20, block_size=6)
    np.testing.assert_array_equal(index, np.argsort(-(q @ d.T), axis=1, kind="stable"))


@pytest.mark.parametrize("block_size", [4, 70])
@pytest.mark.parametrize(("k_top", "k_worst"), [(5, 3), (0, 4), (6, 0), (69, 69)])
def test_top_and_worst_in_one_pass_equal_two_searches(block_size, k_top, k_worst, kernel):
    _, d = data(4)
    exclude = np.arange(9)
    exclude[2] = -1
    top, worst = top_and_worst(d[:9], d, k_top, k_worst, exclude=exclude, block_size=block_size)
    for (scores, index), k, largest in ((top, k_top, True), (worst, k_worst, False)):
        assert scores.shape == index.shape == (9, k)
        if k:
            want_scores, want_index = full_matrix_topk(d[:9], d, k, exclude=exclude, largest=largest)
            np.testing.assert_array_equal(index, want_index)
            np.testing.assert_array_equal(scores, want_scores)
    with pytest.raises(ValueError, match=r"k_top and k_worst are both 0"):
        top_and_worst(d[:9], d, 0, 0)
    with pytest.raises(ValueError, match=r"k_worst must be an integer in \[0, 69\], got 70"):
        top_and_worst(d[:9], d, 1, 70, exclude=exclude)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(1, 40), st.integers(1, 45), st.booleans(), st.integers(0, 10_000))
def test_property_blockwise_equals_full(n_queries, n_database, block_size, largest, seed):
    q, d = data(seed, n_queries=n_queries, n_database=n_database, dim=3)
    k = 1 + seed % n_database
    _, index = topk(q, d, k, largest=largest, block_size=block_size)
    np.testing.assert_array_equal(index, full_matrix_topk(q, d, k, largest=largest)[1])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda q, d: topk(q[0], d, 1), r"queries must be a 2-D numpy array \(n, d\), got \(6,\)"),
        (lambda q, d: topk(q.astype(np.float64), d, 1), r"queries must be float32, got dtype float64"),
        (lambda q, d: topk(q, d[:, :3], 1), r"queries and database must have the same dimension, got 6 and 3"),
        (lambda q, d: topk(q, np.full_like(d, np.inf), 1), r"database has non-finite values"),
        (lambda q, d: topk(q, d, 0), r"k must be an integer in \[1, 70\] \(database size\), got 0"),
        (lambda q, d: topk(q, d, 71), r"k must be an integer in \[1, 70\] \(database size\), got 71"),
        (lambda q, d: topk(q, d, 70, exclude=np.zeros(9, np.int64)), r"k must be an integer in \[1, 69\] \(database size minus the excluded item\), got 70"),
        (lambda q, d: topk(q, d, 1, exclude=np.zeros(3, np.int64)), r"exclude must be an integer array of shape \(9,\)"),
        (lambda q, d: topk(q, d, 1, exclude=np.full(9, 70)), r"exclude entries must be -1 or database indices in \[0, 70\)"),
        (lambda q, d: topk(q, d, 1, block_size=0), r"block_size must be a positive integer, got 0"),
    ],
)  # fmt: skip
def test_errors(call, message):
    q, d = data(4)
    with pytest.raises(ValueError, match=message):
        call(q, d)
