"""What the report picks: saved retrievals against a full sort, and the pure selections on toy cases."""

from __future__ import annotations

import numpy as np
import pytest

from retbench.report import report_data
from retbench.report.selection import ap_array, best_and_worst, confused_pairs, disagreements
from tests.unit.report.report_fixtures import unit_rows


def full_sort_reference(vectors: np.ndarray, k: int, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    """The oracle: the whole score matrix, the query masked, a stable sort (ties by ascending index)."""
    scores = vectors.astype(np.float32) @ vectors.astype(np.float32).T
    n = len(vectors)
    index = np.empty((n, k), dtype=np.int64)
    for q in range(n):
        others = np.array([j for j in range(n) if j != q])
        key = -scores[q, others] if largest else scores[q, others]
        index[q] = others[np.argsort(key, kind="stable")[:k]]
    return np.take_along_axis(scores, index, axis=1), index


@pytest.mark.parametrize("largest", [True, False])
def test_saved_retrievals_equal_a_full_stable_sort(largest):
    vectors = unit_rows(40, seed=3)
    vectors[7] = vectors[3]  # an exact duplicate: ties must go by index
    lines = np.arange(40) * 2 + 1  # rows map to other list lines (skipped images)
    saved = report_data.compute_retrievals(vectors, lines, top_k=10, worst_k=5)
    k = 10 if largest else 5
    scores, index = full_sort_reference(vectors, k, largest)
    key = "top" if largest else "worst"
    np.testing.assert_array_equal(saved[f"{key}_index"], lines[index])
    np.testing.assert_allclose(saved[f"{key}_score"], scores, atol=1e-6)
    np.testing.assert_array_equal(saved["query"], lines)
    assert not (saved["top_index"] == saved["query"][:, None]).any()  # the query never retrieves itself


def test_retrievals_cap_k_and_survive_tiny_sets(tmp_path):
    two = report_data.compute_retrievals(unit_rows(3), np.arange(3), top_k=10, worst_k=5)
    assert two["top_index"].shape == (3, 2) and two["worst_index"].shape == (3, 2)
    one = report_data.compute_retrievals(unit_rows(1), np.arange(1))
    assert one["top_index"].shape == (1, 0)
    relative = report_data.save_retrievals(tmp_path, "d s", "timm:a/b", two)
    assert relative == "data/retrievals_d-s_timm-a-b.npz"
    loaded = report_data.load_retrievals(tmp_path, relative)
    np.testing.assert_array_equal(loaded.top_index, two["top_index"])
    assert loaded.row_of_line == {0: 0, 1: 1, 2: 2}
    assert report_data.load_retrievals(tmp_path, "data/missing.npz") is None


def test_best_and_worst_skip_nan_and_break_ties_by_line():
    ap = np.array([0.5, np.nan, 1.0, 0.2, 1.0, 0.2, 0.7])
    best, worst = best_and_worst(ap, 3)
    assert best == [2, 4, 6]
    assert worst == [3, 5, 0]
    assert best_and_worst(ap, 4) == ([2, 4, 6, 0], [3, 5])  # never the same query twice
    assert best_and_worst(np.ones(12), 5) == ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9])
    assert best_and_worst(np.array([np.nan, np.nan]), 5) == ([], [])


def test_ap_array_turns_null_into_nan():
    assert np.isnan(ap_array([0.5, None])[1]) and ap_array([0.5, None])[0] == 0.5


def test_disagreements_order_by_difference_then_line():
    a = np.array([0.9, 0.5, np.nan, 0.1, 0.8, 0.3])
    b = np.array([0.1, 0.5, 0.4, 0.6, 0.0, 0.8])
    a_better, b_better = disagreements(a, b, 5)
    assert a_better == [0, 4]  # +0.8, +0.8: tie broken by line
    assert b_better == [3, 5]  # -0.5, -0.5
    assert disagreements(a, b, 1) == ([0], [3])


def test_confused_pairs_hand_worked():
    # lines 0,1 = cat; 2,3 = dog; 4 = fox (no relevant image: it has no slots). Each query has 1 relevant
    # image, so only its first retrieval counts (R = 1).
    labels = ["cat", "cat", "dog", "dog", "fox"]
    query = np.arange(5)
    top_index = np.array([[2, 1], [0, 3], [0, 4], [1, 2], [2, 3]])
    top_score = np.array([[0.9, 0.8], [0.7, 0.6], [0.95, 0.5], [0.4, 0.3], [0.6, 0.5]], dtype=np.float32)
    pairs = confused_pairs(labels, query, top_index, top_score, n=10)
    assert [(p.a, p.b) for p in pairs] == [("cat", "dog")]  # dog -> fox sits in slot 2: not counted
    cat_dog = pairs[0]
    assert (cat_dog.a_to_b, cat_dog.b_to_a, cat_dog.slots_a, cat_dog.slots_b) == (1, 2, 2, 2)
    assert cat_dog.rate == pytest.approx(3 / 4) and cat_dog.rate_ab == pytest.approx(0.5) and cat_dog.rate_ba == 1.0
    assert cat_dog.example_ab == (0, 2, pytest.approx(0.9))
    # dog -> cat: line 2 retrieving line 0 (0.95) is the cat -> dog example seen backwards; the next one is shown
    assert cat_dog.example_ba == (3, 1, pytest.approx(0.4))
    assert confused_pairs(labels, query, top_index[:, :0], top_score[:, :0]) == []


def test_confused_pairs_count_at_most_k_slots_and_order_ties_by_label():
    labels = ["a"] * 4 + ["b"] * 4 + ["c"] * 4  # R = 3, capped at k = 2
    query = np.arange(12)
    top_index = np.array([[4, 1]] * 4 + [[8, 5]] * 4 + [[0, 9]] * 4)
    top_score = np.ones((12, 2), dtype=np.float32)
    pairs = confused_pairs(labels, query, top_index, top_score)
    assert [(p.a, p.b, p.a_to_b, p.b_to_a, p.slots_a) for p in pairs] == [
        ("a", "b", 4, 0, 8), ("a", "c", 0, 4, 8), ("b", "c", 4, 0, 8)]  # fmt: skip
    assert all(p.rate == pytest.approx(4 / 16) for p in pairs)
    assert confused_pairs(labels, query, top_index, top_score, n=1)[0].b == "b"


def test_ground_truth_setups_share_one_search_and_equal_separate_ones():
    # Setups with different junk sizes: the shared search is deeper than each setup's own, which must
    # not change any list (the deeper ranking keeps the shorter one as its prefix); duplicates tie.
    rng = np.random.default_rng(4)
    gallery, queries = unit_rows(50, seed=5), unit_rows(4, seed=6)
    gallery[9] = gallery[2]
    setups = {}
    for name, n_junk in (("easy", 3), ("medium", 0), ("hard", 20)):
        ok = [rng.choice(50, 6, replace=False) for _ in range(4)]
        junk = [rng.choice(50, n_junk, replace=False) for _ in range(4)]
        setups[name] = (ok, junk)
    lines = np.arange(50) + 100
    shared = report_data.compute_ground_truth_retrievals(queries, np.arange(4), gallery, lines, setups,
                                                         top_k=10, worst_k=5)  # fmt: skip
    assert list(shared) == ["easy", "medium", "hard"]
    for name, (ok, junk) in setups.items():
        alone = report_data.compute_gallery_retrievals(queries, np.arange(4), gallery, lines, top_k=10, worst_k=5,
                                                       ok=ok, junk=junk)  # fmt: skip
        assert shared[name].keys() == alone.keys()
        for key in alone:
            np.testing.assert_array_equal(shared[name][key], alone[key], err_msg=f"{name} {key}")
        for q in range(4):  # what it holds: the best kept items, junk never among them
            kept = np.setdiff1d(np.arange(50), junk[q])
            order = kept[np.argsort(-(gallery[kept] @ queries[q]), kind="stable")]
            np.testing.assert_array_equal(shared[name]["top_index"][q], lines[order[:10]])
            np.testing.assert_array_equal(shared[name]["top_relevant"][q], np.isin(order[:10], ok[q]))
    with pytest.raises(ValueError, match="setups must name at least one"):
        report_data.compute_ground_truth_retrievals(queries, np.arange(4), gallery, lines, {})
