from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import make_image

# Varied sizes and aspect ratios (portrait, landscape, smaller than the crop) exercise resize + crop.
SIZES = [(300, 200), (200, 300), (520, 390), (64, 80), (256, 256), (333, 251)]


@pytest.fixture(scope="module")
def varied_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("varied")
    lines = []
    for i, size in enumerate(SIZES):
        label = "even" if i % 2 == 0 else "odd"
        suffix = ".jpg" if i % 3 == 0 else ".png"
        rel = f"{label}/{i}{suffix}"
        make_image(root / "images" / rel, (60 + 30 * i, 120, 200 - 25 * i), i, size=size)
        lines.append(f"{rel}\t{label}")
    (root / "list_of_images.txt").write_text("\n".join(lines) + "\n")
    return root


def reference_features(model: torch.nn.Module, transform, dataset_root: Path) -> torch.Tensor:
    """Features of every listed image by the reference library's own model and transform, L2-normalised."""
    from PIL import Image

    rows = []
    for line in (dataset_root / "list_of_images.txt").read_text().splitlines():
        with Image.open(dataset_root / "images" / line.split("\t")[0]) as image:
            rows.append(transform(image.convert("RGB")))
    model.eval()
    with torch.inference_mode():
        features = model(torch.stack(rows))
    return torch.nn.functional.normalize(features.float(), dim=1)


def randomise_batchnorm_statistics(model: torch.nn.Module, seed: int = 1) -> None:
    """Give BatchNorm layers non-trivial running statistics, so eval vs train mode matters."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
