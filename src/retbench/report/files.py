"""Names and atomic writing of the files in a result folder."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from retbench.atomic_files import atomic_write_text

RESULTS_JSON = "results.json"
TABLE_MD = "table.md"
TABLE_CSV = "table.csv"
# Every file a run writes matches one of these; a rerun deletes them first (results replace, never append).
OWNED_PATTERNS = (RESULTS_JSON, TABLE_MD, TABLE_CSV, "pr_*.png", "retrievals_*.png", "report.html",
                  "data/items_*.json", "data/retrievals_*.npz")


def slug(text: str) -> str:
    """A file-name-safe form of a dataset or encoder name (``timm:a.b/c`` -> ``timm-a.b-c``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return cleaned or "unnamed"


def pr_figure_name(dataset: str) -> str:
    return f"pr_{slug(dataset)}.png"


def gallery_figure_name(dataset: str, encoder: str) -> str:
    return f"retrievals_{slug(dataset)}_{slug(encoder)}.png"


def clear_previous_results(out_dir: Path) -> list[Path]:
    """Delete the files an earlier run wrote into ``out_dir`` (only retbench's own); return them."""
    removed = []
    for pattern in OWNED_PATTERNS:
        for path in out_dir.glob(pattern):
            if path.is_file():
                path.unlink()
                removed.append(path)
    return removed


def to_jsonable(value):
    """NaN/inf -> None and numpy scalars/arrays -> Python, recursively (results.json is strict JSON)."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, document: dict) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(document), indent=1, allow_nan=False) + "\n")
