"""Revisited Oxford/Paris ground truth: safe loading, the three setups, and evaluate_ground_truth."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from retbench.metrics import evaluate_ground_truth, load_revisited_ground_truth, revisited_setup
from retbench.metrics.revisited import safe_load_pickle


def revisitop_compute_ap(ranks, nres):
    """revisitop python/evaluate.py compute_ap, verbatim apart from formatting."""
    nimgranks = len(ranks)
    ap = 0
    recall_step = 1.0 / nres
    for j in np.arange(nimgranks):
        rank = ranks[j]
        precision_0 = 1.0 if rank == 0 else float(j) / rank
        precision_1 = float(j + 1) / (rank + 1)
        ap += (precision_0 + precision_1) * recall_step / 2.0
    return ap


def revisitop_compute_map(ranks, gnd):
    """revisitop compute_map (mAP and per-query AP only), with a stable ranking given as input."""
    nq = len(gnd)
    aps = np.zeros(nq)
    nempty = 0
    for i in range(nq):
        qgnd = np.array(gnd[i]["ok"])
        if qgnd.shape[0] == 0:
            aps[i] = float("nan")
            nempty += 1
            continue
        qgndj = np.array(gnd[i]["junk"]) if "junk" in gnd[i] else np.empty(0)
        pos = np.arange(ranks.shape[0])[np.isin(ranks[:, i], qgnd)]
        junk = np.arange(ranks.shape[0])[np.isin(ranks[:, i], qgndj)]
        k = 0
        ij = 0
        if len(junk):
            ip = 0
            while ip < len(pos):
                while ij < len(junk) and pos[ip] > junk[ij]:
                    k += 1
                    ij += 1
                pos[ip] = pos[ip] - k
                ip += 1
        aps[i] = revisitop_compute_ap(pos, len(qgnd))
    return np.nanmean(aps), aps


def make_gnd(rng, n_gallery=60, n_queries=5):
    gnd = []
    for q in range(n_queries):
        perm = rng.permutation(n_gallery)
        n_easy, n_hard, n_junk = rng.integers(0, 6, 3)
        if q == 0:
            n_easy, n_hard = 0, 0  # a query with nothing to find
        if q == 1:
            n_hard = 0  # empty "hard" setup for this query
        gnd.append({
            "easy": perm[:n_easy].astype(np.int64),
            "hard": perm[n_easy : n_easy + n_hard].astype(np.int64),
            "junk": perm[n_easy + n_hard : n_easy + n_hard + n_junk].astype(np.int64),
            "bbx": [1.0, 2.0, 30.0, 40.0],
        })  # fmt: skip
    return {"imlist": [f"img{i}" for i in range(n_gallery)], "qimlist": [f"q{i}" for i in range(n_queries)], "gnd": gnd}


@pytest.fixture
def gnd_file(tmp_path):
    raw = make_gnd(np.random.default_rng(0))
    path = tmp_path / "gnd_rsynthetic.pkl"
    path.write_bytes(pickle.dumps(raw))
    return path, raw


def test_load_and_setups_follow_revisitop(gnd_file):
    path, raw = gnd_file
    gnd = load_revisited_ground_truth(path)
    assert gnd.imlist == raw["imlist"] and gnd.qimlist == raw["qimlist"]
    ok, junk = revisited_setup(gnd, "easy")
    assert [set(o) for o in ok] == [set(g["easy"]) for g in raw["gnd"]]
    assert [set(j) for j in junk] == [set(g["junk"]) | set(g["hard"]) for g in raw["gnd"]]
    ok, junk = revisited_setup(gnd, "medium")
    assert [set(o) for o in ok] == [set(g["easy"]) | set(g["hard"]) for g in raw["gnd"]]
    assert [set(j) for j in junk] == [set(g["junk"]) for g in raw["gnd"]]
    ok, junk = revisited_setup(gnd, "hard")
    assert [set(o) for o in ok] == [set(g["hard"]) for g in raw["gnd"]]
    assert [set(j) for j in junk] == [set(g["junk"]) | set(g["easy"]) for g in raw["gnd"]]
    np.testing.assert_array_equal(gnd.bbx[0], [1.0, 2.0, 30.0, 40.0])


@pytest.mark.parametrize("setup", ["easy", "medium", "hard"])
def test_trapezoid_ground_truth_map_equals_revisitop(gnd_file, setup):
    path, raw = gnd_file
    rng = np.random.default_rng(1)
    gallery = rng.standard_normal((60, 8)).astype(np.float32)
    queries = rng.standard_normal((5, 8)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ok, junk = revisited_setup(load_revisited_ground_truth(path), setup)
    ev = evaluate_ground_truth(queries, gallery, ok, junk, ap_definition="trapezoid", n_bootstrap=0)
    ranks = np.argsort(-(gallery @ queries.T), axis=0, kind="stable")
    want_map, want_aps = revisitop_compute_map(ranks, [{"ok": o, "junk": j} for o, j in zip(ok, junk)])
    np.testing.assert_allclose(ev.ap, want_aps, atol=1e-12, equal_nan=True)
    assert ev.map == pytest.approx(want_map)
    assert np.isnan(ev.ap[0]) and ev.n_queries_without_relevant >= 1
    assert ev.per_class == {} and ev.config["protocol"].startswith("ground truth")


def test_ground_truth_sklearn_definition_matches_pure_function(gnd_file):
    from retbench.metrics import average_precision

    path, _ = gnd_file
    rng = np.random.default_rng(2)
    gallery = rng.standard_normal((60, 8)).astype(np.float32)
    queries = rng.standard_normal((5, 8)).astype(np.float32)
    ok, junk = revisited_setup(load_revisited_ground_truth(path), "medium")
    ev = evaluate_ground_truth(queries, gallery, ok, junk, n_bootstrap=20)
    relevant = np.zeros((5, 60), dtype=bool)
    ranked = np.ones((5, 60), dtype=bool)
    for q in range(5):
        relevant[q, ok[q]] = True
        ranked[q, junk[q]] = False
    np.testing.assert_allclose(ev.ap, average_precision(relevant, queries @ gallery.T, ranked=ranked), atol=1e-12)
    assert "map_ci95" in ev.metrics


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def test_unsafe_pickles_are_refused(tmp_path):
    path = tmp_path / "gnd_evil.pkl"
    path.write_bytes(pickle.dumps({"imlist": [], "qimlist": [], "gnd": [_Boom()]}))
    with pytest.raises(ValueError, match=r"gnd_evil\.pkl: not a readable ground-truth pickle .*refusing to load"):
        load_revisited_ground_truth(path)


def test_numpy_scalars_and_arrays_load():
    data = pickle.dumps({"a": np.arange(3), "b": np.float64(2.5), "c": [np.int64(1)]})
    out = safe_load_pickle(data)
    np.testing.assert_array_equal(out["a"], [0, 1, 2])
    assert out["b"] == 2.5


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([1, 2], r"expected a dict with keys 'imlist', 'qimlist', 'gnd', got list"),
        ({"imlist": ["a"], "qimlist": ["q"], "gnd": []}, r"'gnd' has 0 entries but 'qimlist' has 1 queries"),
        ({"imlist": ["a"], "qimlist": ["q"], "gnd": [{"easy": [], "hard": []}]}, r"gnd\[0\] has no 'junk' list"),
        ({"imlist": ["a"], "qimlist": ["q"], "gnd": [{"easy": [3], "hard": [], "junk": []}]},
         r"gnd\[0\]\['easy'\] has indices outside \[0, 1\)"),
        ({"imlist": ["a"], "qimlist": ["q"], "gnd": [{"easy": [0.5], "hard": [], "junk": []}]},
         r"gnd\[0\]\['easy'\] must hold integer indices"),
        ({"imlist": ["a"], "qimlist": ["q"], "gnd": ["x"]}, r"gnd\[0\] must be a dict, got str"),
    ],
)  # fmt: skip
def test_malformed_ground_truth_errors(tmp_path, raw, message):
    path = tmp_path / "gnd_bad.pkl"
    path.write_bytes(pickle.dumps(raw))
    with pytest.raises(ValueError, match=r"gnd_bad\.pkl: " + message):
        load_revisited_ground_truth(path)


def test_missing_file_and_bad_setup(tmp_path, gnd_file):
    with pytest.raises(FileNotFoundError, match=r"does not exist \(expected e\.g\. gnd_roxford5k\.pkl\)"):
        load_revisited_ground_truth(tmp_path / "nope.pkl")
    with pytest.raises(ValueError, match=r"setup must be one of \['easy', 'medium', 'hard'\], got 'medum'"):
        revisited_setup(load_revisited_ground_truth(gnd_file[0]), "medum")
    (tmp_path / "garbage.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match=r"garbage\.pkl: not a readable ground-truth pickle"):
        load_revisited_ground_truth(tmp_path / "garbage.pkl")
