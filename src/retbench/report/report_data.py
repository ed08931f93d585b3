"""What a report needs beyond results.json, saved at evaluation time into ``DIR/data/``.

Sidecars, referenced from each run of results.json as ``run["report_data"]``:

- ``data/items_<name>.json``: ``{"dataset", "root", "images_dir", "images_available", "paths": [...],
  "labels": [...]}``; ``paths[i]`` / ``labels[i]`` are line i of a list (the row order of
  ``run["ap"]`` for the queries), ``paths`` relative to ``images_dir`` (POSIX), or null when there
  are no images (embeddings evaluated without them). ``report_data["items"]`` names the queries'
  file; ``report_data["gallery_items"]``, present for the query/gallery and ground-truth
  protocols, names the gallery's (leave-one-out: the queries are the gallery).
- ``data/retrievals_<dataset>_<encoder>.npz`` (one per run): for every evaluated query, its
  ``top_k`` best and ``worst_k`` worst retrievals among the ranked gallery items (leave-one-out:
  the query excluded by index; ground truth: its junk items excluded): ``query`` (Q,) int32, the
  list line of each query; ``top_index`` (Q, top_k) int32 gallery list lines, ``top_score``
  (Q, top_k) float32 cosine similarities, best first; ``worst_index`` / ``worst_score``
  (Q, worst_k), lowest first; ``top_relevant`` / ``worst_relevant`` (Q, k) bool, whether each
  retrieval is relevant to its query (same label, or in its ``ok`` list; absent in folders
  written before they existed: the report then compares labels); ``n_ranked`` (Q,) int32, how
  many gallery items each query ranks (the rank of its last item). Ties: ascending index
  (``search.top_and_worst``).

With these, ``retbench report DIR`` rebuilds every gallery, confusion and disagreement from the
folder alone.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from retbench.datasets import Dataset
from retbench.report import files

TOP_K = 10
WORST_K = 5
DATA_DIR = "data"


def items_file_name(name: str) -> str:
    return f"{DATA_DIR}/items_{files.slug(name)}.json"


def retrievals_file_name(dataset: str, encoder: str) -> str:
    return f"{DATA_DIR}/retrievals_{files.slug(dataset)}_{files.slug(encoder)}.npz"


def save_items(out_dir: Path, dataset: Dataset, *, images_available: bool = True, name: str | None = None) -> str:
    """Write the dataset's paths and labels (list order) to ``items_<name or dataset.name>.json``;
    return the path relative to ``out_dir``."""
    from retbench.atomic_files import atomic_write_text

    name = items_file_name(name or dataset.name)
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


def compute_retrievals(vectors: np.ndarray, lines: np.ndarray, top_k: int = TOP_K, worst_k: int = WORST_K, *,
                       labels: Sequence[str] | None = None) -> dict:  # fmt: skip
    """Every query's best and worst retrievals, leave-one-out, exact and blockwise.

    Args:
        vectors: (Q, D) float32 unit rows of the evaluated items.
        lines: (Q,) int, the list line of each row (rows differ from lines when images were skipped).
        labels: optional labels of the list lines; with them ``top_relevant`` / ``worst_relevant``
            (same label) are saved too.

    Returns:
        ``query``, ``top_index``, ``top_score``, ``worst_index``, ``worst_score`` (see the module
        docstring); indices are list lines. k is capped at Q - 1 (0 columns when Q < 2).
    """
    lines = np.asarray(lines, dtype=np.int64)
    relevant = None
    if labels is not None:
        codes = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)[1]

        def relevant(q: np.ndarray, g: np.ndarray) -> np.ndarray:
            return codes[lines[q]][:, None] == codes[lines[g]]

    return _retrievals(vectors, vectors, lines, lines, top_k, worst_k, exclude_self=True,
                       variants=[(relevant, None)])[0]  # fmt: skip


def compute_gallery_retrievals(query_vectors: np.ndarray, query_lines: np.ndarray, gallery_vectors: np.ndarray,
                               gallery_lines: np.ndarray, top_k: int = TOP_K, worst_k: int = WORST_K, *,
                               query_labels: Sequence[str] | None = None, gallery_labels: Sequence[str] | None = None,
                               ok: Sequence[np.ndarray] | None = None,
                               junk: Sequence[np.ndarray] | None = None) -> dict:  # fmt: skip
    """Every query's best and worst gallery items (query/gallery and ground-truth protocols).

    Args:
        query_vectors: (Q, D) float32 unit rows; query_lines: (Q,) the queries' list lines.
        gallery_vectors: (N, D) float32 unit rows; gallery_lines: (N,) their gallery list lines.
        query_labels / gallery_labels: labels of the list lines (relevant = same label), or
        ok: Q arrays of relevant gallery *rows* (ground truth).
        junk: optional Q arrays of gallery rows left out of the query's retrievals (ground truth).

    Returns:
        As :func:`compute_retrievals`, indices being gallery list lines. k is capped at the
        smallest number of items a query ranks (N minus the largest junk list).
    """
    if ok is not None:
        return compute_ground_truth_retrievals(query_vectors, query_lines, gallery_vectors, gallery_lines,
                                               {None: (ok, junk)}, top_k, worst_k)[None]  # fmt: skip
    query_lines = np.asarray(query_lines, dtype=np.int64)
    gallery_lines = np.asarray(gallery_lines, dtype=np.int64)
    relevant = None
    if query_labels is not None and gallery_labels is not None:
        both = np.concatenate([np.asarray(query_labels, dtype=object).astype(str),
                               np.asarray(gallery_labels, dtype=object).astype(str)])  # fmt: skip
        codes = np.unique(both, return_inverse=True)[1]
        q_codes, g_codes = codes[: len(query_labels)], codes[len(query_labels) :]

        def relevant(q: np.ndarray, g: np.ndarray) -> np.ndarray:
            return q_codes[query_lines[q]][:, None] == g_codes[gallery_lines[g]]

    return _retrievals(query_vectors, gallery_vectors, query_lines, gallery_lines, top_k, worst_k,
                       exclude_self=False, variants=[(relevant, junk)])[0]  # fmt: skip


def compute_ground_truth_retrievals(query_vectors: np.ndarray, query_lines: np.ndarray, gallery_vectors: np.ndarray,
                                    gallery_lines: np.ndarray, setups: Mapping, top_k: int = TOP_K,
                                    worst_k: int = WORST_K) -> dict:  # fmt: skip
    """:func:`compute_gallery_retrievals` for several ground truths of the same queries and gallery.

    ``setups`` maps a name (e.g. "easy") to its ``(ok, junk)`` lists of gallery rows. One search,
    deep enough to pass the most junk of any setup, serves every setup; returns name -> arrays,
    each equal to what :func:`compute_gallery_retrievals` gives for that setup alone.
    """
    if not setups:
        raise ValueError("setups must name at least one (ok, junk) pair")
    query_lines = np.asarray(query_lines, dtype=np.int64)
    gallery_lines = np.asarray(gallery_lines, dtype=np.int64)
    variants = []
    for ok, junk in setups.values():
        ok_sets = [set(np.asarray(o, dtype=np.int64).tolist()) for o in ok]

        def relevant(q: np.ndarray, g: np.ndarray, ok_sets=ok_sets) -> np.ndarray:
            flags = [[int(j) in ok_sets[i] for j in row] for i, row in zip(q.tolist(), g.tolist())]
            return np.array(flags, dtype=bool).reshape(g.shape)

        variants.append((relevant, junk))
    found = _retrievals(query_vectors, gallery_vectors, query_lines, gallery_lines, top_k, worst_k,
                        exclude_self=False, variants=variants)  # fmt: skip
    return dict(zip(setups, found))


def _retrievals(queries: np.ndarray, gallery: np.ndarray, query_lines: np.ndarray, gallery_lines: np.ndarray,
                top_k: int, worst_k: int, *, exclude_self: bool, variants: list) -> list[dict]:  # fmt: skip
    """Top and worst retrievals from one blockwise pass, for each ``(relevant, junk)`` of ``variants``
    (relevant: None or a function of (query rows, gallery rows) -> flags; junk: None or Q arrays of
    gallery rows). Junk rows are searched past (k + the most junk of any query of any variant) and
    dropped; the ranking is a total order, so a deeper search keeps every shorter list as its prefix."""
    from retbench.search.exact import top_and_worst

    n_q, n_g = len(queries), len(gallery)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    gallery = np.ascontiguousarray(gallery, dtype=np.float32)
    own = 1 if exclude_self else 0
    junk_sets = [None if junk is None else [np.unique(np.asarray(j, dtype=np.int64)) for j in junk]
                 for _, junk in variants]  # fmt: skip
    most_junk = [max((j.size for j in sets), default=0) if sets else 0 for sets in junk_sets]
    ks = [{"top": max(0, min(top_k, n_g - own - n_junk)), "worst": max(0, min(worst_k, n_g - own - n_junk))}
          for n_junk in most_junk]  # fmt: skip
    depth = {key: max((min(k[key] + n_junk, n_g - own) if k[key] else 0) for k, n_junk in zip(ks, most_junk))
             for key in ("top", "worst")}  # fmt: skip
    found = {}
    if n_q and max(depth.values()) > 0:
        found = dict(zip(("top", "worst"), top_and_worst(queries, gallery, depth["top"], depth["worst"],
                                                         exclude=np.arange(n_q) if exclude_self else None)))  # fmt: skip
    results = []
    for (relevant, _), sets, k_of in zip(variants, junk_sets, ks):
        n_ranked = np.full(n_q, n_g - own, dtype=np.int32)
        if sets is not None:
            n_ranked -= np.array([j.size for j in sets], dtype=np.int32).reshape(n_q)
        out = {"query": query_lines.astype(np.int32), "n_ranked": n_ranked}
        for key, k in k_of.items():
            if k < 1 or n_q == 0:
                index = np.zeros((n_q, 0), dtype=np.int64)
                scores = np.zeros((n_q, 0), dtype=np.float32)
            else:
                scores, index = found[key]
                if sets is not None:
                    keep = np.array([~np.isin(row, sets[q]) for q, row in enumerate(index)]).reshape(index.shape)
                    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept items first, in rank order
                    scores, index = np.take_along_axis(scores, order, 1), np.take_along_axis(index, order, 1)
                scores, index = scores[:, :k], index[:, :k]
            out[f"{key}_index"] = gallery_lines[index].astype(np.int32)
            out[f"{key}_score"] = scores.astype(np.float32)
            if relevant is not None:
                out[f"{key}_relevant"] = relevant(np.arange(n_q), index).astype(bool).reshape(index.shape)
        results.append(out)
    return results


def save_retrievals(out_dir: Path, dataset: str, encoder: str, retrievals: dict) -> str:
    """Write :func:`compute_retrievals`' arrays (compressed .npz); return the path relative to ``out_dir``."""
    from retbench.atomic_files import atomic_write_bytes

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
    top_relevant: np.ndarray | None = None
    worst_relevant: np.ndarray | None = None
    n_ranked: np.ndarray | None = None

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
            arrays = {key: data[key] for key in ("query", "top_index", "top_score", "worst_index", "worst_score")}
            for key in ("top_relevant", "worst_relevant"):
                if key in data.files and data[key].shape == arrays[key.replace("relevant", "index")].shape:
                    arrays[key] = data[key].astype(bool)
            if "n_ranked" in data.files and data["n_ranked"].shape == arrays["query"].shape:
                arrays["n_ranked"] = data["n_ranked"]
            return Retrievals(**arrays)
    except (OSError, ValueError, KeyError):
        return None
