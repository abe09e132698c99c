"""Charts as inline SVG strings, drawn in Python from the aggregated figures.

No chart library and no script: the SVG is in the page (and in the Prefect image
artifacts) as it is, so it renders offline, from disk, with JavaScript off, and a
test can count its bars. Every chart carries its own fonts and colours as
attributes (no page CSS needed), a ``<title>`` per bar as its tooltip, and a
fixed ``viewBox`` so it scales to the column it sits in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

Fmt = Callable[[float], str]

FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="12"'
INK = "#1f2933"
MUTED = "#66788a"
GRID = "#e4e7eb"
BLUE = "#3b82c4"
TEAL = "#2a9d8f"
STATUS_COLORS = {"ok": "#2f9e44", "error": "#d64545", "unknown": "#adb5bd", "skipped": "#4c6ef5"}
STATUS_NAMES = {"ok": "extracted", "error": "failed", "unknown": "unknown type", "skipped": "done earlier"}


def shorten(text: str, n: int, *, keep_end: bool = False) -> str:
    """At most ``n`` characters; paths keep their end (the file name), other labels their start."""
    if len(text) <= n:
        return text
    return "…" + text[-(n - 1):] if keep_end else text[: n - 1] + "…"


def nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (a readable axis top)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def nice_ticks(value: float, *, integer: bool = True, most: int = 5) -> list[float]:
    """Gridline values from 0 up to a round top at or above ``value``: steps of 1, 2 or 5 times 10^k."""
    raw = max(value, 1e-12) / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if integer:
        step = max(1.0, math.ceil(step))
    n = max(1, math.ceil(value / step - 1e-9))
    return [step * i for i in range(n + 1)]


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}" {FONT} fill="{INK}">'
            + "".join(body) + "</svg>")


def empty_chart(label: str, message: str, width: int = 520) -> str:
    return _svg(width, 40, label, [f'<text class="empty" x="8" y="24" fill="{MUTED}">{escape(message)}</text>'])


def hbar_chart(rows: Sequence[dict[str, Any]], key: str, fmt: Fmt, label: str, *, color: str = BLUE,
               width: int = 520, label_w: int = 170, keep_end: bool = False,
               tooltip: Callable[[dict[str, Any]], str] | None = None,
               href: Callable[[dict[str, Any]], str | None] | None = None) -> str:
    """Horizontal bars, one per row, longest first as given; value printed after each bar."""
    rows = [r for r in rows if r.get(key)]
    if not rows:
        return empty_chart(label, "nothing to show")
    row_h, bar_h, value_w = 22, 15, 78
    top = nice_max(max(float(r[key]) for r in rows))
    span = width - label_w - value_w
    body = []
    for i, r in enumerate(rows):
        y = 4 + i * row_h
        w = max(1.0, span * float(r[key]) / top)
        name = str(r["label"])
        tip = tooltip(r) if tooltip else f"{name}: {fmt(float(r[key]))}"
        bar = (f'<rect class="bar" x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="2" '
               f'fill="{MUTED if r.get("other") else color}"/>')
        link = href(r) if href else None
        if link:
            bar = f'<a href="{escape(link)}">{bar}</a>'
        body.append(
            f'<g><title>{escape(tip)}</title>'
            f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{escape(shorten(name, 28, keep_end=keep_end))}'
            f'</text>{bar}<text x="{label_w + w + 5:.1f}" y="{y + 12}" fill="{MUTED}">{escape(fmt(float(r[key])))}'
            "</text></g>")
    return _svg(width, 8 + len(rows) * row_h, label, body)


def legend(segments: Sequence[tuple[str, str, str]], y: int, x0: int = 8) -> list[str]:
    """Colour keys in one row: (key, colour, name)."""
    out, x = [], x0
    for _key, color, name in segments:
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" rx="2" fill="{color}"/>'
                   f'<text x="{x + 17}" y="{y}">{escape(name)}</text>')
        x += 30 + 7 * len(name)
    return out


def stacked_hbar(rows: Sequence[dict[str, Any]], segments: Sequence[tuple[str, str, str]], fmt: Fmt, label: str,
                 *, width: int = 520, label_w: int = 120) -> str:
    """One bar per row split into coloured segments (e.g. outcomes per extractor); lengths are absolute."""
    totals = [sum(float(r.get(k, 0)) for k, _, _ in segments) for r in rows]
    if not rows or not any(totals):
        return empty_chart(label, "nothing to show")
    row_h, bar_h, value_w = 24, 16, 70
    top = nice_max(max(totals))
    span = width - label_w - value_w
    body = legend(segments, 16)
    for i, (r, total) in enumerate(zip(rows, totals, strict=True)):
        y = 30 + i * row_h
        body.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{escape(shorten(str(r["label"]), 18))}'
                    "</text>")
        x = float(label_w)
        for key, color, name in segments:
            n = float(r.get(key, 0))
            if not n:
                continue
            w = max(1.0, span * n / top)
            share = f"{100 * n / total:.1f}%" if total else ""
            body.append(f'<rect class="bar" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}">'
                        f'<title>{escape(str(r["label"]))}: {escape(fmt(n))} {escape(name)} ({share})</title></rect>')
            x += w
        body.append(f'<text x="{x + 5:.1f}" y="{y + 12}" fill="{MUTED}">{escape(fmt(total))}</text>')
    return _svg(width, 36 + len(rows) * row_h, label, body)


def column_chart(labels: Sequence[str], values: Sequence[float], fmt: Fmt, label: str, *,
                 tips: Sequence[str] | None = None, color: str = TEAL, width: int = 520, height: int = 220,
                 max_ticks: int = 7) -> str:
    """Vertical bars over an ordered axis (size classes, time); a few x labels, a gridded y axis."""
    if not values or not any(values):
        return empty_chart(label, "nothing to show", width)
    left, right, top_pad, bottom = 56, 10, 10, 38
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    ticks = nice_ticks(max(values))
    top = ticks[-1]
    body = []
    for v in ticks:  # gridlines and y labels
        y = top_pad + plot_h - plot_h * v / top
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
                    f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{MUTED}">{escape(fmt(v))}</text>')
    n = len(values)
    step = plot_w / n
    gap = min(2.0, step * 0.2)
    every = max(1, math.ceil(n / max_ticks))
    for i, v in enumerate(values):
        x = left + i * step
        h = plot_h * float(v) / top
        tip = tips[i] if tips else f"{labels[i]}: {fmt(float(v))}"
        bar_w = min(max(step - gap, 1.0), 48.0)
        if v:
            body.append(f'<rect class="bar" x="{x + (step - bar_w) / 2:.1f}" y="{top_pad + plot_h - max(h, 1):.1f}" '
                        f'width="{bar_w:.1f}" height="{max(h, 1):.1f}" fill="{color}">'
                        f"<title>{escape(tip)}</title></rect>")
        if i % every == 0:
            body.append(f'<text x="{x + step / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                        f'fill="{MUTED}">{escape(labels[i])}</text>')
    body.append(f'<line x1="{left}" x2="{width - right}" y1="{top_pad + plot_h}" y2="{top_pad + plot_h}" '
                f'stroke="{MUTED}"/>')
    return _svg(width, height, label, body)


def outcome_segments(keys: Sequence[str]) -> list[tuple[str, str, str]]:
    return [(k, STATUS_COLORS[k], STATUS_NAMES[k]) for k in keys]
