"""Reading images in worker processes: decode, resize/crop to uint8, batch.

Decode failures do not stop the run: each batch carries the images that worked and a
list of those that did not, so every bad file can be reported at the end.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import torch

from retbench.datasets import Dataset, load_rgb
from retbench.encoders.preprocess import PreprocessConfig, geometry_transform


@dataclass
class Batch:
    """Images of one batch.

    Attributes:
        indices: (B_ok,) dataset rows of the decoded images, in order.
        pixels: (B_ok, 3, H, W) uint8, or None when no image of the batch decoded.
        failures: ``(row, "ErrorType: message")`` for each image that did not decode.
    """

    indices: list[int]
    pixels: torch.Tensor | None
    failures: list[tuple[int, str]]


class _ImageFiles(torch.utils.data.Dataset):
    def __init__(self, dataset: Dataset, preprocess: PreprocessConfig) -> None:
        self.dataset = dataset
        self.transform = geometry_transform(preprocess)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            return index, self.transform(load_rgb(self.dataset.image_path(index))), None
        except Exception as exc:  # any decoder failure is reported per image, never fatal here
            return index, None, f"{type(exc).__name__}: {exc}"


def _collate(items: list[tuple[int, torch.Tensor | None, str | None]]) -> Batch:
    ok = [(i, x) for i, x, _ in items if x is not None]
    failures = [(i, error) for i, x, error in items if x is None]
    pixels = torch.stack([x for _, x in ok]) if ok else None
    return Batch([i for i, _ in ok], pixels, failures)


def default_num_workers() -> int:
    """Decoding workers: one per CPU core, at most 8."""
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def iterate_batches(
    dataset: Dataset,
    preprocess: PreprocessConfig,
    batches: Sequence[Sequence[int]],
    *,
    num_workers: int,
    pin_memory: bool = False,
):
    """Yield a :class:`Batch` for each list of dataset rows in ``batches``, in order."""
    if preprocess.input_size is None:
        raise ValueError(f"preprocessing {preprocess.name!r} has no fixed input size; batches need one")
    loader = torch.utils.data.DataLoader(
        _ImageFiles(dataset, preprocess),
        batch_sampler=[list(b) for b in batches],
        num_workers=num_workers,
        collate_fn=_collate,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers > 0 else None,
    )
    yield from loader
