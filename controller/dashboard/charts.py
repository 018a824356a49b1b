"""Inline SVG charts of one check: canary and baseline over time, the check's limit, the
step boundaries with their weights and the decision. Pure: data in, markup out."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from controller.core.audit_query import CheckSeries, StepBoundary

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 36


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def check_chart(
    series: CheckSeries,
    steps: list[StepBoundary],
    decision_time: datetime | None,
    decision: str | None,
    limit: float | None,
) -> str:
    times = list(series.times) + [b.time for b in steps]
    if decision_time is not None:
        times.append(decision_time)
    values = [v for v in (*series.canary, *series.baseline) if v is not None]
    if limit is not None:
        values.append(limit)
    if not series.times:
        return '<p class="empty">no measurements</p>'
    t0, t1 = min(times).timestamp(), max(times).timestamp()
    span = max(t1 - t0, 1.0)
    top = max(values, default=1.0) * 1.15 or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(when: datetime) -> float:
        return LEFT + (when.timestamp() - t0) / span * plot_w

    def y(value: float) -> float:
        return TOP + plot_h - value / top * plot_h

    def line(track: str, points: list[float | None], color: str, dash: str = "") -> str:
        pts = [
            f"{x(t):.1f},{y(v):.1f}"
            for t, v in zip(series.times, points, strict=True)
            if v is not None
        ]
        if not pts:
            return ""
        dots = "".join(
            f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="2.5" fill="{color}"/>'
            for p in pts
        )
        style = f' stroke-dasharray="{dash}"' if dash else ""
        return (
            f'<polyline class="{track}" fill="none" stroke="{color}" stroke-width="1.5"{style} '
            f'points="{" ".join(pts)}"/>{dots}'
        )

    parts = [
        f'<svg class="chart" data-check="{escape(series.check)}" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(series.check)}: canary vs baseline">',
        f'<text x="{LEFT}" y="16" class="title">{escape(series.check)}</text>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
        'stroke="#ccc"/>',
    ]
    for i in range(5):  # value grid
        v = top * i / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            f'stroke="#eee"/><text x="{LEFT - 4}" y="{y(v) + 4:.1f}" text-anchor="end" '
            f'class="tick">{_fmt(v)}</text>'
        )
    for i in range(5):  # time axis, wall clock UTC
        t = t0 + span * i / 4
        label = datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")
        px = LEFT + plot_w * i / 4
        parts.append(
            f'<text x="{px:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
            f'class="tick time">{label}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w}" y="{HEIGHT - 4}" text-anchor="end" class="tick">time (UTC)'
        "</text>"
    )
    for b in steps:
        weight = f" ({b.weight}%)" if b.weight is not None else ""
        parts.append(
            f'<g class="step-boundary"><line x1="{x(b.time):.1f}" x2="{x(b.time):.1f}" '
            f'y1="{TOP}" y2="{TOP + plot_h}" stroke="#888" stroke-dasharray="4 3"/>'
            f'<text x="{x(b.time) + 3:.1f}" y="{TOP + 12}" class="note">'
            f"{escape(b.label + weight)}</text></g>"
        )
    if limit is not None:
        parts.append(
            f'<line class="limit" data-value="{limit:g}" x1="{LEFT}" x2="{LEFT + plot_w}" '
            f'y1="{y(limit):.1f}" y2="{y(limit):.1f}" stroke="#000" stroke-dasharray="6 3"/>'
            f'<text x="{LEFT + plot_w - 4}" y="{y(limit) - 4:.1f}" text-anchor="end" '
            f'class="note">limit {_fmt(limit)}</text>'
        )
    parts.append(line("baseline", series.baseline, "#1f77b4", "5 3"))
    parts.append(line("canary", series.canary, "#d62728"))
    for when, c, verdict in zip(series.times, series.canary, series.verdicts, strict=True):
        if verdict == "Fail" and c is not None:
            parts.append(
                f'<circle class="failed" cx="{x(when):.1f}" cy="{y(c):.1f}" r="6" fill="none" '
                'stroke="#d62728" stroke-width="1.5"/>'
            )
    if decision_time is not None and decision:
        parts.append(
            f'<g class="decision"><line x1="{x(decision_time):.1f}" x2="{x(decision_time):.1f}" '
            f'y1="{TOP}" y2="{TOP + plot_h}" stroke="purple" stroke-width="1.5" '
            f'stroke-dasharray="2 2"/><text x="{x(decision_time) - 3:.1f}" '
            f'y="{TOP + plot_h - 6}" text-anchor="end" class="note">{escape(decision)}</text></g>'
        )
    legend = (
        '<tspan fill="#d62728">— canary</tspan>  <tspan fill="#1f77b4">- - baseline</tspan>'
        "  <tspan>- - limit</tspan>"
    )
    parts.append(f'<text x="{LEFT + plot_w}" y="16" text-anchor="end" class="tick">{legend}</text>')
    parts.append("</svg>")
    return "".join(parts)
