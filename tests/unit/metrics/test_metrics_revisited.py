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


def _ground_truth_problem(seed: int, n_queries: int = 40, n_gallery: int = 300, distinct: int | None = None):
    """Queries / gallery with exact ties (grid coordinates, or only ``distinct`` different vectors),
    ok and junk lists that overlap (an index in both is junk), empty ok lists and empty junk lists."""
    rng = np.random.default_rng(seed)
    if distinct is None:
        # multiples of 1/8 in 8-d: exact float32 dot products, about a dozen ties with ok scores per row
        gallery = np.round(rng.standard_normal((n_gallery, 8)) * 8) / 8
        queries = np.round(rng.standard_normal((n_queries, 8)) * 8) / 8
    else:  # degenerate: every row is full of relevant / non-relevant ties
        vectors = np.eye(distinct)
        gallery = vectors[rng.integers(0, distinct, n_gallery)]
        queries = vectors[rng.integers(0, distinct, n_queries)]
    ok, junk = [], []
    for q in range(n_queries):
        n_ok = 0 if q % 7 == 0 else int(rng.integers(1, 60))
        ok.append(rng.choice(n_gallery, n_ok, replace=False))
        n_junk = 0 if q % 5 == 0 else int(rng.integers(1, 40))
        picked = rng.choice(n_gallery, n_junk, replace=False)
        junk.append(np.concatenate([picked, ok[-1][:2]]))  # two ok items are also junk: junk wins
    return queries.astype(np.float32), gallery.astype(np.float32), ok, junk


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("distinct", [None, 3])
def test_ground_truth_engine_gives_the_reference_ranks_with_ties_and_junk(backend, distinct):
    # The exact integers of every relevant item, and every per-query metric, against the sorting reference
    # (relevant_ranks), with exact ties, junk that overlaps ok and ties with ok scores, empty lists and,
    # with distinct=3, rows so tied that the numba kernel sorts them instead.
    from retbench.metrics import _engine
    from retbench.metrics.evaluation import per_query_metrics
    from retbench.metrics.pr_curve import recall_levels
    from retbench.metrics.ranks import relevant_ranks

    queries, gallery, ok, junk = _ground_truth_problem(7, distinct=distinct)
    relevant = np.zeros((len(queries), len(gallery)), dtype=bool)
    ranked = np.ones_like(relevant)
    for q in range(len(queries)):
        relevant[q, ok[q]] = True
        ranked[q, junk[q]] = False
    want = relevant_ranks(relevant & ranked, queries @ gallery.T, ranked)
    problem = _engine.RankingProblem.with_lists(queries, gallery, ok, junk)
    width = want.rank.shape[1]
    for block in _engine.iter_blocks(problem, block_size=16, backend=backend, levels=recall_levels(11), k_max=width):
        got, rows = block.ranks, block.rows
        np.testing.assert_array_equal(got.n_relevant, want.n_relevant[rows])
        for field in ("rank", "n_ge", "n_rel_ge"):
            np.testing.assert_array_equal(getattr(got, field)[:, :width], getattr(want, field)[rows], err_msg=field)
    ks = (1, 5, 20, 100)
    for definition in ("sklearn", "trapezoid"):
        ev = evaluate_ground_truth(queries, gallery, ok, junk, ks=ks, n_bootstrap=0, block_size=16, backend=backend,
                                   ap_definition=definition)  # fmt: skip
        assert ev.config["backend"] == backend
        for key, values in per_query_metrics(want, ks, definition).items():
            np.testing.assert_allclose(ev.per_query[key], values, rtol=0, atol=1e-12, equal_nan=True, err_msg=key)
    assert np.isnan(ev.ap[0]) and ev.n_queries_without_relevant >= 1


def test_ground_truth_does_not_depend_on_the_block_size():
    queries, gallery, ok, junk = _ground_truth_problem(3)
    a = evaluate_ground_truth(queries, gallery, ok, junk, n_bootstrap=0, block_size=16)
    b = evaluate_ground_truth(queries, gallery, ok, junk, n_bootstrap=0, block_size=40)
    for key in a.per_query:
        np.testing.assert_array_equal(a.per_query[key], b.per_query[key])


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_setups_share_one_score_pass_and_equal_separate_runs(backend, monkeypatch):
    from retbench.metrics import _engine, evaluate_ground_truth_setups

    queries, gallery, ok, junk = _ground_truth_problem(5)
    rng = np.random.default_rng(6)
    setups = {  # different list widths per setup, as easy / medium / hard have
        "easy": (ok, junk),
        "medium": ([np.concatenate([o, rng.choice(len(gallery), 30, replace=False)]) for o in ok], junk),
        "hard": ([o[:3] for o in ok], [j[:5] for j in junk]),
    }
    separate = {name: evaluate_ground_truth(queries, gallery, o, j, n_bootstrap=50, block_size=16, backend=backend)
                for name, (o, j) in setups.items()}  # fmt: skip
    products = []
    real_matmul = np.matmul
    monkeypatch.setattr(_engine.np, "matmul", lambda a, b: products.append(a.shape) or real_matmul(a, b))
    shared = evaluate_ground_truth_setups(queries, gallery, setups, n_bootstrap=50, block_size=16, backend=backend)
    monkeypatch.undo()
    if backend == "numba":  # the torch path multiplies with the @ operator; same structure, one product per block
        assert len(products) == -(-len(queries) // 16)
    assert list(shared) == list(setups)
    for name, ev in shared.items():
        for key in ev.per_query:
            np.testing.assert_array_equal(ev.per_query[key], separate[name].per_query[key], err_msg=f"{name} {key}")
        assert ev.metrics == separate[name].metrics and ev.config == separate[name].config
        np.testing.assert_array_equal(ev.pr_curve, separate[name].pr_curve)
    assert shared["hard"].map != shared["medium"].map


def test_setup_errors_name_the_setup_and_shared_blocks_need_one_database():
    from retbench.metrics import _engine, evaluate_ground_truth_setups

    queries, gallery, ok, junk = _ground_truth_problem(5, n_queries=4)
    bad = [np.array([0]), np.array([1]), np.array([2]), np.array([len(gallery)])]
    with pytest.raises(ValueError, match=r"ok\[3\] of setup 'hard' has an index outside \[0, 300\)"):
        evaluate_ground_truth_setups(queries, gallery, {"easy": (ok, junk), "hard": (bad, junk)})
    with pytest.raises(ValueError, match="setups must name at least one"):
        evaluate_ground_truth_setups(queries, gallery, {})
    a = _engine.RankingProblem.with_lists(queries, gallery, ok, junk)
    b = _engine.RankingProblem.with_lists(queries, gallery.copy(), ok, junk)
    with pytest.raises(ValueError, match="same queries and database"):
        next(_engine.iter_shared_blocks([a, b], block_size=2, backend="numba", levels=np.linspace(0, 1, 3), k_max=1))
