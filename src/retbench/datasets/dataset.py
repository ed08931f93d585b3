"""The in-memory dataset: image paths and labels, in list order."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

LIST_FILE = "list_of_images.txt"
IMAGES_DIR = "images"


@dataclass(frozen=True)
class Dataset:
    """A labelled image collection.

    Item ``i`` is the image ``root / "images" / paths[i]`` with class ``labels[i]``;
    the order is the order of ``list_of_images.txt`` (or sorted class folders), and it
    is the row order of embeddings and of every per-query result.

    Attributes:
        root: the dataset folder (holds ``images/`` and usually ``list_of_images.txt``).
        name: short name used in result files (the folder name by default).
        paths: (N,) image paths relative to ``root / "images"``, POSIX separators.
        labels: (N,) class labels (non-empty strings).
        lines: (N,) 1-based line number of each item in the list file (0 when the
            dataset was read from class folders), used in error messages.
        source: the file or folder the items were read from.
    """

    root: Path
    name: str
    paths: tuple[str, ...]
    labels: tuple[str, ...]
    lines: tuple[int, ...] = field(default=())
    source: Path | None = None

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.labels):
            raise ValueError(f"paths ({len(self.paths)}) and labels ({len(self.labels)}) differ in length")
        if not self.lines:
            object.__setattr__(self, "lines", tuple(0 for _ in self.paths))

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def images_dir(self) -> Path:
        return self.root / IMAGES_DIR

    def image_path(self, index: int) -> Path:
        """Absolute path of item ``index``."""
        return self.images_dir / self.paths[index]

    def where(self, index: int) -> str:
        """``file:line`` (or the image path) of item ``index``, for error messages."""
        if self.lines[index] and self.source is not None:
            return f"{self.source}:{self.lines[index]}"
        return str(self.image_path(index))

    @property
    def classes(self) -> list[str]:
        """Distinct labels, sorted."""
        return sorted(set(self.labels))

    def class_counts(self) -> dict[str, int]:
        """Label -> number of items, sorted by label."""
        return dict(sorted(Counter(self.labels).items()))

    def subset(self, indices: Sequence[int]) -> "Dataset":
        """A dataset of the given items, in the given order (e.g. without unreadable images)."""
        return Dataset(
            root=self.root,
            name=self.name,
            paths=tuple(self.paths[i] for i in indices),
            labels=tuple(self.labels[i] for i in indices),
            lines=tuple(self.lines[i] for i in indices),
            source=self.source,
        )

    def manifest_hash(self) -> str:
        """SHA-256 over every item's path, file size and modification time.

        Identifies the image content for caching: renaming, replacing or touching an
        image changes it; labels do not (they do not change embeddings).
        """
        digest = hashlib.sha256()
        for rel in self.paths:
            st = os.stat(self.images_dir / rel)
            digest.update(json.dumps([rel, st.st_size, st.st_mtime_ns]).encode())
        return digest.hexdigest()

    def summary(self) -> dict:
        """JSON-serialisable description (for results.json)."""
        counts = self.class_counts()
        return {
            "name": self.name,
            "root": str(self.root),
            "n_images": len(self),
            "n_classes": len(counts),
            "class_counts": counts,
            "singleton_classes": sorted(label for label, n in counts.items() if n == 1),
        }
