"""Report sections made of numbers: summary, all metrics, paired comparisons, PR curves, per-class AP.

Each function takes the :class:`~retbench.report.html.ReportContext` and returns HTML (empty when
there is nothing to show). Every value from the results goes through ``esc``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from retbench.report.markup import card, data_v, esc, heat, is_number, num, p_value, swatch, table, td_num, th
from retbench.report.svg import Curve, pr_chart

if TYPE_CHECKING:
    from retbench.report.html import ReportContext, RunData


def _swatch(ctx: ReportContext, encoder: str) -> str:
    return swatch(ctx.colours.get(encoder, "#999"), encoder)


def metric_label(key: str) -> str:
    """Short column title of a metric key (``precision@10`` -> ``P@10``)."""
    fixed = {"map": "mAP", "r_precision": "R-prec", "map@r": "mAP@R", "mrr": "MRR"}
    if key in fixed:
        return fixed[key]
    name, _, k = key.partition("@")
    short = {"precision": "P", "recall": "R", "map": "mAP", "ndcg": "nDCG"}.get(name)
    return f"{short}@{k}" if short and k else key


def ci(run: dict, key: str = "map") -> list[float] | None:
    """The run's 95% interval of a metric, or None."""
    interval = (run.get("metrics") or {}).get(f"{key}_ci95")
    if isinstance(interval, list) and len(interval) == 2 and all(is_number(v) for v in interval):
        return interval
    return None


def best_keys(values: dict[str, object]) -> set[str]:
    """Keys of the highest value; none when there is nothing to compare or every value is the same."""
    numbers = {k: v for k, v in values.items() if is_number(v)}
    if len(values) < 2 or len(set(numbers.values())) < 2:
        return set()
    top = max(numbers.values())
    return {k for k, v in numbers.items() if v == top}


def _random_init(run: dict) -> bool:
    return ((run.get("config") or {}).get("encoder") or {}).get("weights", {}).get("kind") == "random-init"


def _kpi(ctx: ReportContext, dataset: str, runs: list[RunData]) -> str:
    best = max(runs, key=lambda r: r.run["map"])
    interval = ci(best.run)
    plus = f" <small>± {(interval[1] - interval[0]) / 2:.3f}</small>" if interval else ""
    n_classes = ((best.run.get("config") or {}).get("dataset") or {}).get("n_classes")
    facts = f"{esc(best.run.get('n_images', '?'))} images" + (f" · {esc(n_classes)} classes" if n_classes else "")
    if best.run.get("n_queries") is not None and best.run.get("n_queries") != best.run.get("n_images"):
        facts = f"{esc(best.run['n_queries'])} queries · " + facts
    return (
        f'<div class="kpi"><div class="label">{esc(dataset)}</div>'
        f'<div class="value num">{best.run["map"]:.3f}{plus}</div>'
        f'<div>{"best: " if len(runs) > 1 else ""}<span class="who">{_swatch(ctx, best.encoder)}</span></div>'
        f'<div class="note">{facts} · mAP</div></div>'
    )


def _map_cell(run: RunData | None, best: bool) -> str:
    if run is None:
        return '<td class="n" data-v="">–</td>'
    value, interval = run.run.get("map"), ci(run.run)
    extra = ""
    if interval:
        extra = f'<span class="ci">[{interval[0]:.3f}, {interval[1]:.3f}]</span>'
        if is_number(value):
            width = max(interval[1] - interval[0], 0.004) * 100
            extra += (
                f'<div class="ci-bar"><span style="left:{interval[0] * 100:.1f}%;width:{width:.1f}%"></span>'
                f'<i style="left:{value * 100:.1f}%"></i></div>'
            )
    return td_num(value, css="n best" if best else "n", extra=extra)


def summary(ctx: ReportContext) -> str:
    """Headline cards, the encoders x datasets mAP table (best per column, 95% CI) and all metrics."""
    from retbench.report.html import protocols_text

    parts = [
        f'<h2>Summary</h2><p class="lead">Mean Average Precision. {protocols_text(ctx)} Intervals are 95% bootstrap '
        "intervals over queries. The best encoder of each dataset is highlighted.</p>"
    ]
    randoms = sorted({r.encoder for r in ctx.runs.values() if _random_init(r.run)})
    if randoms:
        parts.append(
            '<div class="callout warn"><b>Random weights</b> (<code>--random-init</code>) for '
            f"{esc(', '.join(randoms))}: their numbers say nothing about the pretrained models.</div>"
        )
    kpis = []
    for d in ctx.datasets:
        runs = [r for r in ctx.dataset_runs(d) if is_number(r.run.get("map"))]
        if runs:
            kpis.append(_kpi(ctx, d, runs))
    parts.append(f'<div class="kpis">{"".join(kpis)}</div>')
    best_of = {d: best_keys({r.encoder: r.run.get("map") for r in ctx.dataset_runs(d)}) for d in ctx.datasets}
    rows = []
    for e in ctx.encoders:
        cells = "".join(_map_cell(ctx.runs.get((d, e)), e in best_of[d]) for d in ctx.datasets)
        rows.append(f"<tr><td>{_swatch(ctx, e)}</td>{cells}</tr>")
    head = [th("encoder")] + [th(esc(d), numeric=True) for d in ctx.datasets]
    parts.append(card("mAP", table(head, rows, "data sortable fit", "map-table"), "encoders × datasets"))
    parts.append(_metrics_tables(ctx))
    parts.append(_comparisons(ctx))
    return "".join(parts)


def _metric_keys(runs: list[RunData]) -> tuple[list[str], list[str]]:
    """(headline metric keys, the others), in the results' order."""
    keys: list[str] = []
    for r in runs:
        for k, v in (r.run.get("metrics") or {}).items():
            if not k.endswith("_ci95") and is_number(v) and k not in keys:
                keys.append(k)
    ndcg = [k for k in keys if k.startswith("ndcg@")]
    main = [k for k in keys if k == "map" or k.startswith("precision@") or k in ("r_precision", "map@r", "mrr")]
    main += [k for k in ndcg if k == "ndcg@10"] or ndcg[:1]
    return main, [k for k in keys if k not in main]


def _metric_table(ctx: ReportContext, runs: list[RunData], keys: list[str]) -> str:
    best = {k: best_keys({r.encoder: (r.run.get("metrics") or {}).get(k) for r in runs}) for k in keys}
    rows = []
    for r in runs:
        metrics = r.run.get("metrics") or {}
        cells = []
        for k in keys:
            interval = ci(r.run, k)
            tip = f' data-tip="{esc(k)}: 95% CI [{interval[0]:.3f}, {interval[1]:.3f}]"' if interval else ""
            cells.append(td_num(metrics.get(k), css="n best" if r.encoder in best[k] else "n", attrs=tip))
        rows.append(f"<tr><td>{_swatch(ctx, r.encoder)}</td>{''.join(cells)}</tr>")
    head = [th("encoder")] + [th(esc(metric_label(k)), numeric=True, tip=k) for k in keys]
    return table(head, rows, "data sortable fit")


def _metrics_tables(ctx: ReportContext) -> str:
    blocks = []
    for d in ctx.datasets:
        runs = ctx.dataset_runs(d)
        main, rest = _metric_keys(runs)
        if not main and not rest:
            continue
        more = ""
        if rest:
            more = (
                f'<details class="more"><summary>{len(rest)} more metrics</summary>'
                f"{_metric_table(ctx, runs, rest)}</details>"
            )
        blocks.append(f"<h4>{esc(d)}</h4>{_metric_table(ctx, runs, main)}{more}")
    if not blocks:
        return ""
    return card("All metrics", "".join(blocks), "hover a cell for its 95% interval; click a header to sort")


def _comparison_row(ctx: ReportContext, c: dict) -> str:
    a, b = str(c.get("encoder_a")), str(c.get("encoder_b"))
    diff, interval = c.get("mean_difference"), c.get("ci95") or [None, None]
    has_ci = is_number(interval[0]) and is_number(interval[1])
    if has_ci and is_number(diff) and (interval[0] > 0 or interval[1] < 0):
        verdict = f'<span class="pill good">{esc(a if diff > 0 else b)} better</span>'
    elif is_number(diff):
        verdict = '<span class="pill neutral">no clear difference</span>'
    else:
        verdict = '<span class="pill neutral">n/a</span>'
    ci_text = f"[{num(interval[0])}, {num(interval[1])}]" if has_ci else "n/a"
    perm, sign_p = c.get("permutation_p_value"), c.get("sign_test_p_value")
    sign_text = c.get("sign_test_p_value_text") or p_value(sign_p)
    wins = " / ".join(esc(c.get(k, "?")) for k in ("n_a_better", "n_b_better", "n_ties"))
    return (
        f"<tr><td>{esc(c.get('dataset'))}</td><td>{_swatch(ctx, a)}</td><td>{_swatch(ctx, b)}</td>"
        f'{td_num(diff, signed=True)}<td class="n">{ci_text}</td>'
        f'<td class="n" data-v="{data_v(perm)}">{p_value(perm)}</td>'
        f'<td class="n" data-v="{data_v(sign_p)}" data-tip="sign test p = {esc(sign_text)}">{p_value(sign_p)}</td>'
        f'<td class="n">{wins}</td><td>{verdict}</td></tr>'
    )


def _comparisons(ctx: ReportContext) -> str:
    comparisons = [c for c in ctx.results.get("comparisons") or [] if isinstance(c, dict)]
    if not comparisons:
        return ""
    head = [th("dataset"), th("A"), th("B"), th("mean ΔAP", True), th("95% CI", True), th("permutation p", True),
            th("sign test p", True), th("A / B better / ties", True), th("verdict")]  # fmt: skip
    note = (
        '<p class="note">A difference is called clear when its bootstrap interval excludes 0. The permutation test '
        "flips the sign of each query's difference; the sign test counts queries won.</p>"
    )
    rows = [_comparison_row(ctx, c) for c in comparisons]
    return card("Paired comparisons", table(head, rows, "data sortable") + note, "same queries, AP of A minus AP of B")


def pr_curves(ctx: ReportContext) -> str:
    """One chart per dataset, one line per encoder (mean interpolated precision at 101 recall levels)."""
    charts = []
    for d in ctx.datasets:
        curves = []
        for r in ctx.dataset_runs(d):
            pr = r.run.get("pr_curve") or {}
            recall, precision = pr.get("recall"), pr.get("precision")
            if isinstance(recall, list) and isinstance(precision, list) and recall and len(recall) == len(precision):
                precision = [p if is_number(p) else None for p in precision]
                curves.append(Curve(r.encoder, ctx.colours[r.encoder], recall, precision, r.run.get("map")))
        if not curves:
            continue
        rows = []
        for r in sorted(ctx.dataset_runs(d), key=lambda r: -(r.run.get("map") or 0)):
            metrics = r.run.get("metrics") or {}
            rows.append(
                f"<tr><td>{_swatch(ctx, r.encoder)}</td>{td_num(r.run.get('map'))}"
                f"{td_num(metrics.get('precision@1'))}{td_num(metrics.get('r_precision'))}</tr>"
            )
        side = table([th("encoder"), th("mAP", True), th("P@1", True), th("R-prec", True)], rows, "data fit")
        chart = pr_chart(curves, f"precision-recall, {d}", legend=False)
        charts.append(card(esc(d), f'<div class="prcard"><div>{chart}</div><div>{side}</div></div>'))
    if not charts:
        return ""
    return (
        '<h2>Precision-recall curves</h2><p class="lead">Mean over queries of the interpolated precision (the best '
        "precision at any recall at least r). Hover a chart to read every encoder at one recall.</p>" + "".join(charts)
    )


def _per_class_card(ctx: ReportContext, dataset: str, runs: list[RunData]) -> str:
    classes = sorted({c for r in runs for c in r.run["per_class"]})
    two = len(runs) == 2
    rows = []
    for c in classes:
        entries = [r.run["per_class"].get(c) or {} for r in runs]
        n = next((e.get("n_images") for e in entries if e.get("n_images") is not None), None)
        values = {r.encoder: e.get("ap") for r, e in zip(runs, entries)}
        best = best_keys(values)
        cells = []
        for r in runs:
            value = values[r.encoder]
            text = f"<b>{num(value)}</b>" if r.encoder in best else num(value)
            cells.append(f'<td class="heat" data-v="{data_v(value)}" style="{heat(value)}">{text}</td>')
        if two:
            a, b = values[runs[0].encoder], values[runs[1].encoder]
            delta = a - b if is_number(a) and is_number(b) else None
            colour = "var(--good)" if delta and delta > 0 else ("var(--bad)" if delta and delta < 0 else "inherit")
            cells.append(td_num(delta, attrs=f' style="color:{colour}"', signed=True))
        rows.append(f"<tr><td>{esc(c)}</td>{td_num(n, 0)}{''.join(cells)}</tr>")
    head = [th("class"), th("images", True)] + [th(_swatch(ctx, r.encoder), True) for r in runs]
    if two:
        head.append(th(f"Δ {esc(runs[0].encoder)} − {esc(runs[1].encoder)}", True))
    return card(esc(dataset), table(head, rows, "data sortable fit per-class"), f"{len(classes)} classes")


def per_class(ctx: ReportContext) -> str:
    """Per dataset, a sortable heatmap table: classes x encoders, mean AP of the class's queries."""
    cards = []
    for d in ctx.datasets:
        runs = [r for r in ctx.dataset_runs(d) if r.run.get("per_class")]
        if runs:
            cards.append(_per_class_card(ctx, d, runs))
    if not cards:
        return ""
    return (
        '<h2>Per-class AP</h2><p class="lead">Mean AP of the queries of each class (darker = higher); the best encoder '
        f"of each class in bold. Click a header to sort.</p>{''.join(cards)}"
    )
