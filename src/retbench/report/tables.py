"""The encoders x datasets mAP table (Markdown and CSV)."""

from __future__ import annotations

import csv
import io


def _cell(run: dict | None, digits: int = 3) -> str:
    if run is None or run.get("map") is None:
        return "n/a"
    text = f"{run['map']:.{digits}f}"
    interval = run.get("metrics", {}).get("map_ci95")
    if interval and None not in interval:
        text += f" ± {(interval[1] - interval[0]) / 2:.{digits}f}"
    return text


def _grid(runs: list[dict]) -> tuple[list[str], list[str], dict]:
    encoders = list(dict.fromkeys(r["encoder"] for r in runs))
    datasets = list(dict.fromkeys(r["dataset"] for r in runs))
    cells = {(r["encoder"], r["dataset"]): r for r in runs}
    return encoders, datasets, cells


def map_table_markdown(runs: list[dict]) -> str:
    """Markdown table: one row per encoder, one column per dataset; the best mAP per column in bold.

    With confidence intervals, cells read ``0.812 ± 0.010`` (± = half-width of the 95%
    bootstrap interval over queries).
    """
    encoders, datasets, cells = _grid(runs)
    best = {}
    for d in datasets:
        values = [cells[(e, d)]["map"] for e in encoders if (e, d) in cells and cells[(e, d)].get("map") is not None]
        best[d] = max(values) if values else None
    lines = ["| encoder | " + " | ".join(datasets) + " |", "|---|" + "---|" * len(datasets)]
    for e in encoders:
        row = []
        for d in datasets:
            run = cells.get((e, d))
            text = _cell(run)
            if run is not None and best[d] is not None and run.get("map") == best[d] and len(encoders) > 1:
                text = f"**{text}**"
            row.append(text)
        lines.append(f"| {e} | " + " | ".join(row) + " |")
    notes = ["", "mAP, leave-one-out (every image queries all others; AP as sklearn's average_precision_score)."]
    if any(r.get("metrics", {}).get("map_ci95") for r in runs):
        notes.append("± is the half-width of the 95% bootstrap confidence interval over queries.")
    return "\n".join(lines + notes) + "\n"


def map_table_csv(runs: list[dict]) -> str:
    """CSV in long form: ``encoder,dataset,map,map_ci95_lo,map_ci95_hi,n_images,n_queries``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["encoder", "dataset", "map", "map_ci95_lo", "map_ci95_hi", "n_images", "n_queries"])
    for r in runs:
        interval = r.get("metrics", {}).get("map_ci95") or [None, None]
        fmt = lambda v: "" if v is None else f"{v:.6f}"  # noqa: E731
        writer.writerow([r["encoder"], r["dataset"], fmt(r.get("map")), fmt(interval[0]), fmt(interval[1]),
                         r["n_images"], r["n_queries"]])  # fmt: skip
    return buffer.getvalue()
