"""Retrieval grids: for chosen queries, the query, its top-k and its worst-k retrievals."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from retbench.datasets import Dataset
from retbench.report.thumbnails import SIZE as THUMBNAIL
from retbench.report.thumbnails import ThumbnailCache

RELEVANT_COLOUR = "#1a9850"
IRRELEVANT_COLOUR = "#d73027"


def select_queries(ap: np.ndarray, n_best: int = 5, n_worst: int = 5) -> list[tuple[int, str]]:
    """The first query, then the best and worst queries as the HTML report picks them
    (:func:`retbench.report.selection.best_and_worst`). Returns ``(row, tag)`` pairs in display order."""
    from retbench.report.selection import best_and_worst

    best, worst = best_and_worst(ap, max(n_best, n_worst))
    chosen = [(0, "first query")] if len(ap) else []
    chosen += [(int(r), f"best {i + 1}") for i, r in enumerate(best[:n_best])]
    chosen += [(int(r), f"worst {i + 1}") for i, r in enumerate(worst[:n_worst])]
    return chosen


def _thumbnail(path: Path, thumbnails: ThumbnailCache) -> np.ndarray:
    """(THUMBNAIL, THUMBNAIL, 3) uint8: the image's cached thumbnail fitted into a white square (a grey
    square when the image cannot be read)."""
    from PIL import Image, ImageOps

    data = thumbnails.get(path)
    if data is None:
        return np.full((THUMBNAIL, THUMBNAIL, 3), 200, dtype=np.uint8)
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(ImageOps.pad(image.convert("RGB"), (THUMBNAIL, THUMBNAIL), color=(255, 255, 255)))


def _short(text: str, width: int = 16) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def plot_retrieval_grid(path: Path, title: str, queries: Dataset, gallery: Dataset, ap: np.ndarray,
                        retrievals: dict, k: int = 5, *, thumbnails: ThumbnailCache | None = None) -> Path:  # fmt: skip
    """Write the grid of one run, from its saved retrievals (any protocol).

    Rows: the first query, the 5 best and the 5 worst queries (by AP). Columns: the query, its
    top-k and its worst-k retrievals as saved by :mod:`retbench.report.report_data` (leave-one-out:
    the query excluded by index; ground truth: junk excluded); relevant retrievals framed green,
    others red; each shows label and cosine score.

    Args:
        title: ``dataset / encoder`` text of the figure title.
        queries: the query list (leave-one-out: the dataset); gallery: the ranked list (the same).
        ap: (Q,) float64 per-query AP of the list lines of ``queries`` (NaN: no relevant item, or skipped).
        retrievals: ``query`` (R,) query lines, ``top_index`` / ``worst_index`` gallery lines,
            ``top_score`` / ``worst_score``, and ``top_relevant`` / ``worst_relevant`` (when absent:
            same label).
        thumbnails: where thumbnails are made and cached (default: made here, not kept on disk).
    """
    from retbench.report.plots import _pyplot

    lines = np.asarray(retrievals["query"], dtype=np.int64)
    chosen = [(lines[row], tag) for row, tag in select_queries(np.asarray(ap, dtype=np.float64)[lines])]
    row_of = {int(line): row for row, line in enumerate(lines.tolist())}
    k = min(k, retrievals["top_index"].shape[1], retrievals["worst_index"].shape[1])

    def strip(key: str, row: int, query: int) -> list[tuple[int, float, bool]]:
        index = retrievals[f"{key}_index"][row][:k]
        relevant = retrievals.get(f"{key}_relevant")
        flags = relevant[row][:k] if relevant is not None else [gallery.labels[i] == queries.labels[query] for i in index]
        return [(int(i), float(s), bool(f)) for i, s, f in zip(index, retrievals[f"{key}_score"][row][:k], flags)]

    thumbnails = thumbnails if thumbnails is not None else ThumbnailCache(None)
    plt = _pyplot()
    n_cols = 1 + 2 * k
    fig, axes = plt.subplots(max(len(chosen), 1), n_cols, figsize=(1.35 * n_cols + 0.3, 1.55 * len(chosen) + 0.6), dpi=80,
                             squeeze=False)  # fmt: skip
    for r, (line, tag) in enumerate(chosen):
        row = row_of[int(line)]
        ap_text = "no relevant" if np.isnan(ap[line]) else f"AP {ap[line]:.3f}"
        cells = [(queries, int(line), None, f"{tag}\n{ap_text}\n{_short(queries.labels[line])}", "black")]
        for key in ("top", "worst"):
            for idx, score, relevant in strip(key, row, int(line)):
                cells.append((gallery, idx, score, None, RELEVANT_COLOUR if relevant else IRRELEVANT_COLOUR))
        thumbnails.prefetch([items.image_path(idx) for items, idx, *_ in cells])
        for c, (items, idx, score, text, colour) in enumerate(cells):
            ax = axes[r, c]
            ax.imshow(_thumbnail(items.image_path(idx), thumbnails))
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(3 if c else 1)
            ax.set_title(text if text else f"{_short(items.labels[idx], 12)}\n{score:.3f}", fontsize=7)
    fig.suptitle(
        f"{title}: each row is a query, then its top-{k} and its worst-{k} retrievals "
        "(green frame = relevant; score = cosine similarity)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
