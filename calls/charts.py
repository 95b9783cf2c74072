"""Charts drawn on the server as inline SVG: no JavaScript, no CDN, nothing to load.

Pure functions from numbers to markup, so they are tested without a request and the
admin page shows the same chart with scripts off, in print and in a saved copy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date
from html import escape

# The drawing area, in SVG user units; the <svg> scales to the width it is given.
WIDTH = 960
HEIGHT = 320
MARGIN_LEFT = 56
MARGIN_RIGHT = 16
MARGIN_TOP = 16
MARGIN_BOTTOM = 52
LEGEND_ROW = 22
LEGEND_ITEM_WIDTH = 150
# More day labels than this under the bars would overlap: label every n-th day instead.
MAX_DAY_LABELS = 16


def stacked_bars_svg(days: Sequence[date], series: Mapping[str, Sequence[int]], colors: Mapping[str, str]) -> str:
    """One bar per day, stacked by series (bottom to top in ``series`` order).

    ``series`` maps a label people read ("Answered") to its count on each of ``days``;
    ``colors`` maps the same labels to a CSS colour. Each day is one ``<g class="day">``
    (an empty one for a day without calls) with a ``<title>`` for the day's total, and
    each segment a ``<rect>`` with a ``<title>`` ("3 Nov 2026: 4 answered") shown on
    hover. Series with no calls in the period are left out of the legend.
    """
    for label, counts in series.items():
        if len(counts) != len(days):
            raise ValueError(f"The series {label!r} has {len(counts)} counts for {len(days)} days.")
    shown = [label for label, counts in series.items() if any(counts)]
    legend_rows = math.ceil(len(shown) / _legend_columns()) if shown else 0
    height = HEIGHT + legend_rows * LEGEND_ROW + 4
    plot_bottom = HEIGHT - MARGIN_BOTTOM
    plot_height = plot_bottom - MARGIN_TOP
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT

    day_totals = [sum(series[label][i] for label in series) for i in range(len(days))]
    top, step = _axis_top(max(day_totals, default=0))
    slot = plot_width / max(len(days), 1)
    bar = max(slot * 0.7, 1.0)

    def y(value: float) -> float:
        return plot_bottom - plot_height * value / top

    total_calls = sum(day_totals)
    period = f"{_day(days[0])} to {_day(days[-1])}" if days else "no days"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="stacked-bars" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-labelledby="chart-title" font-family="sans-serif" font-size="12">',
        f'<title id="chart-title">Calls per day by outcome, {escape(period)}: {total_calls} calls</title>',
    ]

    # The value axis: gridlines and labels at round numbers.
    parts.append('<g class="y-axis" fill="currentColor">')
    for tick in range(0, top + 1, step):
        ty = _n(y(tick))
        parts.append(
            f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{ty}" y2="{ty}" '
            f'stroke="currentColor" stroke-opacity="{0.6 if tick == 0 else 0.15}"/>'
        )
        parts.append(f'<text x="{MARGIN_LEFT - 6}" y="{ty}" text-anchor="end" dominant-baseline="middle">{tick}</text>')
    axis_middle = _n(MARGIN_TOP + plot_height / 2)
    parts.append(
        f'<text x="14" y="{axis_middle}" text-anchor="middle" transform="rotate(-90 14 {axis_middle})">Calls</text>'
    )
    parts.append("</g>")

    # The bars, one group per day.
    parts.append('<g class="bars">')
    every = max(1, math.ceil(len(days) / MAX_DAY_LABELS))
    for i, day in enumerate(days):
        x = MARGIN_LEFT + slot * i + (slot - bar) / 2
        parts.append(f'<g class="day" data-day="{day.isoformat()}">')
        parts.append(f"<title>{escape(_day(day))}: {_calls(day_totals[i])}</title>")
        base = 0
        for label in series:
            count = series[label][i]
            if not count:
                continue
            parts.append(
                f'<rect x="{_n(x)}" y="{_n(y(base + count))}" width="{_n(bar)}" '
                f'height="{_n(y(base) - y(base + count))}" fill="{escape(colors[label])}">'
                f"<title>{escape(_day(day))}: {count} {escape(label.lower())}</title></rect>"
            )
            base += count
        parts.append("</g>")
    parts.append("</g>")

    # The day axis: a label under every n-th bar.
    parts.append('<g class="x-axis" fill="currentColor" text-anchor="middle">')
    for i, day in enumerate(days):
        if i % every == 0:
            cx = _n(MARGIN_LEFT + slot * i + slot / 2)
            parts.append(f'<text x="{cx}" y="{plot_bottom + 16}">{escape(_short_day(day))}</text>')
    parts.append(f'<text x="{_n(MARGIN_LEFT + plot_width / 2)}" y="{plot_bottom + 38}">Day</text>')
    parts.append("</g>")

    if not total_calls:
        parts.append(
            f'<text x="{_n(MARGIN_LEFT + plot_width / 2)}" y="{_n(MARGIN_TOP + plot_height / 2)}" '
            'text-anchor="middle" fill="currentColor">No calls in this period.</text>'
        )

    # The legend: a swatch and the label, in the stacking order.
    parts.append('<g class="legend" fill="currentColor">')
    columns = _legend_columns()
    for n, label in enumerate(shown):
        lx = MARGIN_LEFT + (n % columns) * LEGEND_ITEM_WIDTH
        ly = HEIGHT + 12 + (n // columns) * LEGEND_ROW
        parts.append(
            f'<rect x="{lx}" y="{ly - 11}" width="12" height="12" fill="{escape(colors[label])}"/>'
            f'<text x="{lx + 18}" y="{ly}">{escape(label)}</text>'
        )
    parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _axis_top(highest: int) -> tuple[int, int]:
    """The axis maximum and the step between its labels: round numbers (1, 2 or 5
    times a power of ten), at most five steps, the top at or above ``highest``."""
    if highest <= 0:
        return 1, 1
    for magnitude in (10**k for k in range(len(str(highest)) + 1)):
        for factor in (1, 2, 5):
            step = factor * magnitude
            if step * 5 >= highest:
                return step * math.ceil(highest / step), step
    raise AssertionError("unreachable: 10 ** digits is always enough")  # pragma: no cover


def _legend_columns() -> int:
    return max(1, (WIDTH - MARGIN_LEFT - MARGIN_RIGHT) // LEGEND_ITEM_WIDTH)


def _day(day: date) -> str:
    return f"{day.day} {day:%b %Y}"


def _short_day(day: date) -> str:
    return f"{day.day} {day:%b}"


def _calls(n: int) -> str:
    return f"{n} call" if n == 1 else f"{n} calls"


def _n(value: float) -> str:
    """A coordinate, short: ``12`` or ``12.5``."""
    return f"{value:.1f}".removesuffix(".0")
