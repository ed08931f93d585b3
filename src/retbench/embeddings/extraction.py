"""Batched feature extraction with caching, resume and per-image error reporting."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from retbench._version import __version__
from retbench.datasets import BadImage, Dataset
from retbench.embeddings.loader import DECODE_MODES, PARALLEL_MODES, REDUCED_DECODE_MARGIN, default_num_workers, iterate_batches
from retbench.embeddings.runtimes import PRECISIONS, RUNTIMES, RuntimeConfig, open_forward, resolve_runtime
from retbench.embeddings.store import EmbeddingStore, cache_key
from retbench.errors import EmbeddingError

logger = logging.getLogger(__name__)

__all__ = ["CHUNK_SIZE", "DECODE_MODES", "PRECISIONS", "RUNTIMES", "Extraction", "cache_material", "extract",
           "input_pipeline", "resolve_device"]  # fmt: skip

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
        runtime: how the features were (or, from the cache, had been) computed:
            the resolved :class:`RuntimeConfig` plus ``decode``.
    """

    vectors: np.ndarray
    bad: list[BadImage]
    from_cache: bool
    timings: dict = field(default_factory=dict)
    cache_key: str | None = None
    runtime: dict = field(default_factory=dict)

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


def input_pipeline(device: torch.device, num_workers: int | None) -> tuple[str, int, int]:
    """``(parallel, workers, prefetch)``: how images are decoded while the model runs.

    CPU: decoding threads, one per core (max 8), that decode each batch together just
    before the model runs it on the same cores (no batches ahead: the model never shares a
    core with a decoder; measured on 2 cores as fast as or faster than worker processes or
    threads decoding ahead, see BENCHMARKS.md). CUDA: DataLoader worker processes, one per
    core (max 8), pinned memory, 4 batches ahead each, so decoding overlaps the GPU.
    """
    workers = default_num_workers() if num_workers is None else num_workers
    if device.type == "cuda":
        return "processes", workers, 4
    return "threads", workers, 0


def cache_material(dataset: Dataset, encoder, runtime: RuntimeConfig, decode: str = "full") -> dict:
    """Everything that changes the embeddings (habit 7): the cache key is its hash.

    ``runtime`` is the resolved :class:`RuntimeConfig`. Reduced decoding is keyed with its margin,
    fast decoding also with its resize library and the CPU instruction set its kernels ran with
    (torch's AVX2 path and its generic one round differently).
    """
    import PIL
    import timm
    import torchvision

    describe = encoder.describe()
    versions = {"torch": torch.__version__, "torchvision": torchvision.__version__, "timm": timm.__version__,
                "pillow": PIL.__version__}  # fmt: skip
    if runtime.runtime == "openvino":
        from retbench.embeddings.openvino_runtime import import_openvino

        versions["openvino"] = import_openvino().__version__
    return {
        "retbench": __version__,
        "encoder": {k: describe[k] for k in ("name", "backend", "architecture", "dim", "preprocess")},
        "weights": encoder.weights.identity(),
        "dataset_manifest": dataset.manifest_hash(),
        "n_images": len(dataset),
        "runtime": runtime.to_dict(),
        "decode": _decode_material(decode),
        "versions": versions,
    }


def _decode_material(decode: str) -> str | dict:
    """The decoding mode's part of :func:`cache_material`."""
    if decode == "full":
        return decode
    material = {"mode": decode, "margin": REDUCED_DECODE_MARGIN}
    if decode == "fast":
        material.update(resize="torch", cpu_capability=torch.backends.cpu.get_cpu_capability())
    return material


def extract(
    dataset: Dataset,
    encoder,
    *,
    batch_size: int = 32,
    num_workers: int | None = None,
    precision: str = "fp32",
    runtime: str = "torch",
    channels_last: bool | None = None,
    decode: str = "full",
    store: EmbeddingStore | None = None,
    export_dir: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
    parallel: str | None = None,
) -> Extraction:
    """Embed every image of ``dataset`` with ``encoder`` (already on its device).

    Images are decoded while the model runs (see :func:`input_pipeline`), batched,
    normalised and run in inference mode; features are L2-normalised (in float64, stored
    as float32). With a ``store``, finished chunks of ``CHUNK_SIZE`` images are saved as
    they complete, so an interrupted run resumes where it stopped, and a finished run is reused.

    Args:
        num_workers: decoding threads (CPU) or worker processes (CUDA); None = one per
            core, max 8 (:func:`input_pipeline`); 0 = decode in the calling thread.
        precision: ``fp32`` (default; exact), ``bf16``, ``fp16`` (CUDA).
        runtime: ``torch`` (default) or ``openvino`` (CPU; the ``openvino`` extra).
        channels_last: channels_last memory format (torch runtime); None = on for CNNs.
        decode: ``full`` (default; exact), ``reduced`` (large JPEGs decoded at 1/2-1/8
            scale by libjpeg) or ``fast`` (reduced, and resized by torch instead of PIL);
            see :mod:`retbench.embeddings.loader`.
        export_dir: where exported OpenVINO models are kept (callers pass ``<cache root>/openvino``;
            None: the user cache dir's, see :func:`retbench.embeddings.openvino_runtime.openvino_forward`).
        progress: called with the number of images just finished (for progress bars).
        parallel: ``threads`` or ``processes`` for the decoding workers; None = by device.

    Raises:
        EmbeddingError: invalid options (named), or the encoder produced non-finite or
            all-zero features (names the images).
    """
    if batch_size < 1:
        raise EmbeddingError(f"--batch-size must be >= 1, got {batch_size}")
    if decode not in DECODE_MODES:
        raise EmbeddingError(f"--decode must be one of {DECODE_MODES}, got {decode!r}")
    if parallel is not None and parallel not in PARALLEL_MODES:
        raise EmbeddingError(f"parallel must be one of {PARALLEL_MODES}, got {parallel!r}")
    device = torch.device(getattr(encoder, "device", "cpu"))
    config = resolve_runtime(encoder, device, runtime=runtime, precision=precision, channels_last=channels_last)
    described = {**config.to_dict(), "decode": decode}
    n, dim = len(dataset), encoder.dim
    key, entry = None, None
    if store is not None:
        material = cache_material(dataset, encoder, config, decode=decode)
        key = cache_key(material)
        entry = store.entry(key)
        cached = entry.load()
        if cached is not None and cached[0].shape == (n, dim):
            logger.info("embeddings of %s / %s loaded from cache %s", dataset.name, encoder.name, entry.directory)
            if progress:
                progress(n)
            return Extraction(cached[0], [BadImage(**b) for b in cached[1]], True, {"total_s": 0.0}, key, described)
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
    if not todo:  # every chunk was saved by an interrupted run
        if entry is not None:
            entry.finish(vectors, sorted(bad, key=lambda b: b["index"]))
        return Extraction(vectors, [BadImage(**b) for b in sorted(bad, key=lambda b: b["index"])], True,
                          {"total_s": 0.0}, key, described)  # fmt: skip

    default_parallel, workers, prefetch = input_pipeline(device, num_workers)
    started = time.perf_counter()
    forward_s = 0.0
    computed = 0
    # Batches never straddle chunks, so a chunk is saved as soon as its last batch is done.
    plan = [(c, chunks[c][i : i + batch_size], i + batch_size >= len(chunks[c]))
            for c in todo for i in range(0, len(chunks[c]), batch_size)]  # fmt: skip
    with open_forward(encoder, config, export_dir=Path(export_dir) if export_dir else None) as forward:
        setup_s = time.perf_counter() - started
        loader = iterate_batches(dataset, encoder.preprocess, [rows for _, rows, _ in plan], num_workers=workers,
                                 pin_memory=device.type == "cuda", decode=decode, parallel=parallel or default_parallel,
                                 prefetch=prefetch)  # fmt: skip
        chunk_bad: list[dict] = []
        for (c, _, last_of_chunk), batch in zip(plan, loader):
            for row, reason in batch.failures:
                chunk_bad.append(BadImage(row, dataset.paths[row], dataset.where(row), reason).to_dict())
            if batch.pixels is not None:
                t0 = time.perf_counter()
                vectors[batch.indices] = _unit_rows(forward(batch.pixels), batch.indices, dataset)
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
    images_s = elapsed - setup_s
    timings = {"total_s": elapsed, "setup_s": setup_s, "forward_s": forward_s, "images_computed": computed,
               "images_per_s": computed / images_s if images_s > 0 and computed else None}  # fmt: skip
    return Extraction(vectors, [BadImage(**b) for b in bad], False, timings, key, described)


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
