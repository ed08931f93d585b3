"""HTML building blocks: escaping (every label, path and name goes through :func:`esc`), JSON for
attributes and ``<script>`` blocks, number formats and colour scales."""

from __future__ import annotations

import html
import json
import math

# Okabe-Ito: distinguishable with every common colour-vision deficiency.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")


def esc(value: object) -> str:
    """Text for HTML content or a double-quoted attribute: ``& < > " '`` escaped, NUL replaced
    (the page uses NUL-delimited placeholders internally, and HTML forbids NUL anyway)."""
    return html.escape(str(value).replace("\x00", "\ufffd"), quote=True)


def script_json(value: object) -> str:
    """JSON safe inside ``<script>``: ``<``, ``>`` and ``&`` as ``\\u`` escapes (no ``</script>``, no
    ``<!--``), and U+2028/U+2029 escaped too."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


def attr_json(value: object) -> str:
    """JSON for a double-quoted HTML attribute (read back with ``JSON.parse(el.getAttribute(...))``)."""
    return esc(json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")))


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def num(value: object, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if is_number(value) else "n/a"


def data_v(value: object) -> str:
    """A sortable ``data-v`` attribute value (empty for missing numbers)."""
    return f"{value:.6g}" if is_number(value) else ""


def seconds(value: object) -> str:
    if not is_number(value):
        return "–"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def p_value(value: object) -> str:
    if not is_number(value):
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def _gradient(t: float, stops) -> tuple[int, int, int]:
    """Colour at ``t`` in [0, 1] of a piecewise-linear gradient ``((t0, rgb0), (t1, rgb1), ...)`` (t0 = 0, last = 1)."""
    for (t0, c0), (t1, c1) in zip(stops, stops[1:]):
        if t <= t1:
            return _mix(c0, c1, (t - t0) / (t1 - t0))
    return stops[-1][1]


def heat(value: object) -> str:
    """Inline style of a heatmap cell for a value in [0, 1]: light to deep blue, white text when dark."""
    if not is_number(value):
        return "background:#f2f4f7;color:#98a2b3"
    t = min(max(float(value), 0.0), 1.0)
    r, g, b = _gradient(t, ((0.0, (247, 251, 255)), (0.5, (158, 202, 225)), (1.0, (8, 81, 156))))
    ink = "#fff" if t > 0.62 else "#1d2330"
    return f"background:rgb({r},{g},{b});color:{ink}"


def ap_colour(value: object) -> str:
    """Badge colour for an AP: red (0) through amber to green (1)."""
    if not is_number(value):
        return "#98a2b3"
    r, g, b = _gradient(min(max(float(value), 0.0), 1.0), ((0.0, (194, 54, 43)), (0.5, (202, 138, 4)), (1.0, (26, 127, 75))))
    return f"rgb({r},{g},{b})"


def swatch(colour: str, name: str) -> str:
    """An encoder's name after a dot of its colour (the colour of its PR curve)."""
    return f'<span class="enc"><span class="swatch" style="background:{esc(colour)}"></span>{esc(name)}</span>'


def card(title: str, body: str, sub: str = "") -> str:
    """A card with an (already escaped) title and an optional grey subtitle."""
    return f'<div class="card"><h3>{title}{f" <span class=sub>{sub}</span>" if sub else ""}</h3>{body}</div>'


def table(head: list[str], rows: list[str], css: str = "data", table_id: str = "") -> str:
    """A scrollable table: ``head`` are finished ``<th>`` cells, ``rows`` finished ``<tr>`` rows."""
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return (
        f'<div class="table-scroll"><table class="{css}"{ident}><thead><tr>{"".join(head)}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def th(text: str, numeric: bool = False, tip: str = "") -> str:
    """A header cell (``text`` already escaped); numeric ones align right and sort high-first."""
    attrs = (' class="n"' if numeric else "") + (f' data-tip="{esc(tip)}"' if tip else "")
    return f"<th{attrs}>{text}</th>"


def td_num(
    value: object, digits: int = 3, css: str = "n", extra: str = "", attrs: str = "", signed: bool = False
) -> str:
    """A numeric, sortable cell: ``value`` formatted (with its sign when ``signed``), then ``extra`` markup."""
    text = f"{value:+.{digits}f}" if signed and is_number(value) else num(value, digits)
    return f'<td class="{css}" data-v="{data_v(value)}"{attrs}>{text}{extra}</td>'
