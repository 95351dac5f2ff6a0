"""Numbers to inline SVG charts and rows to HTML tables: small pure functions, no library.

The page shows, per workspace: the headline charts, the first-response heatmap, agents, sources,
the playbook funnel with the top playbooks by meetings booked, and meetings booked per week
(`page.py` picks the charts; this module only draws them).
"""

from __future__ import annotations

import base64
import html
import math
from typing import Sequence

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
COLORS = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#0891b2")
WIDTH, HEIGHT = 720, 260
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 20, 44, 40
FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, 'Liberation Sans', sans-serif\""


# --- numbers to axes ------------------------------------------------------------------------

def nice_ticks(maximum: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least `maximum` (steps of 1, 2, 2.5 or 5 x 10^n)."""
    if maximum <= 0 or not math.isfinite(maximum):
        return [0.0, 1.0]
    raw = maximum / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < maximum - 1e-9:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def format_number(value: float | None) -> str:
    """Short human form for axis labels and cells: 1234 -> 1.2k, 3.0 -> 3, 0.25 -> 0.25."""
    if value is None:
        return "-"
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    if value == int(value):
        return str(int(value))
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}".rstrip("0")


def format_cell(value: float | None) -> str:
    """Exact form for table cells: 1,234 and 2.1 (one decimal), '-' for none."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.1f}"


def _x_label_every(count: int, room: int = 10) -> int:
    return max(1, math.ceil(count / room))


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)


# --- SVG ------------------------------------------------------------------------------------

def _frame(title: str, body: list[str], width: int = WIDTH, height: int = HEIGHT) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" {FONT} '
            f'class="chart"><title>{escape(title)}</title>'
            f'<rect width="{width}" height="{height}" fill="#ffffff"/>'
            f'<text x="{MARGIN_LEFT}" y="22" font-size="15" font-weight="600" fill="#111827">'
            f'{escape(title)}</text>' + "".join(body) + "</svg>")


def _y_axis(ticks: list[float], unit: str, plot_h: float, width: int) -> list[str]:
    top, bottom = MARGIN_TOP, MARGIN_TOP + plot_h
    out = []
    for tick in ticks:
        y = bottom - plot_h * tick / ticks[-1]
        out.append(f'<line x1="{MARGIN_LEFT}" x2="{width - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="#e5e7eb"/>')
        out.append(f'<text x="{MARGIN_LEFT - 8}" y="{y + 4:.1f}" font-size="11" fill="#4b5563" '
                   f'text-anchor="end">{format_number(tick)}</text>')
    out.append(f'<text transform="translate(14 {(top + bottom) / 2:.1f}) rotate(-90)" font-size="11" '
               f'fill="#4b5563" text-anchor="middle">{escape(unit)}</text>')
    out.append(f'<line x1="{MARGIN_LEFT}" x2="{width - MARGIN_RIGHT}" y1="{bottom}" y2="{bottom}" '
               f'stroke="#9ca3af"/>')
    return out


def _x_labels(labels: Sequence[str], xs: Sequence[float], plot_bottom: float) -> list[str]:
    every = _x_label_every(len(labels))
    return [f'<text x="{x:.1f}" y="{plot_bottom + 16}" font-size="11" fill="#4b5563" '
            f'text-anchor="middle">{escape(label)}</text>'
            for i, (label, x) in enumerate(zip(labels, xs)) if i % every == 0]


def empty_chart(title: str) -> str:
    return _frame(title, [f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" font-size="13" fill="#6b7280" '
                          f'text-anchor="middle">no data yet</text>'])


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float | None], unit: str,
              color: str = COLORS[0]) -> str:
    """Vertical bars, one per label (e.g. conversations per day), with a y axis in `unit`."""
    if not labels or not any(v for v in values if v):
        return empty_chart(title)
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    ticks = nice_ticks(max(v or 0 for v in values))
    slot = plot_w / len(labels)
    bar_w = max(1.0, slot * 0.7)
    body = _y_axis(ticks, unit, plot_h, WIDTH)
    xs = []
    for i, value in enumerate(values):
        x = MARGIN_LEFT + slot * i + slot / 2
        xs.append(x)
        if not value:
            continue
        h = plot_h * value / ticks[-1]
        body.append(f'<rect x="{x - bar_w / 2:.1f}" y="{MARGIN_TOP + plot_h - h:.1f}" '
                    f'width="{bar_w:.1f}" height="{h:.1f}" fill="{color}" rx="2">'
                    f'<title>{escape(labels[i])}: {format_number(value)} {escape(unit)}</title></rect>')
    body += _x_labels(labels, xs, MARGIN_TOP + plot_h)
    return _frame(title, body)


def line_chart(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]],
               unit: str) -> str:
    """One line per (name, values) over shared x labels; a missing value breaks its line."""
    values = [v for _, vs in series for v in vs if v is not None]
    if not labels or not values:
        return empty_chart(title)
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    ticks = nice_ticks(max(values))
    step = plot_w / max(1, len(labels) - 1) if len(labels) > 1 else 0
    xs = [MARGIN_LEFT + (step * i if len(labels) > 1 else plot_w / 2) for i in range(len(labels))]
    body = _y_axis(ticks, unit, plot_h, WIDTH)

    def y(value: float) -> float:
        return MARGIN_TOP + plot_h - plot_h * value / ticks[-1]

    legend_x = WIDTH - MARGIN_RIGHT
    for index, (name, points) in reversed(list(enumerate(series))):
        color = COLORS[index % len(COLORS)]
        segments, current = [], []
        for x, value in zip(xs, points):
            if value is None:
                if current:
                    segments.append(current)
                current = []
            else:
                current.append((x, y(value)))
        if current:
            segments.append(current)
        for segment in segments:
            path = " ".join(f"{'M' if i == 0 else 'L'}{px:.1f},{py:.1f}" for i, (px, py) in enumerate(segment))
            body.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2" '
                        f'stroke-linejoin="round"/>')
        for x, value, label in zip(xs, points, labels):
            if value is not None:
                body.append(f'<circle cx="{x:.1f}" cy="{y(value):.1f}" r="2.5" fill="{color}">'
                            f'<title>{escape(name)}, {escape(label)}: {format_number(value)} {escape(unit)}'
                            f'</title></circle>')
        # Legend, right-aligned on the title line: swatch then name, last series leftmost.
        text_w = 6.5 * len(name)
        legend_x -= text_w
        body.append(f'<text x="{legend_x:.1f}" y="22" font-size="11" fill="#374151">{escape(name)}</text>')
        legend_x -= 16
        body.append(f'<rect x="{legend_x:.1f}" y="14" width="11" height="3" fill="{color}"/>')
        legend_x -= 14
    body += _x_labels(labels, xs, MARGIN_TOP + plot_h)
    return _frame(title, body)


def _heat_color(share: float) -> str:
    """White-blue ramp for 0..1 (longer first response: darker)."""
    low, high = (191, 219, 254), (30, 58, 138)
    r, g, b = (round(lo + (hi - lo) * share) for lo, hi in zip(low, high))
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap(title: str, grid: Sequence[Sequence[float | None]], unit: str) -> str:
    """Weekday (rows, Monday first) by hour (columns) grid of values; empty cells light grey."""
    values = [v for row in grid for v in row if v is not None]
    if not values:
        return empty_chart(title)
    left, top, cell_w, cell_h = 48, 44, 26, 24
    width = left + 24 * cell_w + 20
    height = top + 7 * cell_h + 56
    # The colour scale stops at the 95th percentile cell: one slow outlier hour would otherwise
    # paint every other cell the same pale blue. Cells above it get the darkest shade.
    ordered = sorted(values)
    lowest, highest = ordered[0], ordered[round(0.95 * (len(ordered) - 1))]
    capped = highest < ordered[-1]
    span = (highest - lowest) or 1.0
    body = []
    for day, row in enumerate(grid):
        y = top + day * cell_h
        body.append(f'<text x="{left - 8}" y="{y + cell_h / 2 + 4}" font-size="11" fill="#4b5563" '
                    f'text-anchor="end">{WEEKDAYS[day]}</text>')
        for hour, value in enumerate(row):
            x = left + hour * cell_w
            fill = "#eeeeee" if value is None else _heat_color(min(1.0, (value - lowest) / span))
            tip = f"{WEEKDAYS[day]} {hour:02d}:00: " + (
                "no responses" if value is None else f"{format_number(value)} {unit}")
            body.append(f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" rx="2" '
                        f'fill="{fill}"><title>{escape(tip)}</title></rect>')
    for hour in range(0, 24, 3):
        body.append(f'<text x="{left + hour * cell_w + cell_w / 2 - 1}" y="{top + 7 * cell_h + 14}" '
                    f'font-size="11" fill="#4b5563" text-anchor="middle">{hour:02d}h</text>')
    legend_y = top + 7 * cell_h + 30
    for i in range(10):
        body.append(f'<rect x="{left + i * 18}" y="{legend_y}" width="18" height="10" '
                    f'fill="{_heat_color(i / 9)}"/>')
    body.append(f'<text x="{left + 190}" y="{legend_y + 9}" font-size="11" fill="#4b5563">'
                f'{format_number(lowest)} to {format_number(highest)}{"+" if capped else ""} {escape(unit)} '
                f'(hour of the first contact message, UTC; grey: none)</text>')
    return _frame(title, body, width, height)


def bar_chart_horizontal(title: str, labels: Sequence[str], values: Sequence[float], unit: str,
                         color: str = COLORS[0]) -> str:
    """Horizontal bars, longest first as given (e.g. conversations per source)."""
    if not labels:
        return empty_chart(title)
    row_h, left = 26, 150
    height = MARGIN_TOP + row_h * len(labels) + 36
    plot_w = WIDTH - left - MARGIN_RIGHT - 40
    ticks = nice_ticks(max(values))
    body = []
    for tick in ticks:
        x = left + plot_w * tick / ticks[-1]
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{MARGIN_TOP - 4}" '
                    f'y2="{MARGIN_TOP + row_h * len(labels)}" stroke="#e5e7eb"/>')
        body.append(f'<text x="{x:.1f}" y="{MARGIN_TOP + row_h * len(labels) + 16}" font-size="11" '
                    f'fill="#4b5563" text-anchor="middle">{format_number(tick)}</text>')
    for i, (label, value) in enumerate(zip(labels, values)):
        y = MARGIN_TOP + i * row_h
        w = plot_w * value / ticks[-1]
        shown = label if len(label) <= 22 else label[:21] + "…"
        body.append(f'<text x="{left - 8}" y="{y + row_h / 2 + 4}" font-size="12" fill="#111827" '
                    f'text-anchor="end">{escape(shown)}</text>')
        body.append(f'<rect x="{left}" y="{y + 4}" width="{max(w, 1):.1f}" height="{row_h - 8}" '
                    f'fill="{color}" rx="2"><title>{escape(label)}: {format_number(value)} {escape(unit)}'
                    f'</title></rect>')
        body.append(f'<text x="{left + w + 6:.1f}" y="{y + row_h / 2 + 4}" font-size="11" '
                    f'fill="#374151">{format_number(value)}</text>')
    body.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" font-size="11" fill="#4b5563" '
                f'text-anchor="middle">{escape(unit)}</text>')
    return _frame(title, body, WIDTH, height)


def html_table(headers: Sequence[str], rows: Sequence[Sequence[object]], numeric_from: int = 1) -> str:
    """A plain table; columns from `numeric_from` on are right-aligned numbers."""
    head = "".join(f'<th class="{"num" if i >= numeric_from else ""}">{escape(h)}</th>'
                   for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(
            f'<td class="{"num" if i >= numeric_from else ""}">'
            f'{escape(format_cell(v) if isinstance(v, (int, float)) or v is None else v)}</td>'
            for i, v in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def svg_data_uri(svg: str) -> str:
    """An SVG as a `data:` URI, for Markdown image metadata in the Dagster UI."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")
