"""Read a dataset laid out as class folders: ``images/<label>/<file>``."""

from __future__ import annotations

import logging
from pathlib import Path

from retbench.errors import DatasetError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})


def scan_class_folders(images_dir: Path) -> tuple[list[str], list[str]]:
    """List ``images/<label>/<file>`` items, sorted by label then file name.

    Files directly inside ``images/`` and files with a non-image suffix are not
    items; they are reported in the log (never dropped silently). Symlinks that lead
    outside ``images/`` are refused.

    Returns:
        ``(paths, labels)``: paths relative to ``images_dir`` (POSIX), labels = folder names.

    Raises:
        DatasetError: no class folder holds an image, or a symlink leads outside.
    """
    root = images_dir.resolve()
    paths: list[str] = []
    labels: list[str] = []
    ignored: list[str] = []
    outside: list[str] = []
    for class_dir in sorted(p for p in images_dir.iterdir() if p.is_dir()):
        for file in sorted(p for p in class_dir.rglob("*") if p.is_file()):
            rel = file.relative_to(images_dir).as_posix()
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                ignored.append(rel)
                continue
            if not file.resolve().is_relative_to(root):
                outside.append(f"{rel} -> {file.resolve()}")
                continue
            paths.append(rel)
            labels.append(class_dir.name)
    loose = [p.name for p in images_dir.iterdir() if p.is_file()]
    if outside:
        raise DatasetError(
            f"{images_dir}: {len(outside)} symlink(s) lead outside the images/ folder:\n  " + "\n  ".join(outside)
        )
    if ignored or loose:
        logger.warning(
            "%s: ignored %d file(s) that are not images in a class folder: %s",
            images_dir,
            len(ignored) + len(loose),
            ", ".join((ignored + loose)[:10]) + (" ..." if len(ignored) + len(loose) > 10 else ""),
        )
    if not paths:
        raise DatasetError(
            f"{images_dir}: no images found in class folders (expected images/<label>/<file> with one of "
            f"{', '.join(sorted(IMAGE_SUFFIXES))}, or a list_of_images.txt beside images/)"
        )
    return paths, labels
