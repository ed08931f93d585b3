"""What a report needs beyond results.json, saved at evaluation time into ``DIR/data/``.

Two sidecars, referenced from each run of results.json as ``run["report_data"]``:

- ``data/items_<dataset>.json`` (one per dataset): ``{"dataset", "root", "images_dir",
  "images_available", "paths": [...], "labels": [...]}``; ``paths[i]`` / ``labels[i]`` are line i
  of the list (the row order of ``run["ap"]``), ``paths`` relative to ``images_dir`` (POSIX), or
  null when there are no images (embeddings evaluated without them).
- ``data/retrievals_<dataset>_<encoder>.npz`` (one per run): for every evaluated query, its
  ``top_k`` best and ``worst_k`` worst retrievals (leave-one-out, the query excluded by index):
  ``query`` (Q,) int32, the list line of each query; ``top_index`` (Q, top_k) int32 list lines,
  ``top_score`` (Q, top_k) float32 cosine similarities, best first; ``worst_index`` /
  ``worst_score`` (Q, worst_k), lowest first. Ties: ascending index (``search.exact.topk``).

With these, ``retbench report DIR`` rebuilds every gallery, confusion and disagreement from the
folder alone.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from retbench.datasets import Dataset
from retbench.report import files

TOP_K = 10
WORST_K = 5
DATA_DIR = "data"


def items_file_name(dataset: str) -> str:
    return f"{DATA_DIR}/items_{files.slug(dataset)}.json"


def retrievals_file_name(dataset: str, encoder: str) -> str:
    return f"{DATA_DIR}/retrievals_{files.slug(dataset)}_{files.slug(encoder)}.npz"


def save_items(out_dir: Path, dataset: Dataset, *, images_available: bool = True) -> str:
    """Write the dataset's paths and labels (list order); return the path relative to ``out_dir``."""
    from retbench.embeddings.store import atomic_write_text

    name = items_file_name(dataset.name)
    document = {
        "dataset": dataset.name,
        "root": str(Path(dataset.root).resolve()),
        "images_dir": str(Path(dataset.images_dir).resolve()),
        "images_available": images_available,
        "paths": list(dataset.paths) if images_available else None,
        "labels": list(dataset.labels),
    }
    (out_dir / DATA_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / name, json.dumps(document, ensure_ascii=False) + "\n")
    return name


def compute_retrievals(vectors: np.ndarray, lines: np.ndarray, top_k: int = TOP_K, worst_k: int = WORST_K) -> dict:
    """Every query's best and worst retrievals, leave-one-out, exact and blockwise.

    Args:
        vectors: (Q, D) float32 unit rows of the evaluated items.
        lines: (Q,) int, the list line of each row (rows differ from lines when images were skipped).

    Returns:
        ``query``, ``top_index``, ``top_score``, ``worst_index``, ``worst_score`` (see the module
        docstring); indices are list lines. k is capped at Q - 1 (0 columns when Q < 2).
    """
    from retbench.search.exact import topk

    lines = np.asarray(lines, dtype=np.int64)
    n = len(vectors)
    out = {"query": lines.astype(np.int32)}
    for key, k, largest in (("top", top_k, True), ("worst", worst_k, False)):
        k = min(k, n - 1)
        if k < 1:
            out[f"{key}_index"] = np.zeros((n, 0), dtype=np.int32)
            out[f"{key}_score"] = np.zeros((n, 0), dtype=np.float32)
            continue
        rows = np.ascontiguousarray(vectors, dtype=np.float32)
        scores, index = topk(rows, rows, k, exclude=np.arange(n), largest=largest)
        out[f"{key}_index"] = lines[index].astype(np.int32)
        out[f"{key}_score"] = scores.astype(np.float32)
    return out


def save_retrievals(out_dir: Path, dataset: str, encoder: str, retrievals: dict) -> str:
    """Write :func:`compute_retrievals`' arrays (compressed .npz); return the path relative to ``out_dir``."""
    from retbench.embeddings.store import atomic_write_bytes

    name = retrievals_file_name(dataset, encoder)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **retrievals)
    (out_dir / DATA_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_dir / name, buffer.getvalue())
    return name


@dataclass(frozen=True)
class Items:
    """A dataset's items as the report sees them (list order)."""

    dataset: str
    images_dir: Path | None
    paths: tuple[str, ...] | None
    labels: tuple[str, ...]

    @property
    def has_images(self) -> bool:
        return self.images_dir is not None and self.paths is not None

    def image_path(self, line: int) -> Path | None:
        return self.images_dir / self.paths[line] if self.has_images else None

    def name(self, line: int) -> str:
        return self.paths[line] if self.paths is not None else f"row {line}"


@dataclass(frozen=True)
class Retrievals:
    """One run's saved retrievals (see the module docstring for shapes)."""

    query: np.ndarray
    top_index: np.ndarray
    top_score: np.ndarray
    worst_index: np.ndarray
    worst_score: np.ndarray

    @cached_property
    def row_of_line(self) -> dict[int, int]:
        """List line -> row of these arrays (lines of skipped images are absent)."""
        return {int(line): row for row, line in enumerate(self.query.tolist())}


def load_items(folder: Path, relative: str) -> Items | None:
    """The items sidecar, or None when it is missing or unreadable."""
    try:
        document = json.loads((folder / relative).read_text(encoding="utf-8"))
        labels = tuple(str(label) for label in document["labels"])
        paths = document.get("paths")
        available = bool(document.get("images_available")) and paths is not None and len(paths) == len(labels)
        return Items(
            dataset=str(document.get("dataset", "")),
            images_dir=Path(document["images_dir"]) if available else None,
            paths=tuple(str(p) for p in paths) if available else None,
            labels=labels,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_retrievals(folder: Path, relative: str) -> Retrievals | None:
    """The retrievals sidecar, or None when it is missing or unreadable."""
    try:
        with np.load(folder / relative, allow_pickle=False) as data:
            return Retrievals(
                **{key: data[key] for key in ("query", "top_index", "top_score", "worst_index", "worst_score")}
            )
    except (OSError, ValueError, KeyError):
        return None
