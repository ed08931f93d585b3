"""Every user-facing error of the metrics package names the argument and the value received."""

from __future__ import annotations

import numpy as np
import pytest

from retbench.metrics import (
    average_precision,
    bootstrap_ci,
    evaluate,
    evaluate_ground_truth,
    evaluate_query_gallery,
    interpolated_pr_curve,
    paired_comparison,
    precision_at_k,
)

X = np.eye(4, dtype=np.float32)
LABELS = ["a", "a", "b", "b"]


@pytest.mark.parametrize(
    ("embeddings", "exception", "message"),
    [
        ([[1.0, 0.0]], TypeError, r"embeddings must be a numpy array of shape \(n, d\), got list"),
        (np.ones(4, np.float32), ValueError, r"embeddings must be 2-D \(n, d\), got shape \(4,\)"),
        (np.ones((0, 3), np.float32), ValueError, r"at least one row and one column, got shape \(0, 3\)"),
        (np.eye(4), ValueError, r"embeddings must be float32 .*got dtype float64; convert it with embeddings\.astype"),
        (np.array([[1, 0], [np.nan, 0], [0, 1], [0, 1]], np.float32), ValueError,
         r"embeddings has non-finite values \(NaN or inf\) in 1 row\(s\), first rows: \[1\]"),
    ],
)  # fmt: skip
def test_bad_embeddings(embeddings, exception, message):
    with pytest.raises(exception, match=message):
        evaluate(embeddings, LABELS[: len(embeddings) if hasattr(embeddings, "__len__") else 4])


def test_bad_labels():
    with pytest.raises(ValueError, match=r"labels has 3 entries but embeddings has 4 rows; row i of embeddings must be"):
        evaluate(X, ["a", "a", "b"])
    with pytest.raises(TypeError, match=r"labels must be a sequence of class labels .*got str"):
        evaluate(X, "aabb")
    with pytest.raises(TypeError, match=r"labels must be a sequence of class labels .*got int"):
        evaluate(X, 4)


@pytest.mark.parametrize(
    ("options", "exception", "message"),
    [
        ({"ks": []}, ValueError, r"ks must be non-empty and every k >= 1, got \[\]"),
        ({"ks": (0, 5)}, ValueError, r"ks must be non-empty and every k >= 1, got \[0, 5\]"),
        ({"ks": ("x",)}, TypeError, r"ks must be a sequence of positive integers, got \('x',\)"),
        ({"ks": (1.5,)}, TypeError, r"ks must be a sequence of positive integers, got \(1\.5,\)"),
        ({"ks": 5}, TypeError, r"ks must be a sequence of positive integers, got 5"),
        ({"ap_definition": "voc"}, ValueError, r"ap_definition must be one of \['sklearn', 'trapezoid'\], got 'voc'"),
        ({"n_bootstrap": -1}, ValueError, r"n_bootstrap must be a non-negative integer, got -1"),
        ({"block_size": 0}, ValueError, r"block_size must be a positive integer \(rows per block\) or None"),
        ({"pr_levels": 1}, ValueError, r"pr_levels must be an integer >= 2 \(number of recall levels\), got 1"),
        ({"backend": "cupy"}, ValueError, r"backend must be one of \['auto', 'numba', 'torch'\], got 'cupy'"),
        ({"device": "tpu"}, ValueError, r"device must be 'cpu' or 'cuda' / 'cuda:N', got 'tpu'"),
        ({"device": "cuda", "backend": "numba"}, ValueError, r"backend='numba' runs on the CPU only, got device='cuda'"),
    ],
)  # fmt: skip
def test_bad_options(options, exception, message):
    with pytest.raises(exception, match=message):
        evaluate(X, LABELS, **options)


def test_cuda_without_a_gpu(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device='cuda:0' but torch sees no CUDA GPU; use device='cpu'"):
        evaluate(X, LABELS, device="cuda:0")


def test_numba_backend_without_numba(monkeypatch):
    from retbench.metrics import _counting

    monkeypatch.setattr(_counting, "numba_kernel", lambda: None)
    with pytest.raises(ValueError, match=r"backend='numba' needs the numba package: pip install numba"):
        evaluate(X, LABELS, backend="numba")
    with pytest.raises(RuntimeError, match=r"rank_rows_numba needs numba"):
        _counting.rank_rows_numba(X, np.zeros(4), np.zeros(4), np.arange(4), np.array([0, 4]), np.zeros(0, np.int64),
                                  np.zeros(5, np.int64), 3, np.linspace(0, 1, 3), 1)
    assert evaluate(X, LABELS, n_bootstrap=0).config["backend"] == "torch"  # auto falls back


def test_query_gallery_errors():
    with pytest.raises(ValueError, match=r"query_embeddings and gallery_embeddings must have the same dimension, got 4 and 3"):
        evaluate_query_gallery(X, LABELS, np.eye(3, dtype=np.float32), ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"gallery_labels has 1 entries but gallery_embeddings has 4 rows"):
        evaluate_query_gallery(X, LABELS, X, ["a"])
    with pytest.raises(TypeError, match=r"query_embeddings must be a numpy array"):
        evaluate_query_gallery([[1.0]], ["a"], X, LABELS)


def test_ground_truth_errors():
    ok = [np.array([0])] * 4
    junk = [np.array([], dtype=np.int64)] * 4
    with pytest.raises(ValueError, match=r"ok must have one index array per query \(4\), got 3"):
        evaluate_ground_truth(X, X, ok[:3], junk)
    with pytest.raises(ValueError, match=r"junk\[1\] has an index outside \[0, 4\): \[7\]"):
        evaluate_ground_truth(X, X, ok, [junk[0], np.array([7]), junk[2], junk[3]])
    with pytest.raises(ValueError, match=r"ok\[0\] must hold integer gallery indices, got dtype float64"):
        evaluate_ground_truth(X, X, [np.array([0.5])] + ok[1:], junk)
    with pytest.raises(ValueError, match=r"must have the same dimension, got 4 and 2"):
        evaluate_ground_truth(X, np.eye(2, dtype=np.float32), ok, junk)
    with pytest.raises(ValueError, match=r"ap_definition must be one of"):
        evaluate_ground_truth(X, X, ok, junk, ap_definition="map")


def test_pure_function_errors():
    with pytest.raises(ValueError, match=r"relevant and scores must have the same shape, got \(1, 3\) and \(1, 2\)"):
        average_precision([1, 0, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"relevant must be boolean \(or 0/1\), got values other than 0 and 1"):
        average_precision([2, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"scores must be finite \(no NaN or inf\)"):
        average_precision([1, 0], [np.nan, 0.2])
    with pytest.raises(ValueError, match=r"scores must be real numbers, got dtype <U1"):
        average_precision([1, 0], ["a", "b"])
    with pytest.raises(ValueError, match=r"must be 1-D \(one query\) or 2-D \(n_queries, n_items\), got shapes"):
        average_precision(np.ones((1, 1, 2)), np.ones((1, 1, 2)))
    with pytest.raises(ValueError, match=r"ranked must have the same shape as scores \(1, 2\), got \(3,\)"):
        average_precision([1, 0], [0.1, 0.2], ranked=[True, True, True])
    with pytest.raises(ValueError, match=r"ranked must be boolean \(True = item is ranked\), got dtype int64"):
        average_precision([1, 0], [0.1, 0.2], ranked=np.array([1, 1]))
    with pytest.raises(ValueError, match=r"definition|ap_definition must be one of"):
        average_precision([1, 0], [0.1, 0.2], definition="11-point")
    with pytest.raises(ValueError, match=r"k must be a positive integer, got 0"):
        precision_at_k([1, 0], [0.1, 0.2], 0)
    with pytest.raises(ValueError, match=r"pr_levels must be an integer >= 2"):
        interpolated_pr_curve([1, 0], [0.1, 0.2], levels=1)


def test_statistics_errors():
    with pytest.raises(ValueError, match=r"ap_a and ap_b must be 1-D arrays of the same length .*got shapes \(3,\) and \(2,\)"):
        paired_comparison(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match=r"n_permutations must be a non-negative integer, got -5"):
        paired_comparison(np.ones(3), np.ones(3), n_permutations=-5)
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\), got 95"):
        bootstrap_ci({"ap": np.ones(3)}, confidence=95)
    with pytest.raises(ValueError, match=r"n_bootstrap must be a non-negative integer, got 1\.5"):
        bootstrap_ci({"ap": np.ones(3)}, n_bootstrap=1.5)


def test_unnormalised_embeddings_log_a_warning(caplog):
    evaluate(X * 2, LABELS, n_bootstrap=0)
    assert "rows are not L2-normalised" in caplog.text


def test_nonfinite_rows_are_found_across_chunks():
    from retbench.metrics._validation import nonfinite_rows

    x = np.zeros((50, 3), dtype=np.float32)
    x[[0, 7, 8, 49], [1, 0, 2, 2]] = [np.nan, np.inf, -np.inf, np.nan]
    np.testing.assert_array_equal(nonfinite_rows(x, chunk_rows=8), [0, 7, 8, 49])
    assert nonfinite_rows(x[1:7], chunk_rows=4).size == 0
