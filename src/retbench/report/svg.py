"""Inline SVG charts for the HTML report (pure functions: data in, markup out)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from retbench.report.markup import attr_json, esc

WIDTH, HEIGHT = 640, 380
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 14, 44


@dataclass(frozen=True)
class Curve:
    """One encoder's curve: ``precision[i]`` at ``recall[i]`` (None where undefined)."""

    name: str
    colour: str
    recall: Sequence[float]
    precision: Sequence[float | None]
    map: float | None


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def pr_chart(curves: Sequence[Curve], title: str, *, legend: bool = True) -> str:
    """A precision-recall chart: one line per curve, gridlines, axes, and a hover cursor (report.js).

    The markup escapes every name; the curve data travels in a ``data-curves`` JSON attribute.
    """
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(r: float) -> float:
        return LEFT + r * plot_w

    def y(p: float) -> float:
        return TOP + (1 - p) * plot_h

    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{esc(title)}">']
    grid = []
    for i in range(6):
        v = i / 5
        grid.append(f'<line x1="{_fmt(x(0))}" x2="{_fmt(x(1))}" y1="{_fmt(y(v))}" y2="{_fmt(y(v))}"/>')
        grid.append(f'<line x1="{_fmt(x(v))}" x2="{_fmt(x(v))}" y1="{_fmt(y(0))}" y2="{_fmt(y(1))}"/>')
    parts.append('<g class="grid">' + "".join(grid) + "</g>")
    axis = []
    for i in range(6):
        v = i / 5
        axis.append(f'<text x="{_fmt(x(0) - 8)}" y="{_fmt(y(v) + 4)}" text-anchor="end">{v:.1f}</text>')
        axis.append(f'<text x="{_fmt(x(v))}" y="{_fmt(y(0) + 18)}" text-anchor="middle">{v:.1f}</text>')
    axis.append(f'<text x="{_fmt(LEFT + plot_w / 2)}" y="{HEIGHT - 6}" text-anchor="middle">recall</text>')
    axis.append(f'<text transform="translate(13 {_fmt(TOP + plot_h / 2)}) rotate(-90)" text-anchor="middle">'
                "mean interpolated precision</text>")  # fmt: skip
    parts.append('<g class="axis">' + "".join(axis) + "</g>")
    parts.append(f'<rect class="frame" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>')
    for curve in curves:
        d, pen_down = [], False
        for r, p in zip(curve.recall, curve.precision):
            if p is None:
                pen_down = False
                continue
            d.append(f"{'L' if pen_down else 'M'}{_fmt(x(r))} {_fmt(y(p))}")
            pen_down = True
        if d:
            label = curve.name + ("" if curve.map is None else f" (mAP {curve.map:.3f})")
            parts.append(
                f'<path class="curve" stroke="{esc(curve.colour)}" d="{" ".join(d)}"><title>{esc(label)}</title></path>'
            )
    parts.append(f'<line class="cursor" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}"/>')
    parts.append("</svg>")
    recall = list(curves[0].recall) if curves else []
    spec = {
        "width": WIDTH, "left": LEFT, "plot": plot_w, "recall": [round(float(r), 4) for r in recall],
        "curves": [{"name": c.name, "precision": [None if p is None else round(float(p), 4) for p in c.precision]}
                   for c in curves],
    }  # fmt: skip
    items = "".join(
        f'<span class="item"><span class="swatch" style="background:{esc(c.colour)}"></span>{esc(c.name)}'
        f"{'' if c.map is None else f' <b class=num>{c.map:.3f}</b>'}</span>"
        for c in sorted(curves, key=lambda c: -(c.map if c.map is not None else -1))
    )
    chart = f'<div class="pr" data-curves="{attr_json(spec)}">' + "".join(parts) + "</div>"
    return chart + (f'<div class="legend">{items}</div>' if legend else "")
