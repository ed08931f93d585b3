"""Reading images: decode, resize/crop to uint8, batch, in decoding threads or worker processes.

Decode failures do not stop the run: each batch carries the images that worked and a
list of those that did not, so every bad file can be reported at the end.

Two ways to feed the model (:func:`iterate_batches`; the defaults are chosen per device in
:func:`retbench.embeddings.extraction.input_pipeline`):

- ``"threads"``: a thread pool in the model's own process; Pillow releases the GIL while it
  decodes and resizes, so the threads decode in parallel without pickling pixels between
  processes or forking a process that holds OpenMP / OpenVINO thread pools. With
  ``prefetch=0`` a batch is decoded by all threads just before it is needed, so on a small
  CPU the decoders and the model never compete for the same cores.
- ``"processes"``: a ``torch.utils.data.DataLoader`` with worker processes and pinned
  memory, decoding ahead while a GPU runs (asynchronous host-to-device copies).

Reduced-size JPEG decoding (``decode="reduced"``) lets libjpeg scale by 1/2, 1/4 or 1/8
during the inverse DCT (Pillow's ``draft``) when an image is at least
``REDUCED_DECODE_MARGIN`` times larger than the size it is resized to; the antialiased
resize then still reduces it by at least that factor. It changes pixels slightly, so it is
opt-in, part of the cache key, and its deviation is measured (BENCHMARKS.md) and tested.
``decode="fast"`` adds to it torch's uint8 resize kernels in place of PIL's
(:func:`~retbench.encoders.preprocess.tensor_geometry_transform`: resizing several times
faster, some pixels a few levels off PIL's), for when decoding is what the model waits for
(a GPU). In decoding threads (the CPU default) torch may split each resize over a few OpenMP
threads of its own; this was measured on 2 cores only.
"""

from __future__ import annotations

import collections
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
from PIL import Image

from retbench.datasets import Dataset, load_rgb
from retbench.encoders.preprocess import PreprocessConfig, geometry_transform, resized_size, tensor_geometry_transform

DECODE_MODES = ("full", "reduced", "fast")
PARALLEL_MODES = ("threads", "processes")
# "reduced" decoding keeps the decoded image >= this many times the resize output in both
# sides, so the final antialiased resize always shrinks it by at least this factor.
REDUCED_DECODE_MARGIN = 2


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


def load_rgb_reduced(path: Path, preprocess: PreprocessConfig) -> Image.Image:
    """Like :func:`retbench.datasets.load_rgb`, but a large JPEG is decoded at 1/2, 1/4 or 1/8 scale.

    The scale is the largest that keeps the decoded image at least ``REDUCED_DECODE_MARGIN``
    times the resize output of ``preprocess`` in both sides; other formats and images that
    are not that large decode in full (identical to ``load_rgb``).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with Image.open(path) as image:
            if image.format == "JPEG":
                width, height = resized_size(preprocess, *image.size)
                image.draft("RGB", (REDUCED_DECODE_MARGIN * width, REDUCED_DECODE_MARGIN * height))
            image.load()
            return image.convert("RGB")


class ImageReader:
    """``read(row) -> (row, (3, H, W) uint8 tensor or None, error or None)`` for one dataset image."""

    def __init__(self, dataset: Dataset, preprocess: PreprocessConfig, decode: str = "full") -> None:
        if decode not in DECODE_MODES:
            raise ValueError(f"decode must be one of {DECODE_MODES}, got {decode!r}")
        self.dataset = dataset
        self.preprocess = preprocess
        self.decode = decode
        self.transform = tensor_geometry_transform(preprocess) if decode == "fast" else geometry_transform(preprocess)

    def __call__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        path = self.dataset.image_path(index)
        try:
            image = load_rgb(path) if self.decode == "full" else load_rgb_reduced(path, self.preprocess)
            return index, self.transform(image), None
        except Exception as exc:  # any decoder failure is reported per image, never fatal here
            return index, None, f"{type(exc).__name__}: {exc}"


class _ImageFiles(torch.utils.data.Dataset):
    def __init__(self, reader: ImageReader) -> None:
        self.reader = reader

    def __len__(self) -> int:
        return len(self.reader.dataset)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        return self.reader(index)


def _collate(items: list[tuple[int, torch.Tensor | None, str | None]]) -> Batch:
    ok = [(i, x) for i, x, _ in items if x is not None]
    failures = [(i, error) for i, x, error in items if x is None]
    pixels = torch.stack([x for _, x in ok]) if ok else None
    return Batch([i for i, _ in ok], pixels, failures)


def cpu_count() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_num_workers() -> int:
    """Decoding workers: one per CPU core, at most 8."""
    return max(1, min(8, cpu_count()))


def iterate_batches(
    dataset: Dataset,
    preprocess: PreprocessConfig,
    batches: Sequence[Sequence[int]],
    *,
    num_workers: int,
    pin_memory: bool = False,
    decode: str = "full",
    parallel: str = "processes",
    prefetch: int = 2,
) -> Iterator[Batch]:
    """Yield a :class:`Batch` for each list of dataset rows in ``batches``, in order.

    Args:
        num_workers: decoding threads or processes; 0 decodes in the calling thread.
        pin_memory: put pixels in page-locked memory (for non-blocking copies to CUDA).
        decode: ``"full"``, ``"reduced"`` (see :func:`load_rgb_reduced`) or ``"fast"`` (reduced, and
            resized by torch: see the module docstring).
        parallel: ``"threads"`` or ``"processes"`` (see the module docstring).
        prefetch: batches decoded ahead of the one being consumed.
    """
    if preprocess.input_size is None:
        raise ValueError(f"preprocessing {preprocess.name!r} has no fixed input size; batches need one")
    if parallel not in PARALLEL_MODES:
        raise ValueError(f"parallel must be one of {PARALLEL_MODES}, got {parallel!r}")
    reader = ImageReader(dataset, preprocess, decode)
    if num_workers > 0 and parallel == "threads":
        yield from _threaded_batches(reader, batches, num_workers, prefetch, pin_memory)
        return
    loader = torch.utils.data.DataLoader(
        _ImageFiles(reader),
        batch_sampler=[list(b) for b in batches],
        num_workers=num_workers,
        collate_fn=_collate,
        pin_memory=pin_memory,
        prefetch_factor=max(1, prefetch) if num_workers > 0 else None,
    )
    yield from loader


def _threaded_batches(reader: ImageReader, batches: Sequence[Sequence[int]], threads: int, prefetch: int,
                      pin_memory: bool) -> Iterator[Batch]:  # fmt: skip
    """Decode in a thread pool; ``prefetch`` batches stay in flight while the consumer works (0: none)."""
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="retbench-decode")
    pending: collections.deque = collections.deque()
    upcoming = iter(batches)

    def submit_next() -> None:
        rows = next(upcoming, None)
        if rows is not None:
            pending.append([pool.submit(reader, row) for row in rows])

    try:
        for _ in range(prefetch):
            submit_next()
        while True:
            if not pending:
                submit_next()
                if not pending:
                    break
            futures = pending.popleft()
            batch = _collate([future.result() for future in futures])
            if prefetch > 0:
                submit_next()
            if pin_memory and batch.pixels is not None:
                batch.pixels = batch.pixels.pin_memory()
            yield batch
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
