"""Small server-side SVG charts for the briefing page (tasks/report/page.py).

Three chart shapes cover the page: lines over days (claims per entity), columns over days
(one entity) and 100 % stacked columns over days (comment stance). Written by hand rather
than with a chart library: the page must open offline with no script, every label must be
escaped, and the three shapes fit in ~200 lines. Every chart is an accessible figure: role
"img" with <title>/<desc>, and the numbers behind it in a <details> table.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

# Okabe-Ito: distinguishable with the common colour-vision deficiencies (yellow dropped:
# unreadable on white)
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000",
           "#999933")
STANCE_COLOURS = {"favor": "#1F78B4", "neutral": "#BDBDBD", "against": "#E6550D"}
STANCE_ORDER = ("favor", "neutral", "against")

_ids = itertools.count(1)
_CHAR_W = 6.6  # average width of a 12 px sans-serif character, for laying out legends


def e(value: object) -> str:
    """Escape anything for HTML text or a quoted attribute."""
    return escape(str(value), quote=True)


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """0 .. a round maximum >= top in 1-2-5 steps, about `count` intervals."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(step, 1.0)  # counts: never a fractional tick
    return [i * step for i in range(math.ceil(top / step) + 1)]


def day_label(day: date) -> str:
    return f"{day.strftime('%b')} {day.day}"


@dataclass(frozen=True)
class Frame:
    """The plot area inside an SVG of width x height."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int

    @property
    def plot_w(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> float:
        return self.height - self.top - self.bottom

    def x_band(self, i: int, n: int) -> tuple[float, float]:
        """Left edge and width of the i-th of n equal bands."""
        band = self.plot_w / max(n, 1)
        return self.left + i * band, band

    def y(self, value: float, top_value: float) -> float:
        return self.top + self.plot_h * (1 - value / top_value if top_value else 1)


def _open(frame: Frame, title: str, desc: str) -> tuple[str, str]:
    n = next(_ids)
    head = (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
            f'viewBox="0 0 {frame.width} {frame.height}" width="{frame.width}" '
            f'height="{frame.height}" aria-labelledby="chart-t{n} chart-d{n}" '
            f'preserveAspectRatio="xMinYMin meet">'
            f'<title id="chart-t{n}">{e(title)}</title><desc id="chart-d{n}">{e(desc)}</desc>')
    return head, "</svg>"


def _y_axis(frame: Frame, ticks: Sequence[float], fmt: str = "{:g}") -> list[str]:
    out = []
    for tick in ticks:
        y = frame.y(tick, ticks[-1])
        out.append(f'<line class="grid" x1="{frame.left}" x2="{frame.width - frame.right}" '
                   f'y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{frame.left - 6}" y="{y + 4:.1f}" '
                   f'text-anchor="end">{e(fmt.format(tick))}</text>')
    base = frame.y(0, ticks[-1])
    out.append(f'<line class="axis" x1="{frame.left}" x2="{frame.width - frame.right}" '
               f'y1="{base:.1f}" y2="{base:.1f}"/>')
    return out


def _x_labels(frame: Frame, days: Sequence[date]) -> list[str]:
    every = max(1, math.ceil(len(days) * 46 / frame.plot_w))  # ~46 px per label
    out = []
    for i, day in enumerate(days):
        if (len(days) - 1 - i) % every:  # keep the latest day labelled
            continue
        x0, band = frame.x_band(i, len(days))
        out.append(f'<text class="tick" x="{x0 + band / 2:.1f}" '
                   f'y="{frame.height - frame.bottom + 16}" text-anchor="middle">'
                   f'{e(day_label(day))}</text>')
    return out


def _legend(items: Sequence[tuple[str, str]], x: float, y: float, max_w: float,
            shape: str = "line") -> tuple[list[str], float]:
    """Legend entries laid out in rows; returns the SVG and the height used."""
    out, cx, cy = [], x, y
    for label, fill in items:
        width = 22 + len(label) * _CHAR_W + 14
        if cx + width > x + max_w and cx > x:
            cx, cy = x, cy + 18
        if shape == "line":
            out.append(f'<line x1="{cx:.1f}" x2="{cx + 16:.1f}" y1="{cy - 4:.1f}" '
                       f'y2="{cy - 4:.1f}" stroke="{fill}" stroke-width="3"/>')
        else:
            out.append(f'<rect x="{cx:.1f}" y="{cy - 10:.1f}" width="12" height="12" '
                       f'rx="2" fill="{fill}"/>')
        out.append(f'<text class="legend" x="{cx + 21:.1f}" y="{cy:.1f}">{e(label)}</text>')
        cx += width
    return out, cy - y + 18


def line_chart(days: Sequence[date], series: Sequence[tuple[str, str, Sequence[int]]],
               title: str, desc: str, unit: str = "claims") -> str:
    """One line per (name, colour, count per day)."""
    frame = Frame(1040, 250, 44, 18, 20, 30)
    legend, legend_h = _legend([(name, c) for name, c, _ in series], frame.left, 16,
                               frame.plot_w)
    frame = Frame(1040, int(250 + legend_h), 44, 18, int(20 + legend_h), 30)
    top = max((v for _, _, values in series for v in values), default=0)
    ticks = nice_ticks(top)
    head, tail = _open(frame, title, desc)
    parts = [head, *legend, *_y_axis(frame, ticks), *_x_labels(frame, days)]
    for name, fill, values in series:
        points = []
        for i, value in enumerate(values):
            x0, band = frame.x_band(i, len(days))
            points.append((x0 + band / 2, frame.y(value, ticks[-1]), value, days[i]))
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{fill}" '
                     f'stroke-width="2.5" stroke-linejoin="round"/>')
        for x, y, value, day in points:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{fill}">'
                         f'<title>{e(name)}, {e(day_label(day))}: {value} {e(unit)}</title>'
                         f'</circle>')
    parts.append(tail)
    return "".join(parts)


def column_chart(days: Sequence[date], values: Sequence[int], fill: str, title: str,
                 desc: str, unit: str = "claims") -> str:
    """Columns of one count per day, each labelled with its value."""
    frame = Frame(380, 170, 34, 8, 18, 28)
    ticks = nice_ticks(max(values, default=0), 3)
    head, tail = _open(frame, title, desc)
    parts = [head, *_y_axis(frame, ticks), *_x_labels(frame, days)]
    for i, value in enumerate(values):
        x0, band = frame.x_band(i, len(days))
        y = frame.y(value, ticks[-1])
        width = band * 0.64
        parts.append(f'<rect x="{x0 + (band - width) / 2:.1f}" y="{y:.1f}" width="{width:.1f}" '
                     f'height="{frame.y(0, ticks[-1]) - y:.1f}" rx="2" fill="{fill}">'
                     f'<title>{e(day_label(days[i]))}: {value} {e(unit)}</title></rect>')
        if value:
            parts.append(f'<text class="value" x="{x0 + band / 2:.1f}" y="{y - 4:.1f}" '
                         f'text-anchor="middle">{value}</text>')
    parts.append(tail)
    return "".join(parts)


def share_chart(days: Sequence[date], shares: Sequence[dict[str, float]],
                counts: Sequence[int], title: str, desc: str) -> str:
    """100 % stacked columns of favor / neutral / against per day; n above each column."""
    legend, legend_h = _legend([(label, STANCE_COLOURS[label]) for label in STANCE_ORDER],
                               34, 14, 330, shape="box")
    frame = Frame(380, int(170 + legend_h), 34, 8, int(18 + legend_h), 28)
    head, tail = _open(frame, title, desc)
    parts = [head, *legend, *_y_axis(frame, [0.0, 0.5, 1.0], "{:.0%}"),
             *_x_labels(frame, days)]
    for i, (share, n) in enumerate(zip(shares, counts, strict=True)):
        x0, band = frame.x_band(i, len(days))
        width = band * 0.64
        x = x0 + (band - width) / 2
        if not n:
            parts.append(f'<text class="empty" x="{x0 + band / 2:.1f}" '
                         f'y="{frame.y(0.06, 1):.1f}" text-anchor="middle">–</text>')
            continue
        bottom = 0.0
        for label in STANCE_ORDER:
            part = share.get(label, 0.0)
            if part <= 0:
                continue
            y_top, y_bottom = frame.y(bottom + part, 1), frame.y(bottom, 1)
            parts.append(f'<rect x="{x:.1f}" y="{y_top:.1f}" width="{width:.1f}" '
                         f'height="{y_bottom - y_top:.1f}" fill="{STANCE_COLOURS[label]}">'
                         f'<title>{e(day_label(days[i]))}: {e(label)} {part:.0%} of {n} '
                         f'comments</title></rect>')
            bottom += part
        parts.append(f'<text class="value" x="{x0 + band / 2:.1f}" y="{frame.top - 4}" '
                     f'text-anchor="middle">{n}</text>')
    parts.append(tail)
    return "".join(parts)
