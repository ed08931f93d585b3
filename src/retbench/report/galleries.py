"""Retrieval grids: for chosen queries, the query, its top-k and its worst-k retrievals."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from retbench.datasets import Dataset

RELEVANT_COLOUR = "#1a9850"
IRRELEVANT_COLOUR = "#d73027"
THUMBNAIL = 128


def select_queries(ap: np.ndarray, n_best: int = 5, n_worst: int = 5) -> list[tuple[int, str]]:
    """The first query, the ``n_best`` highest-AP and ``n_worst`` lowest-AP queries.

    Deterministic: ties are broken by row (lower row first); queries without a relevant
    item (NaN AP) are not ranked. Returns ``(row, tag)`` pairs in display order.
    """
    rows = np.arange(len(ap))
    valid = rows[~np.isnan(ap)]
    best = valid[np.lexsort((valid, -ap[valid]))][:n_best]
    worst = valid[np.lexsort((valid, ap[valid]))][:n_worst]
    chosen = [(0, "first query")] if len(ap) else []
    chosen += [(int(r), f"best {i + 1}") for i, r in enumerate(best)]
    chosen += [(int(r), f"worst {i + 1}") for i, r in enumerate(worst)]
    return chosen


def _thumbnail(path: Path) -> np.ndarray:
    """(THUMBNAIL, THUMBNAIL, 3) uint8: the image fitted into a white square."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image.draft("RGB", (THUMBNAIL * 2, THUMBNAIL * 2))  # reduced-size JPEG decoding: thumbnails only
        image = image.convert("RGB")
    return np.asarray(ImageOps.pad(image, (THUMBNAIL, THUMBNAIL), color=(255, 255, 255)))


def _short(text: str, width: int = 16) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def plot_retrieval_grid(path: Path, dataset: Dataset, vectors: np.ndarray, ap: np.ndarray, encoder: str, k: int = 5) -> Path:
    """Write the grid for one dataset and encoder.

    Rows: the first query, the 5 best and the 5 worst queries (by AP). Columns: the
    query, its top-k and its worst-k retrievals (query excluded by index); relevant
    retrievals framed green, others red; each shows label and cosine score.

    Args:
        vectors: (N, D) float32 unit rows, row i = dataset item i.
        ap: (N,) float64 per-query AP (NaN: no relevant item).
    """
    from retbench.report.plots import _pyplot
    from retbench.search.exact import topk

    chosen = select_queries(ap)
    rows = np.array([r for r, _ in chosen], dtype=np.int64)
    k = min(k, len(dataset) - 1)
    top_scores, top_idx = topk(vectors[rows], vectors, k, exclude=rows, largest=True)
    low_scores, low_idx = topk(vectors[rows], vectors, k, exclude=rows, largest=False)

    plt = _pyplot()
    n_cols = 1 + 2 * k
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(1.35 * n_cols + 0.3, 1.55 * len(rows) + 0.6), dpi=80,
                             squeeze=False)  # fmt: skip
    labels = dataset.labels
    for r, (row, tag) in enumerate(chosen):
        ap_text = "no relevant" if np.isnan(ap[row]) else f"AP {ap[row]:.3f}"
        cells = [(row, None, f"{tag}\n{ap_text}\n{_short(labels[row])}", "black")]
        for idx, score in zip(top_idx[r], top_scores[r]):
            colour = RELEVANT_COLOUR if labels[idx] == labels[row] else IRRELEVANT_COLOUR
            cells.append((int(idx), score, None, colour))
        for idx, score in zip(low_idx[r], low_scores[r]):
            colour = RELEVANT_COLOUR if labels[idx] == labels[row] else IRRELEVANT_COLOUR
            cells.append((int(idx), score, None, colour))
        for c, (idx, score, title, colour) in enumerate(cells):
            ax = axes[r, c]
            ax.imshow(_thumbnail(dataset.image_path(idx)))
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(3 if c else 1)
            ax.set_title(title if title else f"{_short(labels[idx], 12)}\n{score:.3f}", fontsize=7)
    fig.suptitle(
        f"{dataset.name} / {encoder}: each row is a query, then its top-{k} and its worst-{k} retrievals "
        "(green frame = same class; score = cosine similarity)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
