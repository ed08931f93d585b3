"""Names and atomic writing of the files in a result folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

from retbench.atomic_files import atomic_write_text
from retbench.jsonable import to_jsonable

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


def write_json(path: Path, document: dict) -> dict:
    """Write ``document`` as strict JSON (:func:`to_jsonable`), atomically; return the converted document."""
    converted = to_jsonable(document)
    atomic_write_text(path, json.dumps(converted, indent=1, allow_nan=False) + "\n")
    return converted
