"""report.html through the command line: written by evaluate, rebuilt by `retbench report`, from the folder alone."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
from PIL import Image

from retbench.cli import main
from tests.unit.report.report_fixtures import ACCENT, CJK, XSS, hostile_dataset


def run_cli(*args) -> int:
    return main([str(a) for a in args])


def test_evaluate_writes_the_report_and_report_rebuilds_it_identically(tmp_path, cache_dir, capsys):
    dataset = hostile_dataset(tmp_path / "hostile")
    out = tmp_path / "out"
    encoders = ["--encoder", "colorhist", "--encoder", "resnet18", "--random-init"]
    options = ["--cache-dir", cache_dir, "--bootstrap", "50", "--workers", "0", "--no-figures"]
    assert run_cli("evaluate", dataset.root, *encoders, "--out", out, *options) == 0
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert "report.html" in results["files"]
    for run in results["runs"]:
        refs = run["report_data"]
        assert refs["items"] == "data/items_hostile.json" and (out / refs["retrievals"]).is_file()
        assert refs["top_k"] == 10 and refs["worst_k"] == 5 and run["timings"]["retrievals_s"] >= 0
        with np.load(out / refs["retrievals"]) as saved:
            assert saved["top_index"].shape == (16, 10) and saved["worst_index"].shape == (16, 5)
    items = json.loads((out / "data" / "items_hostile.json").read_text(encoding="utf-8"))
    assert items["labels"] == list(dataset.labels) and items["paths"] == list(dataset.paths)
    assert list((cache_dir / "thumbnails").rglob("*.jpg"))  # thumbnails cached beside the embeddings

    page = (out / "report.html").read_text(encoding="utf-8")
    assert XSS not in re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S) and ACCENT in page and CJK in page
    assert "Random weights" in page and 'data-encoder="resnet18"' in page and 'data-encoder="colorhist"' in page
    first = page
    (out / "report.html").unlink()
    assert run_cli("report", out, "--cache-dir", cache_dir) == 0
    assert "report.html" in capsys.readouterr().out
    assert (out / "report.html").read_text(encoding="utf-8") == first


def test_no_report_still_saves_its_data_and_a_rerun_replaces_it(tiny_dataset, tmp_path, cache_dir):
    out = tmp_path / "out"
    assert run_cli("evaluate", tiny_dataset, "--encoder", "colorhist", "--out", out, "--cache-dir", cache_dir,
                   "--bootstrap", "0", "--no-report", "--no-figures") == 0  # fmt: skip
    assert not (out / "report.html").exists() and (out / "data" / "retrievals_tiny_colorhist.npz").is_file()
    assert run_cli("report", out) == 0 and (out / "report.html").is_file()
    other = shutil.copytree(tiny_dataset, tmp_path / "other")
    assert run_cli("evaluate", other, "--encoder", "colorhist", "--out", out, "--cache-dir", cache_dir,
                   "--bootstrap", "0", "--no-figures") == 0  # fmt: skip
    assert sorted(p.name for p in (out / "data").iterdir()) == ["items_other.json", "retrievals_other_colorhist.npz"]


def test_skipped_images_and_moved_datasets_still_render(tmp_path, cache_dir):
    dataset = hostile_dataset(tmp_path / "d")
    (dataset.root / "images" / dataset.paths[5]).write_bytes(b"not an image")
    out = tmp_path / "out"
    assert run_cli("evaluate", dataset.root, "--encoder", "colorhist", "--out", out, "--cache-dir", cache_dir,
                   "--bootstrap", "0", "--skip-bad", "--no-figures") == 0  # fmt: skip
    with np.load(out / "data" / "retrievals_d_colorhist.npz") as saved:
        assert 5 not in saved["query"] and 5 not in saved["top_index"] and len(saved["query"]) == 15
    assert "<img" in (out / "report.html").read_text(encoding="utf-8")
    shutil.move(dataset.root, tmp_path / "moved")
    assert run_cli("report", out, "--cache-dir", tmp_path / "fresh-cache") == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<img" not in page and "image not found" in page and "are not at" in page


def test_bring_your_own_embeddings_report_omits_galleries(tmp_path):
    labels = ["a"] * 5 + ["b"] * 5
    (tmp_path / "list.txt").write_text("".join(f"x{i}.jpg\t{label}\n" for i, label in enumerate(labels)))
    np.save(tmp_path / "f.npy", np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32))
    out = tmp_path / "out"
    assert run_cli("evaluate", "--embeddings", tmp_path / "f.npy", "--labels", tmp_path / "list.txt", "--out", out,
                   "--bootstrap", "0") == 0  # fmt: skip
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "evaluated without their images" in page and "<img" not in page and 'id="map-table"' in page


def test_report_of_a_folder_without_results_fails_clearly(tmp_path, capsys):
    assert run_cli("report", tmp_path / "nothing") == 2
    assert "results.json not found" in capsys.readouterr().err


def test_report_images_are_small_jpegs(tmp_path, cache_dir):
    dataset = hostile_dataset(tmp_path / "d")
    big = dataset.root / "images" / dataset.paths[0]
    Image.new("RGB", (2000, 1500), (10, 20, 30)).save(big)
    out = tmp_path / "out"
    assert run_cli("evaluate", dataset.root, "--encoder", "colorhist", "--out", out, "--cache-dir", cache_dir,
                   "--bootstrap", "0", "--no-figures") == 0  # fmt: skip
    thumbs = list((cache_dir / "thumbnails").rglob("*.jpg"))
    assert thumbs
    for path in thumbs:
        with Image.open(path) as image:
            assert image.format == "JPEG" and max(image.size) <= 128
