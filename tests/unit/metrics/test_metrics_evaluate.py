"""The evaluators (leave-one-out, query/gallery) against the pure functions, sklearn and each other."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from retbench.metrics import (
    Evaluation,
    average_precision,
    evaluate,
    evaluate_query_gallery,
    interpolated_pr_curve,
    metric_keys,
    relevant_ranks,
)
from retbench.metrics._counting import numba_kernel
from retbench.metrics.evaluation import per_query_metrics
from retbench.metrics.ranks import RANK_PAD

HAS_NUMBA = numba_kernel() is not None
BACKENDS = ["torch"] + (["numba"] if HAS_NUMBA else [])


def clustered(n: int, n_classes: int, dim: int = 16, noise: float = 1.0, seed: int = 0, grid: int | None = None):
    """Unit float32 rows around random class centres.

    With ``grid`` (a power of two) the coordinates are rounded to multiples of 1/grid: every dot
    product is then exact in float32 whatever the summation order, and exact ties are frequent.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    x = rng.standard_normal((n_classes, dim))[labels] + noise * rng.standard_normal((n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    if grid is not None:
        x = np.round(x * grid) / grid
    return x.astype(np.float32), [f"class{label}" for label in labels]


def loo_inputs(x: np.ndarray, labels: list[str], dtype=np.float64):
    """Full-matrix relevance / scores / ranked mask of the leave-one-out protocol."""
    lab = np.asarray(labels)
    scores = x.astype(dtype) @ x.astype(dtype).T
    return lab[:, None] == lab[None, :], scores, ~np.eye(len(lab), dtype=bool)


def test_evaluate_ap_matches_the_sklearn_loop():
    x, labels = clustered(300, 6, noise=1.5)
    ev = evaluate(x, labels, n_bootstrap=0)
    lab = np.asarray(labels)
    scores = x.astype(np.float64) @ x.astype(np.float64).T
    seed_loop = []
    for i in range(len(lab)):
        others = np.arange(len(lab)) != i
        seed_loop.append(average_precision_score(lab[others] == lab[i], scores[i, others]))
    np.testing.assert_allclose(ev.ap, seed_loop, atol=1e-4)
    assert ev.map == pytest.approx(np.mean(seed_loop), abs=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("grid", [None, 4])
def test_evaluate_equals_the_pure_functions_on_the_same_float32_scores(backend, grid):
    x, labels = clustered(150, 5, grid=grid)
    relevant, scores, ranked = loo_inputs(x, labels, dtype=np.float32)
    ev = evaluate(x, labels, n_bootstrap=0, backend=backend, ks=(1, 3, 10))
    want = per_query_metrics(relevant_ranks(relevant, scores, ranked), (1, 3, 10), "sklearn")
    for key, values in want.items():
        np.testing.assert_allclose(ev.per_query[key], values, rtol=0, atol=1e-12, equal_nan=True, err_msg=key)
    curves = interpolated_pr_curve(relevant, scores, ranked=ranked)
    np.testing.assert_allclose(ev.pr_curve, np.nanmean(curves, axis=0), atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_blockwise_equals_a_single_block(backend):
    x, labels = clustered(97, 4, grid=4)
    whole = evaluate(x, labels, n_bootstrap=0, backend=backend, block_size=1000)
    for block_size in (3, 7, 50):
        part = evaluate(x, labels, n_bootstrap=0, backend=backend, block_size=block_size)
        for key in whole.per_query:
            np.testing.assert_array_equal(part.per_query[key], whole.per_query[key])


@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed")
def test_numba_and_torch_backends_agree_with_heavy_ties():
    x, labels = clustered(120, 3, dim=4, grid=4)
    a = evaluate(x, labels, n_bootstrap=0, backend="numba")
    b = evaluate(x, labels, n_bootstrap=0, backend="torch")
    for key in a.per_query:  # the same integers; sums in another order (numba: sequential)
        np.testing.assert_allclose(a.per_query[key], b.per_query[key], rtol=0, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(a.pr_curve, b.pr_curve, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicate_images_are_excluded_by_index_not_by_rank(backend):
    # Rows 0 and 1 are the same image with different labels; row 2 duplicates row 3 with the same label.
    x = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0.8, 0.6, 0]], dtype=np.float32)
    labels = ["a", "b", "c", "c", "a"]
    ev = evaluate(x, labels, n_bootstrap=0, backend=backend, ks=(1,))
    # Query 0: its twin (index 1, label b) ties at score 1 and is ranked first (ties by index), then
    # item 4 (label a, score 0.8): AP = 1/2 and P@1 = 0; it would be 1 if "rank 0" were dropped instead.
    assert ev.ap[0] == pytest.approx(0.5)
    assert ev.per_query["precision@1"][0] == 0.0
    # Query 1 (label b) has no relevant item.
    assert np.isnan(ev.ap[1])
    # Query 2: its twin has the same label, so it is a relevant item at score 1.
    assert ev.ap[2] == 1.0 and ev.per_query["precision@1"][2] == 1.0
    # Query 4: item 0 (relevant, 0.8) ties with item 1 (not relevant, 0.8): sklearn counts both.
    assert ev.ap[4] == pytest.approx(0.5)
    assert ev.per_query["precision@1"][4] == 1.0  # index 0 comes before index 1


def test_single_image_classes_are_nan_and_left_out():
    x, labels = clustered(40, 3)
    labels[5] = "lonely"
    ev = evaluate(x, labels, n_bootstrap=0)
    assert np.isnan(ev.ap[5])
    assert ev.n_queries == 40 and ev.n_queries_without_relevant == 1
    assert ev.map == pytest.approx(np.nanmean(ev.ap))
    assert ev.per_class["lonely"]["n_images"] == 1 and np.isnan(ev.per_class["lonely"]["ap"])
    for key in ev.per_query:
        assert np.isnan(ev.per_query[key][5])


def test_result_structure_keys_and_json():
    x, labels = clustered(60, 3)
    ev = evaluate(x, labels, ks=(1, 5), n_bootstrap=50, seed=3)
    keys = metric_keys((1, 5))
    assert keys == ["map", "precision@1", "precision@5", "recall@1", "recall@5", "r_precision", "map@r", "map@1",
                    "map@5", "ndcg@1", "ndcg@5", "mrr"]  # fmt: skip
    assert list(ev.metrics) == keys + [f"{k}_ci95" for k in keys]
    assert list(ev.per_query) == ["ap"] + keys[1:]
    assert all(v.shape == (60,) and v.dtype == np.float64 for v in ev.per_query.values())
    assert ev.ap.dtype == np.float64 and ev.ap is ev.per_query["ap"]
    for key in keys:
        lo, hi = ev.metrics[f"{key}_ci95"]
        assert lo <= ev.metrics[key] <= hi
    assert ev.recall_levels.shape == ev.pr_curve.shape == (101,)
    assert set(ev.per_class) == set(labels)
    for label, entry in ev.per_class.items():
        rows = np.asarray(labels) == label
        assert entry["n_images"] == rows.sum()
        assert entry["ap"] == pytest.approx(np.nanmean(ev.ap[rows]))
    assert ev.config["ks"] == [1, 5] and ev.config["ap_definition"] == "sklearn"
    assert ev.config["protocol"] == "leave-one-out" and "ascending database index" in ev.config["tie_rule"]
    document = json.loads(json.dumps(ev.to_dict(), allow_nan=False))
    assert document["map"] == pytest.approx(ev.map)
    assert len(document["per_query"]["ap"]) == 60


def test_to_dict_turns_nan_into_none():
    x, labels = clustered(10, 2)
    labels[0] = "alone"
    document = evaluate(x, labels, n_bootstrap=0).to_dict()
    assert document["ap"][0] is None
    assert document["per_class"]["alone"]["ap"] is None
    json.dumps(document, allow_nan=False)


def test_two_runs_give_identical_arrays():
    x, labels = clustered(200, 4)
    a = evaluate(x, labels, n_bootstrap=100, seed=7)
    b = evaluate(x, labels, n_bootstrap=100, seed=7)
    for key in a.per_query:
        np.testing.assert_array_equal(a.per_query[key], b.per_query[key])
    assert a.metrics == b.metrics
    np.testing.assert_array_equal(a.pr_curve, b.pr_curve)


def test_trapezoid_definition_is_passed_through():
    x, labels = clustered(80, 3)
    relevant, scores, ranked = loo_inputs(x, labels, dtype=np.float32)
    ev = evaluate(x, labels, n_bootstrap=0, ap_definition="trapezoid")
    np.testing.assert_allclose(ev.ap, average_precision(relevant, scores, ranked=ranked, definition="trapezoid"),
                               atol=1e-12)  # fmt: skip
    assert ev.config["ap_definition"] == "trapezoid"


def test_pr_levels_option():
    x, labels = clustered(50, 3)
    ev = evaluate(x, labels, n_bootstrap=0, pr_levels=11)
    np.testing.assert_allclose(ev.recall_levels, np.linspace(0, 1, 11))
    assert ev.pr_curve.shape == (11,) and ev.pr_curve[0] >= ev.pr_curve[-1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_query_gallery_protocol(backend):
    g, g_labels = clustered(90, 4, seed=1)
    q, q_labels = clustered(20, 5, seed=2)  # class4 does not occur in the gallery
    ev = evaluate_query_gallery(q, q_labels, g, g_labels, n_bootstrap=0, backend=backend)
    relevant = np.asarray(q_labels)[:, None] == np.asarray(g_labels)[None, :]
    want = average_precision(relevant, q @ g.T)
    np.testing.assert_allclose(ev.ap, want, atol=1e-12, equal_nan=True)
    assert np.isnan(ev.ap[np.asarray(q_labels) == "class4"]).all()
    assert ev.config["protocol"] == "query/gallery"


def test_query_gallery_does_not_exclude_identical_items():
    x, labels = clustered(30, 3)
    ev = evaluate_query_gallery(x, labels, x, labels, n_bootstrap=0)
    assert (ev.per_query["precision@1"] == 1.0).all()  # each query finds itself first


def test_evaluation_is_frozen():
    x, labels = clustered(20, 2)
    ev = evaluate(x, labels, n_bootstrap=0)
    assert isinstance(ev, Evaluation)
    with pytest.raises(AttributeError):
        ev.map = 0.0  # type: ignore[misc]


@pytest.mark.skipif(not pytest.importorskip("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    x, labels = clustered(500, 7, dim=32, grid=8)
    cpu = evaluate(x, labels, n_bootstrap=0, backend="torch")
    gpu = evaluate(x, labels, n_bootstrap=0, device="cuda")
    np.testing.assert_allclose(gpu.ap, cpu.ap, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_degenerate_rows_with_many_ties_are_exact(backend):
    # 300 items but only 3 distinct embeddings (like failed images sharing one vector): every row is
    # full of ties between relevant and non-relevant items, which the numba kernel hands to a sort.
    rng = np.random.default_rng(5)
    vectors = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 300)]
    labels = [f"c{v}" for v in rng.integers(0, 4, 300)]
    relevant, scores, ranked = loo_inputs(vectors, labels, dtype=np.float32)
    ev = evaluate(vectors, labels, n_bootstrap=0, backend=backend, ks=(1, 10))
    want = per_query_metrics(relevant_ranks(relevant, scores, ranked), (1, 10), "sklearn")
    for key, values in want.items():
        np.testing.assert_allclose(ev.per_query[key], values, rtol=0, atol=1e-12, equal_nan=True, err_msg=key)


@pytest.mark.parametrize("with_self", [True, False])
def test_sorting_path_of_cuda_gives_the_reference_integers(with_self):
    # The CUDA path (a stable sort per block) is device-agnostic torch: run it on CPU tensors against
    # the numpy reference, with heavy exact ties (grid) and a label absent from the database (code -1).
    import torch

    from retbench.metrics._counting import rank_rows_torch_sorting

    x, labels = clustered(90, 4, dim=4, grid=4)
    codes = np.unique(labels, return_inverse=True)[1].astype(np.int64)
    rows = np.arange(0, 90, 3)
    row_codes = codes[rows].copy()
    row_codes[0] = -1
    self_index = rows if with_self else np.full(rows.size, -1, dtype=np.int64)
    scores = x[rows] @ x.T
    width = int(np.bincount(codes).max())
    relevant = codes[None, :] == row_codes[:, None]
    ranked = np.ones_like(relevant)
    if with_self:
        ranked[np.arange(rows.size), rows] = False
    got = rank_rows_torch_sorting(torch.from_numpy(scores), torch.from_numpy(relevant & ranked),
                                  torch.from_numpy(~ranked), width)  # fmt: skip
    want = relevant_ranks(relevant & ranked, scores, ranked)
    np.testing.assert_array_equal(got.n_relevant, want.n_relevant)
    w = want.rank.shape[1]
    for field in ("rank", "n_ge", "n_rel_ge"):
        np.testing.assert_array_equal(getattr(got, field)[:, :w], getattr(want, field))
    assert got.rank.shape[1] == width and (got.rank[:, w:] == RANK_PAD).all()


def test_torch_backend_on_the_cpu_equals_the_numba_backend():
    # The torch backend (the CUDA path's stable sort of each block) run on CPU tensors: same per-query metrics.
    x, labels = clustered(150, 5, dim=6, grid=8)
    want = evaluate(x, labels, n_bootstrap=0, block_size=32)
    got = evaluate(x, labels, n_bootstrap=0, block_size=32, backend="torch")
    assert want.config["backend"] == "numba" and got.config["backend"] == "torch"
    for key in want.per_query:
        np.testing.assert_allclose(got.per_query[key], want.per_query[key], rtol=0, atol=1e-12, equal_nan=True)


def test_torch_backend_without_numba_uses_the_numpy_definitions(monkeypatch):
    # Without numba the torch backend's full-width metrics (AP, R-precision, MAP@R, PR curve) come
    # from the numpy functions: the same values as with numba's per-row kernel.
    from retbench.metrics import _counting

    x, labels = clustered(160, 4, dim=6, grid=8)
    with_numba = evaluate(x, labels, n_bootstrap=0, backend="torch", ap_definition="trapezoid")
    monkeypatch.setattr(_counting, "numba_kernel", lambda: None)
    without = evaluate(x, labels, n_bootstrap=0, backend="torch", ap_definition="trapezoid")
    for key in with_numba.per_query:
        np.testing.assert_allclose(without.per_query[key], with_numba.per_query[key], rtol=0, atol=1e-12,
                                   equal_nan=True)  # fmt: skip
    np.testing.assert_allclose(without.pr_curve, with_numba.pr_curve, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_engine_excludes_a_query_row_outside_its_relevant_list(backend):
    # RankingProblem's general contract: self_index may point at an item that is not relevant to the
    # query (only leave-one-out puts it in its own class). It is excluded, never counted, and the
    # relevant counts stay exact; one query's row is also in its list, as in leave-one-out.
    from retbench.metrics import _engine
    from retbench.metrics.pr_curve import recall_levels

    x, labels = clustered(120, 4, dim=6, grid=8)
    queries, database = x[:12], x
    rng = np.random.default_rng(3)
    relevant_lists = [rng.choice(120, 15, replace=False) for _ in range(12)]
    self_index = np.array([q + 20 if q % 2 else q for q in range(12)], dtype=np.int64)
    relevant_lists[0] = np.union1d(relevant_lists[0], [0])  # query 0's own row is in its list
    relevant_lists = [np.setdiff1d(r, [self_index[q]]) if q else r for q, r in enumerate(relevant_lists)]
    problem = _engine.RankingProblem(queries, np.arange(12), database, _engine.IndexLists.of(relevant_lists),
                                     self_index)  # fmt: skip
    expected = np.array([len(r) for r in relevant_lists]) - (np.arange(12) == 0)
    np.testing.assert_array_equal(problem.n_relevant(), expected)
    relevant = np.zeros((12, 120), dtype=bool)
    ranked = np.ones_like(relevant)
    for q in range(12):
        relevant[q, relevant_lists[q]] = True
        ranked[q, self_index[q]] = False
    want = relevant_ranks(relevant & ranked, queries @ database.T, ranked)
    width = want.rank.shape[1]
    (block,) = _engine.iter_blocks(problem, block_size=12, backend=backend, levels=recall_levels(11), k_max=width)
    np.testing.assert_array_equal(block.ranks.n_relevant, want.n_relevant)
    for field in ("rank", "n_ge", "n_rel_ge"):
        np.testing.assert_array_equal(getattr(block.ranks, field)[:, :width], getattr(want, field), err_msg=field)
