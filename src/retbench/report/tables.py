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


PROTOCOL_NOTES = {
    "leave-one-out": "leave-one-out (every image queries all others; relevant = same label)",
    "query/gallery": "query/gallery (every query ranks the whole gallery; relevant = same label)",
    "ground truth": "per-query ground truth (relevant = the query's ok list; its junk items are removed "
                    "from the ranking)",
}
AP_NOTES = {
    "sklearn": "AP as sklearn's average_precision_score",
    "trapezoid": "AP by the trapezoid rule of revisitop's compute_ap (Revisited Oxford/Paris)",
}


def protocol_of(run: dict) -> str:
    """``leave-one-out``, ``query/gallery`` or ``ground truth`` (from the run's config)."""
    config = run.get("config") or {}
    protocol = str(config.get("protocol") or (config.get("evaluation") or {}).get("protocol") or "leave-one-out")
    return "ground truth" if protocol.startswith("ground truth") else protocol


def ap_definition_of(run: dict) -> str:
    """``sklearn`` or ``trapezoid`` (from the run's config; older folders: sklearn)."""
    return str(((run.get("config") or {}).get("evaluation") or {}).get("ap_definition") or "sklearn")


def protocol_pairs(runs: list[dict]) -> list[tuple[str, str]]:
    """The distinct (protocol, AP definition) pairs of ``runs``, in the order of the runs."""
    pairs: list[tuple[str, str]] = []
    for run in runs:
        pair = (protocol_of(run), ap_definition_of(run))
        if pair not in pairs:
            pairs.append(pair)
    return pairs


def _protocol_notes(runs: list[dict]) -> list[str]:
    """One line per (protocol, AP definition) present, in the order of the runs."""
    seen = protocol_pairs(runs)
    return [f"mAP, {protocol_sentence(p, a)}." for p, a in seen]


def protocol_sentence(protocol: str, ap_definition: str) -> str:
    """What a protocol and an AP definition mean, in one plain-text clause (table.md and report.html)."""
    return f"{PROTOCOL_NOTES.get(protocol, protocol)}; {AP_NOTES.get(ap_definition, ap_definition)}"


def _comparison_lines(comparisons: list[dict]) -> list[str]:
    lines = ["", "Paired comparisons (same queries; ΔAP = A - B with its 95% bootstrap CI):", "",
             "| dataset | A | B | mean ΔAP | 95% CI | permutation p | sign test p | A / B better / ties |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    fmt = lambda v: "n/a" if v is None or v != v else f"{v:+.3f}"  # noqa: E731
    for c in comparisons:
        ci = c.get("ci95") or [None, None]
        perm = c.get("permutation_p_value")
        sign = c.get("sign_test_p_value_text") or ("n/a" if c.get("sign_test_p_value") is None
                                                    else f"{c['sign_test_p_value']:.3g}")  # fmt: skip
        lines.append(f"| {c['dataset']} | {c['encoder_a']} | {c['encoder_b']} | {fmt(c.get('mean_difference'))} | "
                     f"[{fmt(ci[0])}, {fmt(ci[1])}] | {'n/a' if perm is None else f'{perm:.3g}'} | {sign} | "
                     f"{c.get('n_a_better')} / {c.get('n_b_better')} / {c.get('n_ties')} |")  # fmt: skip
    return lines


def map_table_markdown(runs: list[dict], comparisons: list[dict] | None = None) -> str:
    """Markdown table: one row per encoder, one column per dataset; the best mAP per column in bold.

    With confidence intervals, cells read ``0.812 ± 0.010`` (± = half-width of the 95%
    bootstrap interval over queries). Notes say which protocol and AP definition each number
    uses; ``comparisons`` (results.json's) add a table of paired comparisons, whose sign-test
    p-values are written exactly even below float64's range (``1.6e-903``).
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
    notes = [""] + _protocol_notes(runs)
    if any(r.get("metrics", {}).get("map_ci95") for r in runs):
        notes.append("± is the half-width of the 95% bootstrap confidence interval over queries.")
    if comparisons:
        notes += _comparison_lines(comparisons)
    return "\n".join(lines + notes) + "\n"


def map_table_csv(runs: list[dict]) -> str:
    """CSV in long form: ``encoder,dataset,map,map_ci95_lo,map_ci95_hi,n_images,n_queries,protocol,ap_definition``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["encoder", "dataset", "map", "map_ci95_lo", "map_ci95_hi", "n_images", "n_queries", "protocol",
                     "ap_definition"])  # fmt: skip
    for r in runs:
        interval = r.get("metrics", {}).get("map_ci95") or [None, None]
        fmt = lambda v: "" if v is None else f"{v:.6f}"  # noqa: E731
        writer.writerow([r["encoder"], r["dataset"], fmt(r.get("map")), fmt(interval[0]), fmt(interval[1]),
                         r["n_images"], r["n_queries"], protocol_of(r), ap_definition_of(r)])  # fmt: skip
    return buffer.getvalue()
