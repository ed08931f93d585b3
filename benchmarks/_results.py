"""Where a benchmark script leaves its results: ``<out>.md`` (the command and its table) and ``<out>.json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def save(out: Path, script: str, args, table: str, payload: dict) -> None:
    """Write the markdown table under the command that made it, and the JSON (arguments, BLAS threads, payload)."""
    from threadpoolctl import threadpool_info

    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(f"# {' '.join([script, *sys.argv[1:]])}\n\n{table}\n")
    document = {"args": {k: str(v) for k, v in vars(args).items()}, "threadpools": threadpool_info(), **payload}
    out.with_suffix(".json").write_text(json.dumps(document, indent=1) + "\n")
