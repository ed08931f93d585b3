"""End to end through the command line, on tiny generated images (random-init or weightless encoders)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retbench.cli import main
from tests.conftest import make_dataset, make_image


def run_cli(*args: str) -> int:
    return main([str(a) for a in args])


def read_results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def sklearn_leave_one_out_ap(vectors: np.ndarray, labels: list[str]) -> np.ndarray:
    """The oracle: sklearn's average_precision_score per query over the N-1 others (float64 scores)."""
    from sklearn.metrics import average_precision_score

    labels_arr = np.array(labels)
    scores = vectors.astype(np.float64) @ vectors.astype(np.float64).T
    ap = np.full(len(labels), np.nan)
    for i in range(len(labels)):
        others = np.arange(len(labels)) != i
        relevant = labels_arr[others] == labels_arr[i]
        if relevant.any():
            ap[i] = average_precision_score(relevant, scores[i, others])
    return ap


def assert_png(path: Path) -> None:
    assert path.is_file(), path
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 100 and image.height > 100


def test_evaluate_writes_the_full_result_folder(tiny_dataset, tmp_path, cache_dir, capsys):
    out = tmp_path / "out"
    code = run_cli("evaluate", tiny_dataset, "--encoder", "resnet18", "--encoder", "colorhist", "--random-init",
                   "--out", out, "--cache-dir", cache_dir, "--bootstrap", "50", "--workers", "0")  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "| resnet18 |" in printed and "RANDOM weights" in printed

    results = read_results(out)
    assert [(r["dataset"], r["encoder"]) for r in results["runs"]] == [("tiny", "resnet18"), ("tiny", "colorhist")]
    for run in results["runs"]:
        assert run["n_images"] == run["n_queries"] == 12 and len(run["ap"]) == 12
        assert run["map"] == pytest.approx(np.mean(run["ap"]), abs=1e-12)
        for key in ("map", "precision@1", "precision@5", "precision@10", "recall@1", "r_precision", "map@r", "mrr",
                    "ndcg@10", "map_ci95"):  # fmt: skip
            assert key in run["metrics"], key
        assert set(run["per_class"]) == {"red", "green", "blue"}
        assert len(run["pr_curve"]["recall"]) == 101
        config = run["config"]
        assert config["encoder"]["preprocess"]["mean"] and config["extraction"]["batch_size"] == 32
        assert results["versions"]["torch"] and results["versions"]["retbench"]
        assert "evaluate_s" in run["timings"] and "extract_s" in run["timings"]
    kinds = {r["encoder"]: r["config"]["encoder"]["weights"]["kind"] for r in results["runs"]}
    assert kinds == {"resnet18": "random-init", "colorhist": "none"}
    assert results["comparisons"][0]["encoder_a"] == "resnet18"
    # colour classes: the histogram separates them perfectly
    assert results["runs"][1]["map"] == pytest.approx(1.0)

    table = (out / "table.md").read_text()
    assert "| encoder | tiny |" in table and "| colorhist |" in table and "±" in table
    csv = (out / "table.csv").read_text().splitlines()
    assert csv[0].startswith("encoder,dataset,map") and len(csv) == 3
    assert_png(out / "pr_tiny.png")
    assert_png(out / "retrievals_tiny_resnet18.png")
    assert_png(out / "retrievals_tiny_colorhist.png")


def test_ap_matches_sklearn_on_the_written_embeddings(tiny_dataset, tmp_path, cache_dir):
    run_cli("embed", tiny_dataset, "--encoder", "resnet18", "--random-init", "--out", tmp_path / "f.npy",
            "--cache-dir", cache_dir, "--workers", "0")  # fmt: skip
    vectors = np.load(tmp_path / "f.npy")
    sidecar = json.loads((tmp_path / "f.json").read_text())
    assert vectors.shape == (12, 512) and vectors.dtype == np.float32
    assert sidecar["encoder"]["weights"]["kind"] == "random-init"
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-6)

    out = tmp_path / "out"
    run_cli("evaluate", tiny_dataset, "--encoder", "resnet18", "--random-init", "--out", out, "--cache-dir", cache_dir,
            "--bootstrap", "0", "--no-figures")  # fmt: skip
    labels = [line.split("\t")[1] for line in (tiny_dataset / "list_of_images.txt").read_text().splitlines()]
    expected = sklearn_leave_one_out_ap(vectors, labels)
    np.testing.assert_allclose(read_results(out)["runs"][0]["ap"], expected, atol=1e-4)


def test_rerun_replaces_never_appends(tiny_dataset, tmp_path, cache_dir):
    out = tmp_path / "out"
    run_cli("evaluate", tiny_dataset, "--encoder", "resnet18", "--encoder", "colorhist", "--random-init", "--out", out,
            "--cache-dir", cache_dir, "--bootstrap", "0")  # fmt: skip
    (out / "mine.txt").write_text("the user's own file")
    run_cli("evaluate", tiny_dataset, "--encoder", "colorhist", "--out", out, "--cache-dir", cache_dir, "--bootstrap", "0")
    results = read_results(out)
    assert [r["encoder"] for r in results["runs"]] == ["colorhist"]
    assert not (out / "retrievals_tiny_resnet18.png").exists()
    assert "resnet18" not in (out / "table.md").read_text()
    assert (out / "mine.txt").exists()


def test_duplicate_image_in_two_classes_is_excluded_by_index_not_by_rank(tmp_path, cache_dir):
    root = make_dataset(tmp_path / "dup", per_class=3)
    shutil.copy(root / "images" / "red" / "000.png", root / "images" / "blue" / "copy.png")
    with open(root / "list_of_images.txt", "a") as handle:
        handle.write("blue/copy.png\tblue\n")
    out = tmp_path / "out"
    assert run_cli("evaluate", root, "--encoder", "colorhist", "--out", out, "--cache-dir", cache_dir,
                   "--bootstrap", "0") == 0  # fmt: skip
    run_cli("embed", root, "--encoder", "colorhist", "--out", tmp_path / "e.npy", "--cache-dir", cache_dir)
    vectors = np.load(tmp_path / "e.npy")
    labels = [line.split("\t")[1] for line in (root / "list_of_images.txt").read_text().splitlines()]
    ap = read_results(out)["runs"][0]["ap"]
    expected = sklearn_leave_one_out_ap(vectors, labels)
    np.testing.assert_allclose(ap, expected, atol=1e-6)
    # the red original's identical twin (label blue) ranks first among the others, so its AP is below 1
    assert ap[0] < 1.0


def test_single_image_class_gives_null_ap_left_out_of_the_map(tmp_path, cache_dir, capsys):
    root = make_dataset(tmp_path / "single", per_class=3)
    make_image(root / "images" / "lonely.png", (10, 10, 10), 77)
    with open(root / "list_of_images.txt", "a") as handle:
        handle.write("lonely.png\tlonely\n")
    out = tmp_path / "out"
    run_cli("evaluate", root, "--encoder", "colorhist", "--out", out, "--cache-dir", cache_dir, "--bootstrap", "0")
    run = read_results(out)["runs"][0]
    assert run["ap"][-1] is None
    assert run["n_queries_without_relevant"] == 1 and run["n_queries"] == 10
    assert run["map"] == pytest.approx(np.mean(run["ap"][:-1]))
    assert "have no relevant item" in capsys.readouterr().out


def test_bad_image_fails_naming_it_or_is_skipped_and_listed(tmp_path, cache_dir, capsys):
    root = make_dataset(tmp_path / "bad", per_class=3)
    (root / "images" / "green" / "001.png").write_bytes(b"broken")
    out = tmp_path / "out"
    assert run_cli("evaluate", root, "--encoder", "colorhist", "--out", out, "--cache-dir", cache_dir) == 2
    err = capsys.readouterr().err
    assert "list_of_images.txt:5: green/001.png" in err and "--skip-bad" in err

    assert run_cli("evaluate", root, "--encoder", "colorhist", "--out", out, "--cache-dir", cache_dir,
                   "--skip-bad", "--bootstrap", "0") == 0  # fmt: skip
    run = read_results(out)["runs"][0]
    assert [s["path"] for s in run["skipped"]] == ["green/001.png"]
    assert run["n_images"] == 8 and len(run["ap"]) == 9 and run["ap"][4] is None


def test_bad_images_of_every_dataset_are_named_in_one_error(tmp_path, cache_dir, capsys):
    first = make_dataset(tmp_path / "first", per_class=3)
    second = make_dataset(tmp_path / "second", per_class=3)
    (first / "images" / "green" / "001.png").write_bytes(b"broken")
    (second / "images" / "red" / "000.png").write_bytes(b"broken")
    assert run_cli("evaluate", first, second, "--encoder", "colorhist", "--out", tmp_path / "out",
                   "--cache-dir", cache_dir) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "dataset 'first'" in err and "green/001.png" in err
    assert "dataset 'second'" in err and "red/000.png" in err


def test_bring_your_own_embeddings_needs_no_images(tmp_path):
    rng = np.random.default_rng(0)
    labels = ["a"] * 5 + ["b"] * 5
    vectors = rng.normal(size=(10, 16)).astype(np.float32)
    vectors[5:] += 3.0  # class b apart from class a (not normalised: retbench normalises)
    np.save(tmp_path / "feats.npy", vectors)
    (tmp_path / "list.txt").write_text("".join(f"nowhere/{i}.jpg\t{label}\n" for i, label in enumerate(labels)))
    out = tmp_path / "out"
    assert run_cli("evaluate", "--embeddings", tmp_path / "feats.npy", "--labels", tmp_path / "list.txt",
                   "--out", out, "--bootstrap", "0") == 0  # fmt: skip
    run = read_results(out)["runs"][0]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    np.testing.assert_allclose(run["ap"], sklearn_leave_one_out_ap(unit, labels), atol=1e-5)
    assert run["encoder"] == "feats"
    assert (out / "pr_" f"{tmp_path.name}.png").exists() or list(out.glob("pr_*.png"))
    assert not list(out.glob("retrievals_*.png"))  # no images, no grids


def test_bring_your_own_embeddings_errors(tmp_path, capsys):
    np.save(tmp_path / "f.npy", np.ones((3, 4), dtype=np.float32))
    (tmp_path / "list.txt").write_text("x\ta\ny\ta\n")
    assert run_cli("evaluate", "--embeddings", tmp_path / "f.npy", "--out", tmp_path / "o") == 2
    assert "--embeddings needs --labels" in capsys.readouterr().err
    assert run_cli("evaluate", "--embeddings", tmp_path / "f.npy", "--labels", tmp_path / "list.txt",
                   "--out", tmp_path / "o") == 2  # fmt: skip
    assert "has 3 rows but --labels" in capsys.readouterr().err
    np.save(tmp_path / "z.npy", np.zeros((2, 4), dtype=np.float32))
    assert run_cli("evaluate", "--embeddings", tmp_path / "z.npy", "--labels", tmp_path / "list.txt",
                   "--out", tmp_path / "o") == 2  # fmt: skip
    assert "non-finite or all zero" in capsys.readouterr().err


def test_user_errors_exit_2_with_a_message(tiny_dataset, tmp_path, capsys):
    assert run_cli("evaluate", tiny_dataset, "--encoder", "resnet43", "--out", tmp_path / "o") == 2
    assert "Did you mean" in capsys.readouterr().err
    assert run_cli("evaluate", tiny_dataset, "--encoder", "resnet18", "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "--weights FILE" in err and "--random-init" in err
    assert run_cli("evaluate", tiny_dataset, "--encoder", "resnet18", "--encoder", "colorhist", "--weights", "w.pth",
                   "--out", tmp_path / "o") == 2  # fmt: skip
    assert "--weights ENCODER=FILE" in capsys.readouterr().err


def test_encoders_command(capsys):
    assert run_cli("encoders") == 0
    out = capsys.readouterr().out
    for name in ("resnet18", "resnet34", "dinov2_vits14", "clip_vitb32", "efficientnet_lite0", "colorhist"):
        assert name in out
    assert run_cli("encoders", "*dino*") == 0
    assert capsys.readouterr().out.count("\n") == 2
