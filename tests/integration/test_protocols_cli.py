"""The evaluation protocols through the command line: --ap-definition, query/gallery, per-query ground truth.

Oracles: sklearn's average_precision_score, a plain port of revisitop's compute_ap / compute_map
(written here, independent of retbench), and ok/junk lists built by hand for each setup.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import retbench
from retbench.cli import main
from retbench.datasets import Dataset
from tests.conftest import make_dataset, make_image

# two classes of the same colour that a colour histogram confuses, and a blue: APs strictly between 0 and 1
CONFUSABLE = {"red": (200, 40, 40), "rose": (200, 40, 40), "blue": (40, 60, 200)}


def run_cli(*args) -> int:
    return main([str(a) for a in args])


def read_results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def sklearn_ap(relevant: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(relevant, scores)) if relevant.any() else np.nan


def revisitop_ap(relevant: np.ndarray, scores: np.ndarray, junk: np.ndarray | None = None) -> float:
    """revisitop's compute_map for one query: rank by score, junk positions removed, then compute_ap's trapezoids."""
    order = np.argsort(-scores, kind="stable")
    ranked_relevant = relevant[order]
    ranked_junk = junk[order] if junk is not None else np.zeros_like(ranked_relevant)
    positions = np.flatnonzero(ranked_relevant & ~ranked_junk)
    n_relevant = len(positions)
    if n_relevant == 0:
        return np.nan
    junk_positions = np.flatnonzero(ranked_junk)
    positions = positions - np.searchsorted(junk_positions, positions)  # junk before a positive shifts it up
    ap = 0.0
    for j, rank in enumerate(positions):
        precision_0 = 1.0 if rank == 0 else j / rank
        precision_1 = (j + 1) / (rank + 1)
        ap += (precision_0 + precision_1) / (2.0 * n_relevant)
    return ap


def list_lines(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split("\t")) for line in path.read_text(encoding="utf-8").splitlines() if line]


def embed_paths(root: Path, paths: list[str], cache_dir: Path) -> np.ndarray:
    dataset = Dataset(root, root.name, tuple(paths), tuple("x" for _ in paths))
    return retbench.embed(dataset, "colorhist", cache_dir=cache_dir)


def assert_report(out: Path, *, galleries: bool) -> str:
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="map-table"' in page
    if galleries:
        assert 'class="qrow"' in page and "<img" in page and "No galleries" not in page
    else:
        assert "evaluated without their images" in page and "<img" not in page
    return page


# --- --ap-definition ------------------------------------------------------------------------------------------


def test_trapezoid_ap_definition_bring_your_own(tmp_path):
    # the oracles on docs/metrics.md's worked example: relevant at ranks 1 and 3 of 5
    toy_relevant, toy_scores = np.array([1, 0, 1, 0, 0], dtype=bool), np.array([5.0, 4, 3, 2, 1])
    assert sklearn_ap(toy_relevant, toy_scores) == pytest.approx(0.8333, abs=1e-4)
    assert revisitop_ap(toy_relevant, toy_scores) == pytest.approx(0.7917, abs=1e-4)
    rng = np.random.default_rng(1)
    labels = ["a"] * 6 + ["b"] * 5 + ["c"] * 4
    vectors = rng.normal(size=(len(labels), 6)).astype(np.float32)
    np.save(tmp_path / "f.npy", vectors)
    (tmp_path / "list.txt").write_text("".join(f"x{i}.jpg\t{label}\n" for i, label in enumerate(labels)))
    outs = {}
    for definition in ("sklearn", "trapezoid"):
        outs[definition] = tmp_path / definition
        assert run_cli("evaluate", "--embeddings", tmp_path / "f.npy", "--labels", tmp_path / "list.txt",
                       "--out", outs[definition], "--bootstrap", "0", "--ap-definition", definition) == 0  # fmt: skip
    scores = unit(vectors) @ unit(vectors).T
    labels_arr = np.array(labels)
    expected = {"sklearn": [], "trapezoid": []}
    for q in range(len(labels)):
        others = np.arange(len(labels)) != q
        relevant = labels_arr[others] == labels_arr[q]
        expected["sklearn"].append(sklearn_ap(relevant, scores[q, others]))
        expected["trapezoid"].append(revisitop_ap(relevant, scores[q, others]))
    for definition, out in outs.items():
        run = read_results(out)["runs"][0]
        np.testing.assert_allclose(run["ap"], expected[definition], atol=1e-6)
        assert run["config"]["evaluation"]["ap_definition"] == definition
        assert run["config"]["protocol"] == "leave-one-out"
    trapezoid = np.array(read_results(outs["trapezoid"])["runs"][0]["ap"])
    assert np.abs(trapezoid - np.array(expected["sklearn"])).max() > 1e-3  # the definitions really differ here
    assert "trapezoid rule of revisitop" in (outs["trapezoid"] / "table.md").read_text()
    assert (outs["trapezoid"] / "table.csv").read_text().splitlines()[1].endswith(",leave-one-out,trapezoid")
    assert "average_precision_score" in (outs["sklearn"] / "table.md").read_text()


def test_trapezoid_ap_definition_dataset_flow(tmp_path, cache_dir):
    root = make_dataset(tmp_path / "conf", per_class=4, classes=CONFUSABLE)
    out = tmp_path / "out"
    assert run_cli("evaluate", root, "--encoder", "colorhist", "--ap-definition", "trapezoid", "--out", out,
                   "--cache-dir", cache_dir, "--bootstrap", "0", "--no-figures") == 0  # fmt: skip
    entries = list_lines(root / "list_of_images.txt")
    vectors = unit(embed_paths(root, [p for p, _ in entries], cache_dir))
    labels = np.array([label for _, label in entries])
    scores = vectors @ vectors.T
    expected = []
    for q in range(len(labels)):
        others = np.arange(len(labels)) != q
        expected.append(revisitop_ap(labels[others] == labels[q], scores[q, others]))
    run = read_results(out)["runs"][0]
    np.testing.assert_allclose(run["ap"], expected, atol=1e-5)
    assert 0.3 < run["map"] < 0.99 and run["config"]["evaluation"]["ap_definition"] == "trapezoid"


# --- query / gallery --------------------------------------------------------------------------------------------


def split_lists(root: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Every third image a query, the rest the gallery, plus a query of a class absent from the gallery."""
    entries = list_lines(root / "list_of_images.txt")
    make_image(root / "images" / "lonely.png", (10, 200, 200), 99)
    queries = [e for i, e in enumerate(entries) if i % 3 == 0] + [("lonely.png", "cyan")]
    gallery = [e for i, e in enumerate(entries) if i % 3 != 0]
    q_file, g_file = tmp_path / "queries.txt", tmp_path / "gallery.txt"
    q_file.write_text("".join(f"{p}\t{label}\n" for p, label in queries))
    g_file.write_text("".join(f"{p}\t{label}\n" for p, label in gallery))
    return q_file, g_file


def query_gallery_oracle(q_vectors, q_labels, g_vectors, g_labels) -> list[float]:
    scores = unit(q_vectors) @ unit(g_vectors).T
    g_labels = np.array(g_labels)
    return [sklearn_ap(g_labels == label, scores[q]) for q, label in enumerate(q_labels)]


def test_query_gallery_dataset_flow_matches_sklearn(tmp_path, cache_dir):
    root = make_dataset(tmp_path / "conf", per_class=5, classes=CONFUSABLE)
    q_file, g_file = split_lists(root, tmp_path)
    out = tmp_path / "out"
    assert run_cli("evaluate", root, "--encoder", "colorhist", "--encoder", "resnet18", "--random-init",
                   "--queries", q_file, "--gallery", g_file, "--out", out, "--cache-dir", cache_dir,
                   "--bootstrap", "30", "--workers", "0") == 0  # fmt: skip
    queries, gallery = list_lines(q_file), list_lines(g_file)
    results = read_results(out)
    run = results["runs"][0]
    assert (run["dataset"], run["encoder"]) == ("conf", "colorhist")
    assert run["n_queries"] == len(queries) == 6 and run["n_images"] == len(gallery) == 10 and len(run["ap"]) == 6
    assert run["config"]["protocol"] == "query/gallery" and run["config"]["evaluation"]["protocol"] == "query/gallery"
    assert run["config"]["protocol_inputs"]["queries_file"] == str(q_file)
    expected = query_gallery_oracle(embed_paths(root, [p for p, _ in queries], cache_dir), [lab for _, lab in queries],
                                    embed_paths(root, [p for p, _ in gallery], cache_dir), [lab for _, lab in gallery])
    assert run["ap"][-1] is None and np.isnan(expected[-1])  # its class is not in the gallery
    np.testing.assert_allclose(run["ap"][:-1], expected[:-1], atol=1e-5)
    assert run["map"] == pytest.approx(np.nanmean(expected), abs=1e-5) and 0.3 < run["map"] < 0.99
    assert run["n_queries_without_relevant"] == 1 and "map_ci95" in run["metrics"]
    assert set(run["per_class"]) == {"red", "rose", "blue", "cyan"}

    # both encoders ranked the same queries: a paired comparison, in results.json and table.md
    assert [(c["encoder_a"], c["encoder_b"], c["n"]) for c in results["comparisons"]] == [("colorhist", "resnet18", 5)]
    assert results["comparisons"][0]["sign_test_p_value_text"]
    table = (out / "table.md").read_text()
    assert "query/gallery" in table and "±" in table and "| conf | colorhist | resnet18 |" in table

    # report sidecars: queries and gallery items, retrievals indexing gallery lines, relevance saved
    refs = run["report_data"]
    q_items = json.loads((out / refs["items"]).read_text())
    g_items = json.loads((out / refs["gallery_items"]).read_text())
    assert q_items["paths"] == [p for p, _ in queries] and g_items["paths"] == [p for p, _ in gallery]
    with np.load(out / refs["retrievals"]) as saved:
        assert saved["top_index"].shape == (6, 10) and saved["top_index"].max() < len(gallery)
        g_labels = np.array([lab for _, lab in gallery])
        q_labels = np.array([lab for _, lab in queries])
        np.testing.assert_array_equal(saved["top_relevant"], g_labels[saved["top_index"]] == q_labels[:, None])
    page = assert_report(out, galleries=True)
    assert "Query/gallery" in page and page.count('class="qrow"') >= 2 * 2  # best and worst, per encoder
    (out / "report.html").unlink()
    assert run_cli("report", out, "--cache-dir", cache_dir) == 0  # rebuilt from the folder alone
    assert (out / "report.html").read_text(encoding="utf-8") == page
    for encoder in ("colorhist", "resnet18"):
        assert (out / f"retrievals_conf_{encoder}.png").is_file()
    assert (out / "pr_conf.png").is_file()


def test_query_gallery_bring_your_own_matches_sklearn(tmp_path):
    rng = np.random.default_rng(4)
    q_labels = ["a", "b", "c", "a", "z"]
    g_labels = ["a", "a", "b", "b", "b", "c", "c", "a"]
    q, g = rng.normal(size=(5, 6)).astype(np.float32), rng.normal(size=(8, 6)).astype(np.float32)
    np.save(tmp_path / "q.npy", q)
    np.save(tmp_path / "g.npy", g)
    (tmp_path / "q.txt").write_text("".join(f"q{i}.jpg\t{label}\n" for i, label in enumerate(q_labels)))
    (tmp_path / "g.txt").write_text("".join(f"g{i}.jpg\t{label}\n" for i, label in enumerate(g_labels)))
    out = tmp_path / "out"
    assert run_cli("evaluate", "--embeddings", tmp_path / "q.npy", "--labels", tmp_path / "q.txt",
                   "--gallery-embeddings", tmp_path / "g.npy", "--gallery-labels", tmp_path / "g.txt",
                   "--out", out, "--bootstrap", "10") == 0  # fmt: skip
    run = read_results(out)["runs"][0]
    expected = query_gallery_oracle(q, q_labels, g, g_labels)
    assert run["ap"][4] is None
    np.testing.assert_allclose(run["ap"][:4], expected[:4], atol=1e-6)
    assert run["n_queries"] == 5 and run["n_images"] == 8 and run["config"]["protocol"] == "query/gallery"
    assert not list(out.glob("retrievals_*.png"))  # no images, no grids
    assert_report(out, galleries=False)


def test_query_gallery_errors(tmp_path, cache_dir, capsys):
    root = make_dataset(tmp_path / "d", per_class=3)
    entries = list_lines(root / "list_of_images.txt")
    (tmp_path / "q.txt").write_text(f"{entries[0][0]}\t{entries[0][1]}\n{entries[4][0]}\t{entries[4][1]}\n")
    (tmp_path / "g.txt").write_text("".join(f"{p}\t{label}\n" for p, label in entries[3:]))
    common = ["--encoder", "colorhist", "--out", tmp_path / "o", "--cache-dir", cache_dir]
    assert run_cli("evaluate", root, "--queries", tmp_path / "q.txt", "--gallery", tmp_path / "g.txt", *common) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'q.txt'}:2: '{entries[4][0]}' is also in the gallery ({tmp_path / 'g.txt'}:2)" in err
    assert "1 image(s) in both lists" in err and f"'{entries[0][0]}' is also" not in err
    assert run_cli("evaluate", root, "--queries", tmp_path / "q.txt", *common) == 2
    assert "--queries and --gallery go together" in capsys.readouterr().err
    assert run_cli("evaluate", root, root, "--queries", tmp_path / "q.txt", "--gallery", tmp_path / "g.txt",
                   *common) == 2  # fmt: skip
    assert "evaluates one dataset: give one DATASET_DIR (got 2" in capsys.readouterr().err
    (tmp_path / "bad.txt").write_text("red/000.png red\n")
    assert run_cli("evaluate", root, "--queries", tmp_path / "bad.txt", "--gallery", tmp_path / "g.txt", *common) == 2
    assert f"{tmp_path / 'bad.txt'}:1: expected 'relative/path<TAB>label'" in capsys.readouterr().err

    np.save(tmp_path / "q.npy", np.ones((2, 3), dtype=np.float32))
    np.save(tmp_path / "g.npy", np.ones((9, 3), dtype=np.float32))
    assert run_cli("evaluate", "--embeddings", tmp_path / "q.npy", "--labels", tmp_path / "q.txt",
                   "--gallery-embeddings", tmp_path / "g.npy", "--gallery-labels", tmp_path / "g.txt",
                   "--out", tmp_path / "o") == 2  # fmt: skip
    assert "is also in the gallery" in capsys.readouterr().err
    assert run_cli("evaluate", "--embeddings", tmp_path / "q.npy", "--labels", tmp_path / "q.txt",
                   "--gallery-embeddings", tmp_path / "g.npy", "--out", tmp_path / "o") == 2  # fmt: skip
    assert "--gallery-embeddings G.npy and --gallery-labels G.txt go together" in capsys.readouterr().err
    assert run_cli("evaluate", root, *common, "--gallery-embeddings", tmp_path / "g.npy") == 2
    assert "need(s) --embeddings" in capsys.readouterr().err


def test_query_gallery_unreadable_images_fail_or_are_skipped_per_list(tmp_path, cache_dir, capsys):
    root = make_dataset(tmp_path / "d", per_class=4, classes=CONFUSABLE)
    q_file, g_file = split_lists(root, tmp_path)
    queries, gallery = list_lines(q_file), list_lines(g_file)
    (root / "images" / queries[1][0]).write_bytes(b"not an image")
    (root / "images" / gallery[2][0]).write_bytes(b"not an image")
    args = ["evaluate", root, "--encoder", "colorhist", "--queries", q_file, "--gallery", g_file, "--out", tmp_path / "o",
            "--cache-dir", cache_dir, "--bootstrap", "0", "--no-figures"]  # fmt: skip
    assert run_cli(*args) == 2
    err = capsys.readouterr().err  # one error naming the bad images of both lists
    assert f"{q_file}:2: {queries[1][0]}" in err and f"{g_file}:3: {gallery[2][0]}" in err
    assert run_cli(*args, "--skip-bad") == 0
    run = read_results(tmp_path / "o")["runs"][0]
    assert [(s["list"], s["path"]) for s in run["skipped"]] == [("queries", queries[1][0]), ("gallery", gallery[2][0])]
    assert run["ap"][1] is None and len(run["ap"]) == len(queries) and run["n_images"] == len(gallery) - 1
    kept_q = [e for i, e in enumerate(queries) if i != 1]
    kept_g = [e for i, e in enumerate(gallery) if i != 2]
    expected = query_gallery_oracle(embed_paths(root, [p for p, _ in kept_q], cache_dir), [lab for _, lab in kept_q],
                                    embed_paths(root, [p for p, _ in kept_g], cache_dir), [lab for _, lab in kept_g])
    got = [v for i, v in enumerate(run["ap"]) if i != 1]
    np.testing.assert_allclose([np.nan if v is None else v for v in got], expected, atol=1e-5)
    with np.load(tmp_path / "o" / run["report_data"]["retrievals"]) as saved:
        assert 1 not in saved["query"] and 2 not in saved["top_index"]  # list lines, the skipped ones absent


# --- ground truth (Revisited Oxford / Paris) ------------------------------------------------------------------

IMLIST = ["red_0", "red_1", "red_2", "rose_0", "rose_1", "blue_0", "blue_1", "blue_2"]
QIMLIST = ["q_red", "q_rose", "q_blue"]
GND = [
    {"easy": [0, 1], "hard": [2, 3], "junk": [4], "bbx": [10.5, 5.5, 70.5, 59.4]},
    {"easy": [3], "hard": [], "junk": [0, 1], "bbx": [0.0, 0.0, 50.0, 40.0]},
    {"easy": [], "hard": [5, 6], "junk": [7], "bbx": [1.5, 2.5, 90.5, 77.5]},
]
# ok / junk of each setup, written out by hand from revisitop's evaluate.py (not computed by retbench):
# easy: ok = easy, junk = junk + hard; medium: ok = easy + hard, junk = junk; hard: ok = hard, junk = junk + easy
BY_HAND = {
    "easy": ([[0, 1], [3], []], [[4, 2, 3], [0, 1], [7, 5, 6]]),
    "medium": ([[0, 1, 2, 3], [3], [5, 6]], [[4], [0, 1], [7]]),
    "hard": ([[2, 3], [], [5, 6]], [[4, 0, 1], [0, 1, 3], [7]]),
}


def write_ground_truth(path: Path) -> Path:
    gnd = [{key: np.array(value, dtype=np.float64 if key == "bbx" else np.int64) for key, value in entry.items()}
           for entry in GND]  # fmt: skip
    path.write_bytes(pickle.dumps({"imlist": IMLIST, "qimlist": QIMLIST, "gnd": gnd}))
    return path


def ground_truth_oracle(q_vectors, g_vectors, setup: str, definition: str) -> list[float]:
    scores = unit(q_vectors) @ unit(g_vectors).T
    aps = []
    for q, (ok, junk) in enumerate(zip(*BY_HAND[setup])):
        relevant = np.isin(np.arange(len(IMLIST)), ok)
        removed = np.isin(np.arange(len(IMLIST)), junk)
        if definition == "sklearn":
            keep = ~removed
            aps.append(sklearn_ap(relevant[keep], scores[q, keep]))
        else:
            aps.append(revisitop_ap(relevant & ~removed, scores[q], removed))
    return aps


@pytest.mark.parametrize("definition", ["sklearn", "trapezoid"])
def test_ground_truth_bring_your_own_setups(tmp_path, definition):
    gnd = write_ground_truth(tmp_path / "gnd_toy.pkl")
    rng = np.random.default_rng(7)
    g, q = rng.normal(size=(8, 5)).astype(np.float32), rng.normal(size=(3, 5)).astype(np.float32)
    np.save(tmp_path / "db.npy", g)
    np.save(tmp_path / "queries.npy", q)
    out = tmp_path / "out"
    assert run_cli("evaluate", "--embeddings", tmp_path / "db.npy", "--query-embeddings", tmp_path / "queries.npy",
                   "--ground-truth", gnd, "--out", out, "--bootstrap", "20", "--ap-definition", definition) == 0  # fmt: skip
    runs = read_results(out)["runs"]
    assert [r["dataset"] for r in runs] == ["toy (easy)", "toy (medium)", "toy (hard)"]
    for run, setup in zip(runs, ("easy", "medium", "hard")):
        expected = ground_truth_oracle(q, g, setup, definition)
        assert [v is None for v in run["ap"]] == [bool(np.isnan(v)) for v in expected]
        np.testing.assert_allclose([np.nan if v is None else v for v in run["ap"]], expected, atol=1e-6)
        assert run["n_queries"] == 3 and run["n_images"] == 8 and run["encoder"] == "db"
        assert run["config"]["protocol"] == "ground truth" and run["config"]["protocol_inputs"]["setup"] == setup
        assert run["config"]["evaluation"]["ap_definition"] == definition
    assert np.isnan(ground_truth_oracle(q, g, "easy", definition)[2])  # the empty-ok query really is empty
    # the three setups are ranked in one score pass: one shared time, said so in the report
    assert {r["timings"]["evaluate_s"] for r in runs} == {runs[0]["timings"]["evaluate_s"]}
    assert all(r["timings"]["shared_by"] == ["easy", "medium", "hard"] for r in runs)
    assert "(all 3 setups)" in assert_report(out, galleries=False)
    table = (out / "table.md").read_text()
    assert "| encoder | toy (easy) | toy (medium) | toy (hard) |" in table and "ground truth" in table

    only = tmp_path / "only"
    assert run_cli("evaluate", "--embeddings", tmp_path / "db.npy", "--query-embeddings", tmp_path / "queries.npy",
                   "--ground-truth", gnd, "--setups", "hard", "--name", "roxford5k", "--out", only,
                   "--bootstrap", "0") == 0  # fmt: skip
    assert [r["dataset"] for r in read_results(only)["runs"]] == ["roxford5k (hard)"]


def test_ground_truth_errors(tmp_path, capsys):
    gnd = write_ground_truth(tmp_path / "gnd_toy.pkl")
    np.save(tmp_path / "db.npy", np.ones((7, 3), dtype=np.float32))
    np.save(tmp_path / "q.npy", np.ones((3, 3), dtype=np.float32))
    base = ["evaluate", "--embeddings", tmp_path / "db.npy", "--ground-truth", gnd, "--out", tmp_path / "o"]
    assert run_cli(*base) == 2
    assert "needs --query-embeddings" in capsys.readouterr().err
    assert run_cli(*base, "--query-embeddings", tmp_path / "q.npy") == 2
    assert "has 7 rows but the ground truth" in capsys.readouterr().err
    assert run_cli("evaluate", "--embeddings", tmp_path / "q.npy", "--labels", tmp_path / "x.txt", "--setups", "easy",
                   "--out", tmp_path / "o") == 2  # fmt: skip
    assert "--setups applies to --ground-truth" in capsys.readouterr().err
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(Path("x")))
    assert run_cli("evaluate", "--embeddings", tmp_path / "db.npy", "--query-embeddings", tmp_path / "q.npy",
                   "--ground-truth", tmp_path / "evil.pkl", "--out", tmp_path / "o") == 2  # fmt: skip
    assert "refusing to load" in capsys.readouterr().err
    assert run_cli(*base, "--query-embeddings", tmp_path / "q.npy", "--gallery-labels", tmp_path / "x.txt") == 2
    assert "--ground-truth defines the queries and the gallery itself" in capsys.readouterr().err


def make_revisited_folder(root: Path) -> Path:
    colours = {"red": CONFUSABLE["red"], "rose": CONFUSABLE["rose"], "blue": CONFUSABLE["blue"]}
    for n, name in enumerate(IMLIST + QIMLIST):
        make_image(root / "images" / f"{name}.jpg", colours[name.split("_")[-1 if name.startswith("q_") else 0]], n,
                   size=(96, 80))  # fmt: skip
    return root


def test_ground_truth_dataset_flow_crops_queries_like_revisitop(tmp_path, cache_dir):
    root = make_revisited_folder(tmp_path / "toyds")
    gnd = write_ground_truth(tmp_path / "gnd_toy.pkl")
    out = tmp_path / "out"
    assert run_cli("evaluate", root, "--encoder", "colorhist", "--ground-truth", gnd, "--setups", "easy", "medium",
                   "--out", out, "--cache-dir", cache_dir, "--bootstrap", "0", "--workers", "0") == 0  # fmt: skip
    runs = read_results(out)["runs"]
    assert [r["dataset"] for r in runs] == ["toyds (easy)", "toyds (medium)"]

    # the query crops: revisitop's pil_loader(...).crop(bbx), pixel for pixel
    items = json.loads((out / runs[0]["report_data"]["items"]).read_text())
    crops = []
    for name, entry, rel in zip(QIMLIST, GND, items["paths"]):
        with Image.open(root / "images" / f"{name}.jpg") as image:
            expected = np.asarray(image.convert("RGB").crop(tuple(entry["bbx"])))
        with Image.open(Path(items["images_dir"]) / rel) as saved:
            crops.append(saved.copy())
            np.testing.assert_array_equal(np.asarray(saved.convert("RGB")), expected)
    assert crops[0].size == (60, 53)  # x: round(10.5) = 10, round(70.5) = 70 (half to even); y: 6 .. 59

    crop_root = Path(items["images_dir"]).parent
    q_vectors = retbench.embed(Dataset(crop_root, "q", tuple(items["paths"]), tuple(QIMLIST)), "colorhist",
                               cache_dir=cache_dir)  # fmt: skip
    g_vectors = embed_paths(root, [f"{name}.jpg" for name in IMLIST], cache_dir)
    for run, setup in zip(runs, ("easy", "medium")):
        expected = ground_truth_oracle(q_vectors, g_vectors, setup, "sklearn")
        np.testing.assert_allclose([np.nan if v is None else v for v in run["ap"]], expected, atol=1e-5)
        # junk never shows among the saved retrievals; relevance = the ok list
        with np.load(out / run["report_data"]["retrievals"]) as saved:
            ok, junk = BY_HAND[setup]
            for q in range(3):
                assert not np.isin(saved["top_index"][q], junk[q]).any()
                assert not np.isin(saved["worst_index"][q], junk[q]).any()
                np.testing.assert_array_equal(saved["top_relevant"][q], np.isin(saved["top_index"][q], ok[q]))
                assert saved["n_ranked"][q] == len(IMLIST) - len(set(junk[q]))
        assert (out / f"retrievals_toyds-{setup}_colorhist.png").is_file()
    page = assert_report(out, galleries=True)
    assert "Per-query ground truth" in page

    rerun = tmp_path / "rerun"  # the crops and their embeddings are reused, not remade
    mtimes = [(Path(items["images_dir"]) / rel).stat().st_mtime_ns for rel in items["paths"]]
    assert run_cli("evaluate", root, "--encoder", "colorhist", "--ground-truth", gnd, "--setups", "hard",
                   "--out", rerun, "--cache-dir", cache_dir, "--bootstrap", "0", "--no-report", "--no-figures") == 0  # fmt: skip
    assert [(Path(items["images_dir"]) / rel).stat().st_mtime_ns for rel in items["paths"]] == mtimes
    assert read_results(rerun)["runs"][0]["timings"]["embeddings_from_cache"] is True


def test_ground_truth_dataset_flow_names_missing_images(tmp_path, cache_dir, capsys):
    root = make_revisited_folder(tmp_path / "toyds")
    (root / "images" / "rose_1.jpg").unlink()
    gnd = write_ground_truth(tmp_path / "gnd_toy.pkl")
    assert run_cli("evaluate", root, "--encoder", "colorhist", "--ground-truth", gnd, "--out", tmp_path / "o",
                   "--cache-dir", cache_dir) == 2  # fmt: skip
    assert f"{gnd}: imlist[4]: missing file 'rose_1.jpg'" in capsys.readouterr().err


def test_ground_truth_dataset_flow_names_every_unreadable_query(tmp_path, cache_dir, capsys):
    root = make_revisited_folder(tmp_path / "toyds")
    for name in ("q_red", "q_blue"):
        (root / "images" / f"{name}.jpg").write_bytes(b"not an image")
    gnd = write_ground_truth(tmp_path / "gnd_toy.pkl")
    assert run_cli("evaluate", root, "--encoder", "colorhist", "--ground-truth", gnd, "--out", tmp_path / "o",
                   "--cache-dir", cache_dir, "--skip-bad") == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "2 query image(s) could not be decoded" in err
    assert f"{gnd}: qimlist[0]" in err and f"{gnd}: qimlist[2]" in err and "q_blue.jpg" in err


def test_ground_truth_records_where_it_was_computed(tmp_path, capsys):
    # Ground truth ranks on the --eval-device like the other protocols; a CUDA request on a machine
    # without a GPU is refused up front with a clear message, never silently run on the CPU.
    import torch

    gnd = write_ground_truth(tmp_path / "gnd_toy.pkl")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "db.npy", rng.normal(size=(len(IMLIST), 8)).astype(np.float32))
    np.save(tmp_path / "q.npy", rng.normal(size=(len(QIMLIST), 8)).astype(np.float32))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    args = ["evaluate", "--embeddings", tmp_path / "db.npy", "--query-embeddings", tmp_path / "q.npy",
            "--ground-truth", gnd, "--setups", "easy", "--bootstrap", "0", "--no-report", "--no-figures"]  # fmt: skip
    assert run_cli(*args, "--eval-device", device, "--out", tmp_path / "out") == 0
    config = read_results(tmp_path / "out")["runs"][0]["config"]["evaluation"]
    assert config["device"] == device and config["backend"] == ("torch" if device == "cuda" else "numba")
    if device == "cpu":
        assert run_cli(*args, "--eval-device", "cuda", "--out", tmp_path / "out2") == 2
        assert "--eval-device cuda: torch sees no CUDA GPU on this machine; use --eval-device cpu" in capsys.readouterr().err
