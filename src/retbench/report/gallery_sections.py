"""Report sections made of images: retrieval galleries, confused class pairs, encoder disagreements.

They read the retrieval sidecars (``data/retrievals_*.npz``) and the items (``data/items_*.json``:
the queries, and for the query/gallery and ground-truth protocols the gallery too); images come
from the dataset's folder through the thumbnail cache. A retrieval is relevant as the sidecar says
(same label, or in the query's ground-truth ok list; older folders: same label). When a folder
holds no such data, or the dataset has no images, a note says why instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from retbench.report.markup import ap_colour, card, esc, swatch
from retbench.report.selection import ConfusedPair, best_and_worst, confused_pairs
from retbench.report.selection import disagreements as disagreement_lines

if TYPE_CHECKING:
    from retbench.report.html import ReportContext, RunData
    from retbench.report.report_data import Items

N_QUERIES = 5
N_DISAGREEMENTS = 4
N_PAIRS = 8
MAX_PAIRS_OF_ENCODERS = 6

_LEGEND = (
    '<div class="legend-marks"><span><span class="k" style="border-color:var(--good)"></span>relevant to the query '
    '(same class, or in its ground-truth ok list)</span><span><span class="k" style="border-color:var(--bad)"></span>'
    "not relevant</span><span>number = rank; value = cosine similarity; hover an image for its label and file</span>"
    "</div>"
)


def _tabs(names: list[str], panels: list[str]) -> str:
    """Panels with a tab bar (report.js shows one at a time; without JS all are shown)."""
    if len(panels) == 1:
        return panels[0]
    buttons = "".join(f'<button type="button" role="tab">{n}</button>' for n in names)
    body = "".join(f'<div class="panel" role="tabpanel">{p}</div>' for p in panels)
    return f'<div class="tabbed"><div class="tabs" role="tablist">{buttons}</div>{body}</div>'


def _swatch(ctx: ReportContext, encoder: str) -> str:
    return swatch(ctx.colours.get(encoder, "#999"), encoder)


def _ap_badge(ap: float) -> str:
    if ap != ap:
        return f'<span class="apbadge" style="background:{ap_colour(None)}">no relevant</span>'
    return f'<span class="apbadge" style="background:{ap_colour(ap)}">AP {ap:.3f}</span>'


def _figure(ctx: ReportContext, items: Items, line: int, css: str, tip: str, caption: str, mark: str = "") -> str:
    """One thumbnail tile; ``tip`` (plain text) shows on hover, ``caption`` and ``mark`` are markup."""
    label = items.labels[line]
    image = ctx.thumbs.img(items.image_path(line), label)
    mark_html = f'<span class="mark">{mark}</span>' if mark else ""
    return (
        f'<figure class="{css}" data-tip="{esc(tip)}">{image}{mark_html}'
        f'<figcaption><span class="lab">{esc(label)}</span>{caption}</figcaption></figure>'
    )


def _query_cell(ctx: ReportContext, items: Items, line: int, extra: str) -> str:
    label = items.labels[line]
    tip = f"query · {label}\nfile: {items.name(line)} (list line {line + 1})"
    image = ctx.thumbs.img(items.image_path(line), f"query: {label}")
    return (
        f'<div class="qcell" data-tip="{esc(tip)}">{image}<div class="qlabel">{esc(label)}</div>'
        f'<div class="qmeta">{extra}</div></div>'
    )


def _relevance(r: RunData, key: str, row: int, queries: Items, gallery: Items, query: int) -> list[bool]:
    """Whether each saved ``key`` (top / worst) retrieval of ``row`` is relevant to its query."""
    ret = r.retrievals
    saved = ret.top_relevant if key == "top" else ret.worst_relevant
    lines = (ret.top_index if key == "top" else ret.worst_index)[row]
    if saved is not None:
        return [bool(v) for v in saved[row]]
    return [gallery.labels[line] == queries.labels[query] for line in lines.tolist()]


def _tiles(ctx: ReportContext, gallery: Items, lines: np.ndarray, scores: np.ndarray, relevant: list[bool],
           rank_of: Callable[[int], str], numbered: bool = True) -> str:  # fmt: skip
    """Retrieved images of a query: framed green (relevant) or red, with rank and score."""
    out = []
    for i, (line, score, hit) in enumerate(zip(lines.tolist(), scores.tolist(), relevant)):
        verdict = "✓ relevant" if hit else "✗ not relevant"
        tip = f"{verdict}: {gallery.labels[line]}\nscore {score:.3f} · {rank_of(i)}\nfile: {gallery.name(line)}"
        mark = ("✓" if hit else "✗") + (f" {i + 1}" if numbered else "")
        caption = f'<br><span class="num">{score:.3f}</span>'
        out.append(_figure(ctx, gallery, line, f"tile {'rel' if hit else 'irr'}", tip, caption, mark))
    return f'<div class="tiles">{"".join(out)}</div>'


def _n_ranked(r: RunData, row: int) -> int:
    ret = r.retrievals
    if ret.n_ranked is not None:
        return int(ret.n_ranked[row])
    return len(ret.query) - 1  # leave-one-out folders written before n_ranked existed


def _gallery_row(ctx: ReportContext, items: Items, gallery: Items, r: RunData, line: int) -> str:
    ret, row = r.retrievals, r.retrievals.row_of_line[line]
    top_i, top_s = ret.top_index[row], ret.top_score[row]
    n_db = _n_ranked(r, row)
    top_relevant = _relevance(r, "top", row, items, gallery, line)
    top = _tiles(ctx, gallery, top_i, top_s, top_relevant, lambda i: f"rank {i + 1}")
    worst = _tiles(ctx, gallery, ret.worst_index[row], ret.worst_score[row],
                   _relevance(r, "worst", row, items, gallery, line), lambda i: f"rank {n_db - i} of {n_db}",
                   numbered=False)  # fmt: skip
    meta = f'{_ap_badge(r.ap[line])}<span class="ln">line {line + 1}</span>'
    return (
        f'<div class="qrow">{_query_cell(ctx, items, line, meta)}'
        f'<div class="strips"><div class="strip"><div class="cap">top-{len(top_i)} · <b>{sum(top_relevant)}</b> relevant'
        f'</div>{top}</div><div class="strip"><div class="cap">worst-{len(ret.worst_index[row])}</div>{worst}</div>'
        "</div></div>"
    )


def _usable(ctx: ReportContext, dataset: str) -> tuple[Items | None, Items | None, str]:
    """The dataset's query and gallery items when galleries can be drawn, else None, None and why."""
    items, gallery = ctx.items.get(dataset), ctx.gallery(dataset)
    if items is None or gallery is None:
        return None, None, (
            "this result folder has no retrieval data (written by an older retbench, or the sidecars in "
            "<code>data/</code> were removed): rerun <code>retbench evaluate</code> to get them"
        )
    if not items.has_images or not gallery.has_images:
        return None, None, "the embeddings were evaluated without their images, so there is nothing to show"
    return items, gallery, ""


def _missing_images_note(*lists: Items) -> str:
    for items in dict.fromkeys(lists):
        if items.images_dir is not None and not items.images_dir.is_dir():
            return (
                f'<div class="callout warn">The images of this dataset are not at <code>{esc(items.images_dir)}</code> '
                "any more (moved or deleted?): the galleries show placeholders.</div>"
            )
    return ""


def galleries(ctx: ReportContext) -> str:
    """Per dataset and encoder: the best and the worst queries, each with its top-k and worst-k."""
    cards = []
    for d in ctx.datasets:
        items, gallery, why = _usable(ctx, d)
        runs = [r for r in ctx.dataset_runs(d) if r.retrievals is not None]
        if items is None or gallery is None or not runs:
            cards.append(card(esc(d), f'<p class="note">No galleries: {why or "no retrieval data"}.</p>'))
            continue
        panels = []
        for r in runs:
            best, worst = best_and_worst(r.ap, N_QUERIES)
            body = [f'<h4>Best {len(best)} queries <span class="sub">highest AP</span></h4>']
            body += [_gallery_row(ctx, items, gallery, r, line) for line in best if line in r.retrievals.row_of_line]
            body.append(f'<h4>Worst {len(worst)} queries <span class="sub">lowest AP</span></h4>')
            body += [_gallery_row(ctx, items, gallery, r, line) for line in worst if line in r.retrievals.row_of_line]
            panels.append(f'<div class="gallery" data-encoder="{esc(r.encoder)}">{"".join(body)}</div>')
        tabs = _tabs([_swatch(ctx, r.encoder) for r in runs], panels)
        cards.append(card(esc(d), _missing_images_note(items, gallery) + _LEGEND + tabs))
    return (
        '<h2>Retrieval galleries</h2><p class="lead">For each encoder, the queries it answers best and worst: the '
        "query, its top-ranked retrievals and the ones it ranks last (leave-one-out: the query itself excluded; "
        "query/gallery: from the gallery; ground truth: junk images left out).</p>" + "".join(cards)
    )


def _example(ctx: ReportContext, items: Items | None, example: tuple[int, int, float] | None) -> str:
    if example is None or items is None:
        return ""
    query, hit, score = example
    tip_q = f"query · {items.labels[query]}\nfile: {items.name(query)}"
    tip_h = f"retrieved · {items.labels[hit]}\nscore {score:.3f}\nfile: {items.name(hit)}"
    return (
        f'<div class="ex">{_figure(ctx, items, query, "tile", tip_q, "")}<span class="arrow">→</span>'
        f"{_figure(ctx, items, hit, 'tile irr', tip_h, f'<br><span class=num>{score:.3f}</span>')}</div>"
    )


def _pair_box(ctx: ReportContext, items: Items | None, p: ConfusedPair) -> str:
    a, b = esc(p.a), esc(p.b)
    return (
        f'<div class="pair"><div class="title"><b>{a} ↔ {b}</b><span class="num" '
        f'data-tip="share of the two classes\' top slots taken by the other class">{p.rate * 100:.1f}%</span></div>'
        f'<div class="meter"><span style="width:{min(100.0, p.rate * 100):.1f}%"></span></div>'
        f'<div class="note">{a} → {b}: {p.rate_ab * 100:.1f}% ({p.a_to_b} of {p.slots_a}) · '
        f"{b} → {a}: {p.rate_ba * 100:.1f}% ({p.b_to_a} of {p.slots_b})</div>"
        f'<div class="examples">{_example(ctx, items, p.example_ab)}{_example(ctx, items, p.example_ba)}</div></div>'
    )


def confusions(ctx: ReportContext) -> str:
    """Per dataset and encoder: the class pairs that take most of each other's top places."""
    cards, depth = [], 0
    for d in ctx.datasets:
        items = ctx.items.get(d)
        runs = [r for r in ctx.dataset_runs(d) if r.retrievals is not None]
        if items is None or not runs or d in ctx.gallery_items:
            continue  # class pairs are defined on one labelled list (leave-one-out)
        depth = max([depth] + [r.retrievals.top_index.shape[1] for r in runs])
        panels = []
        for r in runs:
            ret = r.retrievals
            pairs = confused_pairs(items.labels, ret.query, ret.top_index, ret.top_score, N_PAIRS)
            boxes = "".join(_pair_box(ctx, items if items.has_images else None, p) for p in pairs)
            none = '<p class="note">No confusions: the top places of every query hold its own class.</p>'
            panels.append(f'<div class="pairs">{boxes}</div>' if pairs else none)
        cards.append(card(esc(d), _tabs([_swatch(ctx, r.encoder) for r in runs], panels)))
    if not cards:
        return ""
    return (
        '<h2>Most confused class pairs</h2><p class="lead">Of the first R retrievals of each query (R = its number of '
        f"relevant images, at most {depth}: the places a perfect ranking fills with its own class), the share taken "
        "by the other class, both ways. Each example is the most similar such pair.</p>" + "".join(cards)
    )


def _side(ctx: ReportContext, items: Items, gallery: Items, r: RunData, line: int) -> str:
    row = r.retrievals.row_of_line.get(line)
    if row is None:
        return ""
    tiles = _tiles(ctx, gallery, r.retrievals.top_index[row], r.retrievals.top_score[row],
                   _relevance(r, "top", row, items, gallery, line), lambda i: f"rank {i + 1}")  # fmt: skip
    return f'<div class="side"><div class="cap">{_swatch(ctx, r.encoder)} {_ap_badge(r.ap[line])}</div>{tiles}</div>'


def _pair_panel(ctx: ReportContext, items: Items, gallery: Items, a: RunData, b: RunData) -> str:
    a_better, b_better = disagreement_lines(a.ap, b.ap, N_DISAGREEMENTS)
    if not a_better and not b_better:
        return f'<p class="note">{esc(a.encoder)} and {esc(b.encoder)} have the same AP on every query.</p>'
    body = []
    for first, second, lines in ((a, b, a_better), (b, a, b_better)):
        body.append(
            f"<h4>{esc(first.encoder)} beats {esc(second.encoder)} <span class=sub>largest AP differences</span></h4>"
        )
        if not lines:
            body.append('<p class="note">No such query.</p>')
        for line in lines:
            delta = f'<span class="num">ΔAP {first.ap[line] - second.ap[line]:+.3f}</span>'
            sides = _side(ctx, items, gallery, a, line) + _side(ctx, items, gallery, b, line)
            body.append(f'<div class="vs">{_query_cell(ctx, items, line, delta)}{sides}</div>')
    return "".join(body)


def disagreements(ctx: ReportContext) -> str:
    """Per dataset and pair of encoders: the queries where their APs differ most, their top-k side by side."""
    cards = []
    for d in ctx.datasets:
        items, gallery, why = _usable(ctx, d)
        runs = [r for r in ctx.dataset_runs(d) if r.retrievals is not None]
        if len(runs) < 2:
            continue
        if items is None or gallery is None:
            cards.append(card(esc(d), f'<p class="note">No side-by-side: {why}.</p>'))
            continue
        pairs = [(a, b) for i, a in enumerate(runs) for b in runs[i + 1 :]][:MAX_PAIRS_OF_ENCODERS]
        names = [f"{esc(a.encoder)} vs {esc(b.encoder)}" for a, b in pairs]
        panels = [_pair_panel(ctx, items, gallery, a, b) for a, b in pairs]
        cards.append(card(esc(d), _LEGEND + _tabs(names, panels)))
    if not cards:
        return ""
    return (
        '<h2>Where encoders disagree</h2><p class="lead">The queries with the largest difference in AP between two '
        "encoders, with both encoders' top retrievals side by side.</p>" + "".join(cards)
    )
