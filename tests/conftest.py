"""Shared fixtures: tiny generated image datasets (offline, no downloads) and ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Classes of generated images: a base colour and a shape, so that even a colour histogram separates them.
_CLASSES = {"red": (200, 40, 40), "green": (40, 170, 60), "blue": (40, 60, 200)}


def make_image(path: Path, colour: tuple[int, int, int], seed: int, size: tuple[int, int] = (80, 64)) -> None:
    """Write a small deterministic image: noisy background in ``colour`` with a bright square."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, size=(size[1], size[0], 3)), 0, 255).astype(np.uint8)
    x, y = rng.integers(0, size[0] // 2), rng.integers(0, size[1] // 2)
    pixels[y : y + size[1] // 3, x : x + size[0] // 3] = 255 - np.array(colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def make_dataset(root: Path, per_class: int = 4, classes: dict | None = None, list_file: bool = True,
                 suffix: str = ".png") -> Path:  # fmt: skip
    """A dataset folder with ``images/<class>/<n>.png`` and (optionally) ``list_of_images.txt``."""
    classes = classes or _CLASSES
    lines = []
    seed = 0
    for label, colour in classes.items():
        for n in range(per_class):
            rel = f"{label}/{n:03d}{suffix}"
            make_image(root / "images" / rel, colour, seed)
            seed += 1
            lines.append(f"{rel}\t{label}")
    if list_file:
        (root / "list_of_images.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """3 classes x 4 generated PNG images, with a list file."""
    return make_dataset(tmp_path / "tiny")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    """Never touch the user's caches or the network from tests."""
    home = tmp_path_factory.getbasetemp() / "home-caches"
    monkeypatch.setenv("RETBENCH_CACHE_DIR", str(home / "retbench"))
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hf" / "hub"))
    monkeypatch.setenv("RETBENCH_OFFLINE", "1")


def shared_dataset(name: str) -> Path:
    """A dataset from ../shared/data, or skip the test cleanly when it is absent."""
    path = SHARED_DATA / name
    if not (path / "list_of_images.txt").is_file():
        pytest.skip(f"{path} not present (real-image tests need ../shared/data beside the checkout)")
    return path
