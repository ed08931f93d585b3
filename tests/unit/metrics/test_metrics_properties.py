"""Property tests (hypothesis): AP bounds and invariances, blockwise == single block."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from retbench.metrics import average_precision, evaluate, relevant_ranks
from retbench.metrics._counting import numba_kernel

BACKEND = "numba" if numba_kernel() is not None else "torch"


@st.composite
def query_rows(draw, distinct: bool = False):
    """One query: relevance (at least one relevant) and scores (few values unless ``distinct``)."""
    n = draw(st.integers(2, 30))
    relevant = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    relevant[draw(st.integers(0, n - 1))] = True
    if distinct:
        scores = np.array(draw(st.permutations(range(n))), dtype=np.float64) / n
    else:
        scores = np.array(draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n)), dtype=np.float64) / 4
    return relevant, scores


@settings(max_examples=150, deadline=None)
@given(query_rows(), st.sampled_from(["sklearn", "trapezoid"]))
def test_ap_is_between_zero_and_one(case, definition):
    relevant, scores = case
    ap = average_precision(relevant, scores, definition=definition)[0]
    assert 0.0 < ap <= 1.0


@settings(max_examples=150, deadline=None)
@given(query_rows(distinct=True), st.randoms(use_true_random=False))
def test_ap_is_invariant_to_the_gallery_order_without_ties(case, random):
    relevant, scores = case
    perm = list(range(relevant.size))
    random.shuffle(perm)
    for definition in ("sklearn", "trapezoid"):
        a = average_precision(relevant, scores, definition=definition)[0]
        b = average_precision(relevant[perm], scores[perm], definition=definition)[0]
        assert abs(a - b) < 1e-12


@settings(max_examples=150, deadline=None)
@given(query_rows())
def test_sklearn_ap_is_invariant_to_the_gallery_order_even_with_ties(case):
    relevant, scores = case
    perm = np.random.default_rng(0).permutation(relevant.size)
    assert abs(average_precision(relevant, scores)[0] - average_precision(relevant[perm], scores[perm])[0]) < 1e-12


@settings(max_examples=150, deadline=None)
@given(query_rows())
def test_ap_is_one_when_all_relevant_items_rank_first(case):
    relevant, _ = case
    scores = np.where(relevant, 2.0, 0.0) + np.random.default_rng(1).random(relevant.size) * 0.5
    assert average_precision(relevant, scores)[0] == 1.0
    assert average_precision(relevant, scores, definition="trapezoid")[0] == 1.0


@settings(max_examples=100, deadline=None)
@given(query_rows())
def test_ranks_are_consistent(case):
    relevant, scores = case
    ranks = relevant_ranks(relevant, scores)
    r = int(relevant.sum())
    assert ranks.n_relevant[0] == r
    rank, n_ge, n_rel_ge = ranks.rank[0, :r], ranks.n_ge[0, :r], ranks.n_rel_ge[0, :r]
    assert (np.diff(rank) > 0).all() and (rank >= np.arange(1, r + 1)).all()
    assert (n_ge >= rank).all() and (n_rel_ge >= np.arange(1, r + 1)).all() and (n_rel_ge <= n_ge).all()


@st.composite
def small_collections(draw):
    n = draw(st.integers(2, 25))
    dim = draw(st.integers(1, 4))
    # Coordinates on a 1/4 grid: dot products are exact in float32, so ties are real and frequent.
    x = np.array(draw(st.lists(st.integers(-4, 4), min_size=n * dim, max_size=n * dim)), dtype=np.float32)
    labels = draw(st.lists(st.sampled_from("abc"), min_size=n, max_size=n))
    return x.reshape(n, dim) / 4, labels


@settings(max_examples=40, deadline=None)
@given(small_collections(), st.integers(1, 30))
def test_blockwise_equals_single_block(collection, block_size):
    x, labels = collection
    whole = evaluate(x, labels, n_bootstrap=0, block_size=len(labels), backend=BACKEND, ks=(1, 3))
    part = evaluate(x, labels, n_bootstrap=0, block_size=block_size, backend=BACKEND, ks=(1, 3))
    for key in whole.per_query:
        np.testing.assert_array_equal(part.per_query[key], whole.per_query[key])


@settings(max_examples=40, deadline=None)
@given(small_collections())
def test_evaluate_ap_is_the_pure_ap_of_each_row(collection):
    x, labels = collection
    lab = np.asarray(labels)
    ev = evaluate(x, labels, n_bootstrap=0, backend=BACKEND)
    want = average_precision(lab[:, None] == lab[None, :], x @ x.T, ranked=~np.eye(lab.size, dtype=bool))
    np.testing.assert_allclose(ev.ap, want, atol=1e-12, equal_nan=True)
