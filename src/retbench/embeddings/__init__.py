"""Embeddings: batched extraction, the content-addressed cache, the public :func:`embed`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np

from retbench.datasets import Dataset, load_dataset
from retbench.embeddings.extraction import DECODE_MODES, PRECISIONS, RUNTIMES, Extraction, extract, resolve_device
from retbench.embeddings.store import EmbeddingStore
from retbench.environment import default_cache_dir
from retbench.errors import BadImagesError

__all__ = ["DECODE_MODES", "PRECISIONS", "RUNTIMES", "EmbeddingStore", "Extraction", "embed", "extract", "resolve_device", "bad_images_message"]

logger = logging.getLogger(__name__)


def embed(
    dataset_or_path: Dataset | str | Path,
    encoder: str,
    *,
    weights: str | Path | None = None,
    random_init: bool = False,
    preprocess: str = "default",
    batch_size: int = 32,
    num_workers: int | None = None,
    device: str = "auto",
    precision: str = "fp32",
    runtime: str = "torch",
    channels_last: bool | None = None,
    decode: str = "full",
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    skip_bad: bool = False,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Embed every image of a dataset.

    Args:
        dataset_or_path: a :class:`~retbench.datasets.Dataset` or a dataset folder.
        encoder: a spec string (``resnet34``, ``timm:NAME``, ``open_clip:ARCH/TAG``, ...).
        weights: local weights file; ``random_init=True`` explicitly asks for random
            weights instead (tests, speed runs). Default: pretrained weights (cache or download).
        preprocess: ``"default"`` (the upstream eval transform) or ``"study"`` (224 x 224 squash).
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
        precision: ``"fp32"`` (default; exact), ``"bf16"`` or ``"fp16"`` (CUDA) autocast
            (with ``runtime="openvino"``: the inference precision, fp32 or bf16).
        runtime: ``"torch"`` (default) or ``"openvino"`` (CPU; ``pip install 'retbench[openvino]'``;
            the exported model is cached under ``cache_dir/openvino``).
        channels_last: channels_last memory format for the torch runtime; None (default)
            = on for CNNs (fp32 features agree to ~1e-6), off otherwise.
        decode: ``"full"`` (default; exact), ``"reduced"``: JPEGs at least twice the
            resize target are decoded at 1/2, 1/4 or 1/8 scale (faster; pixels change slightly),
            or ``"fast"``: reduced, and resized by torch's uint8 kernels instead of PIL's
            (some pixels a few levels off PIL's; for when decoding limits the speed, e.g. on a GPU).
        cache_dir: embedding cache root (default: ``$RETBENCH_CACHE_DIR`` or the user cache dir).
        use_cache: False computes without reading or writing the cache.
        skip_bad: False raises :class:`~retbench.errors.BadImagesError` naming every
            unreadable image; True drops them and returns only the rows of good images.

    Returns:
        (N, D) float32, unit-norm rows; row i = item i of the dataset (of the good
        items, in order, when ``skip_bad`` dropped some).
    """
    from retbench.encoders import build_encoder

    dataset = dataset_or_path if isinstance(dataset_or_path, Dataset) else load_dataset(dataset_or_path)
    model = build_encoder(encoder, weights=weights, random_init=random_init, preprocess=preprocess,
                          device=str(resolve_device(device)))  # fmt: skip
    store = EmbeddingStore(cache_dir or default_cache_dir()) if use_cache else None
    result = extract(dataset, model, batch_size=batch_size, num_workers=num_workers, precision=precision,
                     runtime=runtime, channels_last=channels_last, decode=decode, store=store,
                     export_dir=Path(cache_dir or default_cache_dir()) / "openvino", progress=progress)  # fmt: skip
    if result.bad:
        if not skip_bad:
            raise BadImagesError(bad_images_message(dataset, result), result.bad)
        logger.warning("skipped %d unreadable image(s) of %s", len(result.bad), dataset.name)
        return result.vectors[result.good_rows]
    return result.vectors


def bad_images_message(dataset: Dataset, result: Extraction) -> str:
    """Error text naming every image that failed to decode, with the fix."""
    lines = "\n  ".join(f"{b.where}: {b.path}: {b.reason}" for b in result.bad)
    return (
        f"{len(result.bad)} image(s) of dataset {dataset.name!r} could not be decoded:\n  {lines}\n"
        "Fix or remove them, or pass --skip-bad (Python: skip_bad=True) to leave them out; skipped images are "
        "listed in results.json."
    )
