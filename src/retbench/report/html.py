"""The self-contained HTML report: ``DIR/report.html`` rebuilt from a result folder alone.

One file, CSS and JS inline, no network: thumbnails are embedded once each (base64 JPEG in a JSON
block, set on ``<img data-t>`` by the page's script), charts are inline SVG. Everything a user
controls (labels, paths, names) is escaped; JSON inside ``<script>`` cannot close the element.

- :func:`render_report` (results document + folder -> HTML text) is what tests call.
- :func:`write_report` renders ``DIR/report.html`` from ``DIR/results.json``.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retbench.errors import RetbenchError
from retbench.report import files, report_data
from retbench.report.markup import PALETTE, esc, script_json
from retbench.report.report_data import Items, Retrievals
from retbench.report.selection import ap_array
from retbench.report.tables import protocol_pairs, protocol_sentence
from retbench.report.thumbnails import ThumbnailCache

REPORT_HTML = "report.html"
_TOKEN = re.compile("\x00IMG(\\d+)\x00")


@dataclass
class RunData:
    """One run of results.json with its sidecars (None when absent)."""

    dataset: str
    encoder: str
    run: dict
    ap: np.ndarray
    retrievals: Retrievals | None


class Thumbs:
    """Images of the page: ``img()`` returns a token, :meth:`resolve` turns tokens into ``<img>`` tags
    (thumbnails made in parallel, each embedded once) or "image not found" placeholders."""

    def __init__(self, cache: ThumbnailCache | None) -> None:
        self.cache = cache
        self._requests: list[tuple[Path | None, str, str]] = []

    def img(self, path: Path | None, alt: str, css: str = "th") -> str:
        self._requests.append((path, alt, css))
        return f"\x00IMG{len(self._requests) - 1}\x00"

    def resolve(self, page: str) -> tuple[str, dict[str, str]]:
        """The page with every token replaced, and the id -> base64 JPEG map to embed."""
        paths = [p for p, _, _ in self._requests if p is not None]
        if self.cache is not None:
            self.cache.prefetch(paths)
        ids: dict[Path, str] = {}
        data: dict[str, str] = {}
        for path in paths:
            if path in ids or self.cache is None:
                continue
            jpeg = self.cache.get(path)
            if jpeg is not None:
                ids[path] = str(len(ids))
                data[ids[path]] = base64.b64encode(jpeg).decode("ascii")

        def tag(match: re.Match) -> str:
            path, alt, css = self._requests[int(match.group(1))]
            if path is not None and path in ids:
                return f'<img class="{css}" data-t="{ids[path]}" alt="{esc(alt)}" decoding="async">'
            why = "image not found" if path is not None else "no image"
            return f'<div class="{css} missing" role="img" aria-label="{esc(alt)}: {why}">{why}</div>'

        return _TOKEN.sub(tag, page), data


@dataclass
class ReportContext:
    """Everything the sections read: the results document, sidecars, colours and the image registry."""

    results: dict
    folder: Path
    datasets: list[str]
    encoders: list[str]
    runs: dict[tuple[str, str], RunData]
    items: dict[str, Items | None]
    colours: dict[str, str]
    thumbs: Thumbs
    gallery_items: dict[str, Items | None] = field(default_factory=dict)

    def gallery(self, dataset: str) -> Items | None:
        """The ranked items of a dataset: its gallery list (query/gallery, ground truth) or its queries (leave-one-out)."""
        if dataset in self.gallery_items:
            return self.gallery_items[dataset]
        return self.items.get(dataset)

    def dataset_runs(self, dataset: str) -> list[RunData]:
        return [self.runs[(dataset, e)] for e in self.encoders if (dataset, e) in self.runs]


def load_context(results: dict, folder: Path, thumbnails: ThumbnailCache | None) -> ReportContext:
    """Read the sidecars named by each run's ``report_data`` (missing ones leave gaps, never errors)."""
    runs_list = results.get("runs") or []
    datasets = list(dict.fromkeys(str(r["dataset"]) for r in runs_list))
    encoders = list(dict.fromkeys(str(r["encoder"]) for r in runs_list))
    items: dict[str, Items | None] = {}
    gallery_items: dict[str, Items | None] = {}
    runs: dict[tuple[str, str], RunData] = {}
    for run in runs_list:
        dataset, encoder = str(run["dataset"]), str(run["encoder"])
        refs = run.get("report_data") or {}
        if dataset not in items or items[dataset] is None:
            items[dataset] = report_data.load_items(folder, refs["items"]) if refs.get("items") else None
        if refs.get("gallery_items") and gallery_items.get(dataset) is None:
            gallery_items[dataset] = report_data.load_items(folder, refs["gallery_items"])
        retrievals = report_data.load_retrievals(folder, refs["retrievals"]) if refs.get("retrievals") else None
        ap = ap_array(run.get("ap") or [])
        runs[(dataset, encoder)] = RunData(dataset, encoder, run, ap, retrievals)
    colours = {e: PALETTE[i % len(PALETTE)] for i, e in enumerate(encoders)}
    return ReportContext(results, folder, datasets, encoders, runs, items, colours, Thumbs(thumbnails), gallery_items)


def protocols_text(ctx: ReportContext) -> str:
    """One sentence per protocol and AP definition in the report (HTML)."""
    pairs = protocol_pairs([r.run for r in ctx.runs.values()]) or [("leave-one-out", "sklearn")]
    sentences = [esc(protocol_sentence(p, a)) + "." for p, a in pairs]
    return " ".join(text[:1].upper() + text[1:] for text in sentences)


def _asset(name: str) -> str:
    return (Path(__file__).parent / "assets" / name).read_text(encoding="utf-8")


def render_report(results: dict, folder: str | Path, *, thumbnails: ThumbnailCache | None = None) -> str:
    """The report page for a results document whose sidecars live in ``folder``.

    Args:
        results: the results.json document (``runs``, ``comparisons``, ``versions``, ...).
        folder: the result folder (sidecars under ``data/`` are read from it).
        thumbnails: where thumbnails come from (None: no images are embedded; placeholders instead).

    Returns:
        The whole HTML document (UTF-8 text).
    """
    from retbench.report import config_section, gallery_sections, sections

    ctx = load_context(results, Path(folder), thumbnails)
    blocks = [
        ("summary", "Summary", sections.summary(ctx)),
        ("pr", "PR curves", sections.pr_curves(ctx)),
        ("classes", "Per-class AP", sections.per_class(ctx)),
        ("galleries", "Galleries", gallery_sections.galleries(ctx)),
        ("confusions", "Confusions", gallery_sections.confusions(ctx)),
        ("disagreements", "Disagreements", gallery_sections.disagreements(ctx)),
        ("config", "Configuration", config_section.configuration(ctx)),
    ]
    blocks = [b for b in blocks if b[2]]
    nav = "".join(f'<a href="#{key}">{esc(title)}</a>' for key, title, _ in blocks)
    body = "".join(f'<section class="block" id="{key}">{content}</section>' for key, _, content in blocks)
    body, thumbs = ctx.thumbs.resolve(body)
    title = "retbench report: " + ", ".join(ctx.datasets) if ctx.datasets else "retbench report"
    created = results.get("created") or ""
    invocation = results.get("invocation") or ""
    version = results.get("retbench") or ""
    header = (
        '<header class="top"><div class="wrap"><div><h1>retbench report'
        f"<small>{esc(', '.join(ctx.datasets))}</small></h1>"
        f'<div class="meta">{len(ctx.encoders)} encoder(s) × {len(ctx.datasets)} dataset(s)'
        f"{' · ' + esc(created) if created else ''}{' · retbench ' + esc(version) if version else ''}</div></div>"
        f'<div class="meta">{"<code>" + esc(invocation) + "</code>" if invocation else ""}</div></div></header>'
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="retbench">'
        f"<title>{esc(title)}</title><style>{_asset('report.css')}</style></head><body>"
        f'{header}<nav class="toc"><div class="wrap">{nav}</div></nav><main class="wrap">{body}</main>'
        '<footer class="wrap">Made by retbench from <code>results.json</code> and the sidecars in <code>data/</code> '
        f"of this folder; rebuild it with <code>retbench report DIR</code>. {protocols_text(ctx)}</footer>"
        '<div id="tip" role="tooltip"></div>'
        '<noscript><div class="callout warn">Thumbnails, tabs and sorting need JavaScript.</div></noscript>'
        f'<script type="application/json" id="thumbs">{script_json(thumbs)}</script>'
        f"<script>{_asset('report.js')}</script></body></html>\n"
    )


def thumbnail_cache(cache_dir: str | Path | None = None) -> ThumbnailCache:
    """The default thumbnail cache: ``<cache_dir or the retbench cache>/thumbnails``."""
    from retbench.environment import default_cache_dir

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return ThumbnailCache(root / "thumbnails")


def write_report(folder: str | Path, results: dict | None = None, *, cache_dir: str | Path | None = None) -> Path:
    """Render ``folder/report.html`` (from ``folder/results.json`` unless ``results`` is given).

    Raises:
        RetbenchError: no readable results.json in ``folder``.
    """
    from retbench.atomic_files import atomic_write_text

    folder = Path(folder)
    if results is None:
        path = folder / files.RESULTS_JSON
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RetbenchError(f"{path} not found: `retbench report DIR` needs a result folder written by "
                                "`retbench evaluate` or `retbench demo`") from None  # fmt: skip
        except (OSError, ValueError) as exc:
            raise RetbenchError(f"{path}: cannot read the results document ({exc})") from exc
        if not isinstance(results, dict) or not isinstance(results.get("runs"), list):
            raise RetbenchError(f"{path}: not a retbench results document (no 'runs' list)")
    page = render_report(results, folder, thumbnails=thumbnail_cache(cache_dir))
    out = folder / REPORT_HTML
    atomic_write_text(out, page)
    return out
