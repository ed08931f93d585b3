"""Datasets: parse and validate a labelled image collection.

A dataset folder holds ``images/`` and ``list_of_images.txt`` (``relative/path<TAB>label``
per line); without a list file, class folders ``images/<label>/<file>`` are read. Other protocols split a
folder into queries and a gallery: two list files (:func:`load_query_gallery`), or a Revisited
Oxford/Paris ground truth with cropped queries (:func:`revisited_datasets`).
"""

from __future__ import annotations

from pathlib import Path

from retbench.datasets.dataset import IMAGES_DIR, LIST_FILE, Dataset
from retbench.datasets.folders import IMAGE_SUFFIXES, scan_class_folders
from retbench.datasets.images import BadImage, load_rgb
from retbench.datasets.listfile import parse_list_file
from retbench.datasets.revisited import revisited_datasets
from retbench.datasets.splits import load_query_gallery
from retbench.errors import DatasetError

__all__ = [
    "Dataset",
    "BadImage",
    "DatasetError",
    "IMAGE_SUFFIXES",
    "LIST_FILE",
    "load_dataset",
    "load_labels",
    "load_query_gallery",
    "load_rgb",
    "revisited_datasets",
]


def load_dataset(path: str | Path, *, name: str | None = None) -> Dataset:
    """Load and validate a dataset folder.

    Args:
        path: the dataset folder (holding ``images/``), or its ``list_of_images.txt``.
        name: name used in results (default: the folder name).

    Returns:
        A :class:`Dataset` with items in list order (or sorted class folders).

    Raises:
        DatasetError: the folder, list file or any listed path is invalid; the message
            lists every problem with ``file:line``.
    """
    path = Path(path).expanduser()
    if path.is_file() and path.name == LIST_FILE:
        path = path.parent
    if not path.is_dir():
        raise DatasetError(f"dataset folder {path} does not exist (expected a folder holding images/ and {LIST_FILE})")
    images_dir = path / IMAGES_DIR
    if not images_dir.is_dir():
        raise DatasetError(f"{path}: no images/ folder (a dataset is a folder holding images/ and {LIST_FILE})")
    list_file = path / LIST_FILE
    name = name or path.resolve().name
    if list_file.is_file():
        paths, labels, lines = parse_list_file(list_file, images_dir)
        return Dataset(root=path, name=name, paths=tuple(paths), labels=tuple(labels), lines=tuple(lines), source=list_file)
    paths, labels = scan_class_folders(images_dir)
    return Dataset(root=path, name=name, paths=tuple(paths), labels=tuple(labels), source=images_dir)


def load_labels(list_file: str | Path) -> list[str]:
    """Labels of a list file, in line order, without checking that its images exist.

    Used to evaluate embeddings computed elsewhere (row i = line i).
    """
    list_file = Path(list_file).expanduser()
    _, labels, _ = parse_list_file(list_file, images_dir=None)
    return labels
