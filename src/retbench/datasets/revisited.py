"""A Revisited Oxford / Paris image folder as a gallery and a set of cropped queries.

The layout of revisitop's data: ``DATASET/images/<name>.jpg`` for every name of the ground truth's
``imlist`` (the gallery) and ``qimlist`` (the queries). As revisitop's protocol requires, each
query is cropped to its ``bbx`` before any processing, exactly as its ``example_process_images.py``
does: ``PIL.Image.crop(bbx)`` on the RGB image, which rounds each float coordinate with Python's
``round`` (half to even). Crops are written once, losslessly (PNG), under
``crops_root/images/<key>/<name>.png``, where ``key`` hashes the source file (path, size, mtime) and
the box: an unchanged query is never cropped twice, and its embedding cache entry stays valid.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from retbench.atomic_files import atomic_write_bytes
from retbench.datasets.dataset import IMAGES_DIR, Dataset
from retbench.datasets.images import load_rgb
from retbench.datasets.listfile import _path_problem, _summarise
from retbench.errors import DatasetError

SUFFIX = ".jpg"
_CROP_VERSION = "1"


def revisited_datasets(dataset_dir: str | Path, imlist: Sequence[str], qimlist: Sequence[str],
                       bbx: Sequence[np.ndarray | None], crops_root: str | Path, *, source: str = "ground truth",
                       name: str | None = None) -> tuple[Dataset, Dataset]:  # fmt: skip
    """``(queries, gallery)`` for a ground-truth file's ``imlist`` / ``qimlist`` in ``dataset_dir/images``.

    Args:
        imlist: N gallery image names (without ``.jpg``); qimlist: Q query image names.
        bbx: Q query boxes ``(x0, y0, x1, y1)`` in pixels (floats), or None for the whole image.
        crops_root: where cropped queries are written (e.g. ``<cache dir>/crops``).
        source: the ground-truth file, for messages.

    Returns:
        Two :class:`Dataset` named ``name`` (default: the folder name) whose labels are the image
        names (the ground truth, not labels, says what is relevant): ``queries`` rooted at
        ``crops_root`` (items = the crops, in ``qimlist`` order), ``gallery`` at ``dataset_dir`` (``imlist`` order).

    Raises:
        DatasetError: missing images (all listed), an invalid box, or a query that cannot be decoded.
    """
    root = Path(dataset_dir).expanduser()
    images_dir = root / IMAGES_DIR
    if not images_dir.is_dir():
        raise DatasetError(f"{root}: no images/ folder (with --ground-truth, DATASET/images holds <name>{SUFFIX} "
                           f"for every name of the ground truth's imlist and qimlist)")  # fmt: skip
    name = name or root.resolve().name
    resolved = images_dir.resolve()
    problems = []
    for key, names in (("imlist", imlist), ("qimlist", qimlist)):
        for i, item in enumerate(names):
            problem = _path_problem(f"{item}{SUFFIX}", resolved)
            if problem:
                problems.append(f"{source}: {key}[{i}]: {problem}")
    for q, box in enumerate(bbx):
        if box is not None and not _valid_box(box):
            problems.append(f"{source}: gnd[{q}]['bbx'] = {np.asarray(box).tolist()!r} is not a box (x0, y0, x1, y1) "
                            "with x0 < x1 and y0 < y1")  # fmt: skip
    if problems:
        raise DatasetError(_summarise(images_dir, problems).replace("in the list file", f"for {source}", 1))
    gallery = Dataset(root, name, tuple(f"{item}{SUFFIX}" for item in imlist), tuple(imlist), source=images_dir)
    crops_root = Path(crops_root).expanduser()
    paths, unreadable = [], []
    for q, (item, box) in enumerate(zip(qimlist, bbx)):
        try:
            paths.append(_crop(images_dir / f"{item}{SUFFIX}", box, crops_root / IMAGES_DIR, item))
        except Exception as exc:  # every unreadable query is named below, not just the first
            unreadable.append(f"{source}: qimlist[{q}]: cannot decode the query image {images_dir / item}{SUFFIX} "
                              f"({type(exc).__name__}: {exc})")  # fmt: skip
    if unreadable:
        raise DatasetError(f"{len(unreadable)} query image(s) could not be decoded:\n  " + "\n  ".join(unreadable)
                           + "\nThe queries define the benchmark, so --skip-bad does not drop them: fix these files.")
    queries = Dataset(crops_root, name, tuple(paths), tuple(qimlist), source=crops_root / IMAGES_DIR)
    return queries, gallery


def _valid_box(box: np.ndarray) -> bool:
    values = np.asarray(box, dtype=np.float64).ravel()
    if values.size != 4 or not np.isfinite(values).all():
        return False
    x0, y0, x1, y1 = (round(float(v)) for v in values)  # as PIL's crop rounds them
    return x0 < x1 and y0 < y1


def crop_box(box: np.ndarray | None) -> tuple[float, float, float, float] | None:
    """The box as PIL's ``crop`` receives it in revisitop (floats; PIL rounds them)."""
    return None if box is None else tuple(float(v) for v in np.asarray(box, dtype=np.float64).ravel())  # type: ignore[return-value]


def _crop(source: Path, box: np.ndarray | None, out_dir: Path, item: str) -> str:
    """Write (once) the crop of ``source`` to ``out_dir``; return its path relative to ``out_dir``.

    Raises whatever the decoder raises for an unreadable ``source``."""
    st = source.stat()
    material = [_CROP_VERSION, str(source.resolve()), st.st_size, st.st_mtime_ns, crop_box(box)]
    key = hashlib.sha256(json.dumps(material).encode("utf-8", "surrogatepass")).hexdigest()[:20]
    relative = f"{key}/{Path(item).name}.png"
    target = out_dir / relative
    if target.is_file():
        return relative
    image = load_rgb(source)
    if box is not None:
        image = image.crop(crop_box(box))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    atomic_write_bytes(target, buffer.getvalue())
    return relative
