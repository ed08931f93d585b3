"""Batched feature extraction with caching, resume and per-image error reporting."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from retbench._version import __version__
from retbench.datasets import BadImage, Dataset
from retbench.embeddings.loader import default_num_workers, iterate_batches
from retbench.embeddings.store import EmbeddingStore, cache_key
from retbench.encoders.preprocess import normalize_batch
from retbench.errors import EmbeddingError

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")
CHUNK_SIZE = 512  # images per resumable chunk


@dataclass
class Extraction:
    """Result of extracting one dataset with one encoder.

    Attributes:
        vectors: (N, D) float32, unit-norm rows; row i = dataset item i. Rows of
            images in ``bad`` are NaN (never zeros): drop them before use.
        bad: images that could not be decoded, in row order.
        from_cache: True when nothing had to be computed.
        timings: seconds spent, and images per second of the computed part.
        cache_key: the key of the cache entry (None without a cache).
    """

    vectors: np.ndarray
    bad: list[BadImage]
    from_cache: bool
    timings: dict = field(default_factory=dict)
    cache_key: str | None = None

    @property
    def good_rows(self) -> np.ndarray:
        """(N_ok,) int64 rows of the images that decoded."""
        bad = {b.index for b in self.bad}
        return np.array([i for i in range(len(self.vectors)) if i not in bad], dtype=np.int64)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is checked and used."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise EmbeddingError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
    return resolved


def _autocast(device: torch.device, precision: str):
    if precision not in PRECISIONS:
        raise EmbeddingError(f"--precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise EmbeddingError("--precision fp16 needs --device cuda (on the CPU use bf16)")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def cache_material(dataset: Dataset, encoder, precision: str, device: torch.device) -> dict:
    """Everything that changes the embeddings (habit 7): the cache key is its hash."""
    import timm
    import torchvision

    describe = encoder.describe()
    return {
        "retbench": __version__,
        "encoder": {k: describe[k] for k in ("name", "backend", "architecture", "dim", "preprocess")},
        "weights": encoder.weights.identity(),
        "dataset_manifest": dataset.manifest_hash(),
        "n_images": len(dataset),
        "precision": precision,
        "device_type": device.type,
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__, "timm": timm.__version__},
    }


def extract(
    dataset: Dataset,
    encoder,
    *,
    batch_size: int = 32,
    num_workers: int | None = None,
    precision: str = "fp32",
    store: EmbeddingStore | None = None,
    progress: Callable[[int], None] | None = None,
) -> Extraction:
    """Embed every image of ``dataset`` with ``encoder`` (already on its device).

    Images are decoded in ``num_workers`` processes, batched, normalised and run in
    inference mode; features are L2-normalised (in float64, stored as float32). With a
    ``store``, finished chunks of ``CHUNK_SIZE`` images are saved as they complete, so
    an interrupted run resumes where it stopped, and a finished run is reused.

    Args:
        progress: called with the number of images just finished (for progress bars).

    Raises:
        EmbeddingError: the encoder produced non-finite or all-zero features (names the images).
    """
    if batch_size < 1:
        raise EmbeddingError(f"--batch-size must be >= 1, got {batch_size}")
    device = torch.device(getattr(encoder, "device", "cpu"))
    autocast = _autocast(device, precision)  # validates precision before any work
    n, dim = len(dataset), encoder.dim
    key, entry = None, None
    if store is not None:
        material = cache_material(dataset, encoder, precision, device)
        key = cache_key(material)
        entry = store.entry(key)
        cached = entry.load()
        if cached is not None and cached[0].shape == (n, dim):
            logger.info("embeddings of %s / %s loaded from cache %s", dataset.name, encoder.name, entry.directory)
            if progress:
                progress(n)
            return Extraction(cached[0], [BadImage(**b) for b in cached[1]], True, {"total_s": 0.0}, key)
        entry.write_meta(material)

    vectors = np.full((n, dim), np.nan, dtype=np.float32)
    bad: list[dict] = []
    chunks = [list(range(start, min(start + CHUNK_SIZE, n))) for start in range(0, n, CHUNK_SIZE)]
    todo = []
    for c, rows in enumerate(chunks):
        saved = entry.load_chunk(c, len(rows), dim) if entry is not None else None
        if saved is None:
            todo.append(c)
            continue
        vectors[rows] = saved[0]
        bad.extend(saved[1])
        if progress:
            progress(len(rows))
    if todo and len(todo) < len(chunks):
        logger.info("resuming %s / %s: %d of %d chunks already done", dataset.name, encoder.name, len(chunks) - len(todo), len(chunks))

    started = time.perf_counter()
    forward_s = 0.0
    computed = 0
    # Batches never straddle chunks, so a chunk is saved as soon as its last batch is done.
    plan = [(c, chunks[c][i : i + batch_size], i + batch_size >= len(chunks[c]))
            for c in todo for i in range(0, len(chunks[c]), batch_size)]  # fmt: skip
    workers = default_num_workers() if num_workers is None else num_workers
    loader = iterate_batches(dataset, encoder.preprocess, [rows for _, rows, _ in plan], num_workers=workers,
                             pin_memory=device.type == "cuda")  # fmt: skip
    chunk_bad: list[dict] = []
    for (c, _, last_of_chunk), batch in zip(plan, loader):
        for row, reason in batch.failures:
            chunk_bad.append(BadImage(row, dataset.paths[row], dataset.where(row), reason).to_dict())
        if batch.pixels is not None:
            t0 = time.perf_counter()
            x = normalize_batch(batch.pixels.to(device, non_blocking=True), encoder.preprocess)
            with autocast:
                features = encoder.embed(x)
            vectors[batch.indices] = _unit_rows(features, batch.indices, dataset)
            forward_s += time.perf_counter() - t0
        if last_of_chunk:
            if entry is not None:
                entry.save_chunk(c, vectors[chunks[c]], chunk_bad)
            bad.extend(chunk_bad)
            chunk_bad = []
        done = len(batch.indices) + len(batch.failures)
        computed += done
        if progress:
            progress(done)
    elapsed = time.perf_counter() - started
    bad.sort(key=lambda b: b["index"])
    if entry is not None:
        entry.finish(vectors, bad)
    timings = {"total_s": elapsed, "forward_s": forward_s, "images_computed": computed,
               "images_per_s": computed / elapsed if elapsed > 0 and computed else None}  # fmt: skip
    return Extraction(vectors, [BadImage(**b) for b in bad], False, timings, key)


def _unit_rows(features: torch.Tensor, rows: list[int], dataset: Dataset) -> np.ndarray:
    """(B, D) features -> float32 unit rows; non-finite or zero vectors are an error naming the images."""
    array = features.detach().to("cpu", torch.float64).numpy()
    norms = np.linalg.norm(array, axis=1)
    broken = [rows[i] for i in np.flatnonzero(~np.isfinite(norms) | (norms == 0))]
    if broken:
        names = ", ".join(f"{dataset.paths[r]} ({dataset.where(r)})" for r in broken)
        raise EmbeddingError(
            f"the encoder produced non-finite or all-zero features for {len(broken)} image(s): {names}. "
            "Check the weights (e.g. a mismatched or corrupt file) and the precision (--precision fp32)."
        )
    return (array / norms[:, None]).astype(np.float32)
