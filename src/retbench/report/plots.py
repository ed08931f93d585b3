"""Precision-recall curves (matplotlib, written as PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_pr_curves(path: Path, dataset: str, curves: Sequence[tuple[str, np.ndarray, np.ndarray, float]]) -> Path:
    """One dataset's PR curves, one line per encoder.

    Args:
        curves: ``(encoder, recall_levels (L,), mean_interpolated_precision (L,), map)`` per encoder.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    for encoder, recall, precision, map_value in sorted(curves, key=lambda c: -(c[3] if c[3] == c[3] else -1)):
        ax.plot(recall, precision, label=f"{encoder} (mAP {map_value:.3f})", linewidth=1.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("mean interpolated precision")
    ax.set_title(f"{dataset}: precision-recall (leave-one-out, mean over queries)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
