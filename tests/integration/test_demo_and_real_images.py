"""The offline demo with real pretrained weights, and real-image runs on ../shared/data (skipped without it)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import retbench
from retbench.cli import demo_dataset_dir, main
from tests.conftest import shared_dataset


def test_demo_dataset_ships_with_its_licence():
    root = demo_dataset_dir()
    dataset = retbench.load_dataset(root)
    assert len(dataset) == 300 and len(dataset.classes) == 10
    assert set(dataset.class_counts().values()) == {30}
    assert "CC0" in (root / "LICENSE").read_text() and "clothing-dataset-small" in (root / "SOURCE.md").read_text()
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size <= 10 * 1024 * 1024


def test_demo_runs_offline_with_real_weights(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| efficientnet_lite0 |" in printed and "| colorhist |" in printed
    results = json.loads((out / "results.json").read_text())
    maps = {r["encoder"]: r["map"] for r in results["runs"]}
    weights = {r["encoder"]: r["config"]["encoder"]["weights"]["kind"] for r in results["runs"]}
    assert weights == {"efficientnet_lite0": "pretrained", "colorhist": "none"}
    # real ImageNet features retrieve clothing types far better than colour alone (measured: see BENCHMARKS.md)
    assert maps["efficientnet_lite0"] > maps["colorhist"] + 0.15
    for name in ("table.md", "table.csv", "pr_clothing-demo.png", "retrievals_clothing-demo_efficientnet_lite0.png"):
        assert (out / name).is_file(), name


@pytest.mark.slow
def test_real_images_signdigits_subset(tmp_path):
    root = shared_dataset("signdigits10")
    dataset = retbench.load_dataset(root)
    rows = [i for label in dataset.classes for i in [j for j, l in enumerate(dataset.labels) if l == label][:20]]
    subset = dataset.subset(rows)
    features = retbench.embed(subset, "efficientnet_lite0", device="cpu", cache_dir=tmp_path / "c")
    assert features.shape == (200, 1280)
    evaluation = retbench.evaluate(features, list(subset.labels), n_bootstrap=0)
    hist = retbench.evaluate(retbench.embed(subset, "colorhist", cache_dir=tmp_path / "c"), list(subset.labels),
                             n_bootstrap=0)  # fmt: skip
    assert evaluation.map > hist.map + 0.05
    assert evaluation.map > 0.2  # 10 balanced classes: chance is ~0.1
    assert np.isfinite(evaluation.ap).all()
