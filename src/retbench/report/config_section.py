"""The report's configuration section: how the numbers were made (data, models, preprocessing,
weights, evaluation settings, timings, software versions and machine)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from retbench.report.markup import card, esc, is_number, num, seconds, swatch, table, th

if TYPE_CHECKING:
    from retbench.report.html import ReportContext, RunData

_EVALUATION_KEYS = ("protocol", "relevance", "score", "ap_definition", "ks", "n_bootstrap", "ci", "seed", "tie_rule",
                    "device", "backend")  # fmt: skip
_EXTRACTION_KEYS = ("batch_size", "precision", "runtime", "channels_last", "decode", "device", "preprocess",
                    "random_init", "skip_bad")


def _kv(pairs: list[tuple[str, object]]) -> str:
    return '<table class="kv">' + "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in pairs) + "</table>"


def preprocess_text(pre: dict) -> str:
    """``resize 256 bicubic; crop 224×224; mean [...] std [...]`` (escaped)."""
    if not isinstance(pre, dict) or not pre:
        return "–"
    bits = []
    if pre.get("resize") is not None:
        bits.append(
            f"resize {esc(pre['resize'])}" + (f" {esc(pre['interpolation'])}" if pre.get("interpolation") else "")
        )
    crop = pre.get("crop")
    if crop:
        bits.append("crop " + esc("×".join(str(c) for c in crop) if isinstance(crop, list) else crop))
    if pre.get("mean") is not None:
        bits.append(f"mean {esc(pre['mean'])} std {esc(pre.get('std'))}")
    return "; ".join(bits) or esc(", ".join(f"{k}={v}" for k, v in pre.items()))


def _first_per(runs: list[RunData], key: str) -> list[RunData]:
    seen: dict[str, RunData] = {}
    for r in runs:
        seen.setdefault(getattr(r, key), r)
    return list(seen.values())


def _dataset_row(r: RunData) -> str:
    config = r.run.get("config") or {}
    summary = config.get("dataset") or {}
    counts = summary.get("class_counts") or {}
    top = max(counts.values()) if counts else 0
    bars = "".join(
        f'<span style="height:{max(4, 100 * v / top):.0f}%" data-tip="{esc(k)}: {esc(v)} images"></span>'
        for k, v in counts.items()
    )
    inputs = config.get("protocol_inputs") or config  # folders before protocol_inputs kept the files in config
    where = summary.get("root") or inputs.get("labels_file") or ""
    n_images = summary.get("n_images", r.run.get("n_images", "?"))
    return (
        f'<tr><td><b>{esc(r.dataset)}</b></td><td class="n">{esc(n_images)}</td>'
        f'<td class="n">{esc(summary.get("n_classes", len(counts) or "?"))}</td>'
        f'<td class="n">{len(r.run.get("skipped") or [])}</td>'
        f'<td style="min-width:160px"><div class="bars">{bars if top else ""}</div></td>'
        f"<td><code>{esc(where)}</code></td></tr>"
    )


def _weights_text(config: dict) -> str:
    weights = (config.get("encoder") or {}).get("weights") or {}
    embeddings_file = (config.get("protocol_inputs") or config).get("embeddings_file")  # older folders: in config
    if not config.get("encoder") and embeddings_file:
        return f"embeddings from <code>{esc(embeddings_file)}</code>"
    kind = weights.get("kind")
    pill = {"pretrained": "good", "random-init": "bad"}.get(kind, "neutral")
    text = (f'<span class="pill {pill}">{esc(kind)}</span> ' if kind else "") + esc(weights.get("source") or "")
    if weights.get("sha256"):
        digest = str(weights["sha256"])
        text += f' <code data-tip="sha256 {esc(digest)}">{esc(digest[:12])}…</code>'
    return text


def _encoder_row(ctx: ReportContext, r: RunData) -> str:
    config = r.run.get("config") or {}
    enc = config.get("encoder") or {}
    backend = f"{esc(enc.get('backend', '–'))} {esc(enc.get('architecture', ''))}"
    return (
        f"<tr><td>{swatch(ctx.colours[r.encoder], r.encoder)}</td><td>{backend}</td>"
        f'<td class="n">{esc(enc.get("dim", "–"))}</td><td>{preprocess_text(enc.get("preprocess") or {})}</td>'
        f"<td>{_weights_text(config)}</td></tr>"
    )


def _timing_row(ctx: ReportContext, r: RunData) -> str:
    t = r.run.get("timings") or {}
    rate = t.get("extract_images_per_s")
    extraction = "from cache" if t.get("embeddings_from_cache") else seconds(t.get("extract_s"))
    shared = t.get("shared_by") or []  # ground-truth setups evaluated in one pass: the time is for all of them
    note = f" (all {len(shared)} setups)" if len(shared) > 1 else ""
    return (
        f"<tr><td>{esc(r.dataset)}</td><td>{swatch(ctx.colours[r.encoder], r.encoder)}</td>"
        f'<td class="n">{seconds(t.get("encoder_build_s"))}</td><td class="n">{extraction}</td>'
        f'<td class="n">{num(rate, 1) if is_number(rate) else "–"}</td>'
        f'<td class="n">{seconds(t.get("evaluate_s"))}{note}</td>'
        f'<td class="n">{seconds(t.get("retrievals_s"))}{note}</td></tr>'
    )


def configuration(ctx: ReportContext) -> str:
    """Datasets (counts), encoders (dim, preprocessing, weights), evaluation, timings, versions and machine."""
    runs = list(ctx.runs.values())
    if not runs:
        return ""
    dataset_head = [th("dataset"), th("images", True), th("classes", True), th("skipped", True),
                    th("images per class"), th("root")]  # fmt: skip
    datasets = table(dataset_head, [_dataset_row(r) for r in _first_per(runs, "dataset")])
    encoders = table([th("encoder"), th("backend"), th("dim", True), th("preprocessing"), th("weights")],
                     [_encoder_row(ctx, r) for r in _first_per(runs, "encoder")])  # fmt: skip
    timings = table([th("dataset"), th("encoder"), th("model build", True), th("extraction", True),
                     th("images/s", True), th("evaluation", True), th("retrievals", True)],
                    [_timing_row(ctx, r) for r in runs], "data sortable")  # fmt: skip
    config = runs[0].run.get("config") or {}
    evaluation = config.get("evaluation") or {}
    extraction = config.get("extraction") or {}
    ext = _kv([(k, extraction[k]) for k in _EXTRACTION_KEYS if k in extraction])
    small = [
        card("Evaluation", _kv([(k, evaluation[k]) for k in _EVALUATION_KEYS if k in evaluation])),
        card("Extraction", ext if extraction else '<p class="note">embeddings computed elsewhere</p>'),
        card("Versions", _kv(list((ctx.results.get("versions") or {}).items()))),
        card("Machine", _kv(list((ctx.results.get("machine") or {}).items()))),
    ]
    return (
        '<h2>Configuration</h2><p class="lead">How these numbers were made: data, models, preprocessing, weights, '
        "software and machine.</p>"
        + card("Datasets", datasets)
        + card("Encoders", encoders)
        + card("Timings", timings)
        + f'<div class="grid">{"".join(small)}</div>'
    )
