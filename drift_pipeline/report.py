"""`serving/report.html`: the marts as pictures, in one self-contained file.

Charts are inline SVG written here from plain numbers: no chart library, no script, no font or
image fetched from anywhere, so the file opens offline, from a mail attachment or a file share,
and shows exactly what the serving copy held when it was published.

The page shows, per workspace: the headline charts, the first-response heatmap, agents, sources,
the playbook funnel with the top playbooks by meetings booked, and meetings booked per week.

Small pure functions turn numbers into SVG (`bar_chart`, `line_chart`, `heatmap`) and rows into
HTML (`html_table`); `load_report_data` reads the serving copy; `render_report` assembles the
page; `write_report` is the only function with side effects. The Dagster asset reuses
`headline_charts_markdown` to show the same headline charts in the UI.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

import duckdb

from drift_pipeline.fsutil import atomic_write_text
from drift_pipeline.settings import Settings
from drift_pipeline.warehouse.connection import connect

REPORT_FILENAME = "report.html"
# Days shown: enough for trends, few enough that daily bars stay readable.
REPORT_DAYS = 60
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
COLORS = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#0891b2")
WIDTH, HEIGHT = 720, 260
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 20, 44, 40
FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, 'Liberation Sans', sans-serif\""


@dataclass
class OrgReport:
    """What the report shows for one Drift workspace, as plain numbers (minutes, hours, %)."""

    org_id: int
    days: list[date] = field(default_factory=list)
    conversations: list[int] = field(default_factory=list)
    frt_p50_min: list[float | None] = field(default_factory=list)
    frt_p90_min: list[float | None] = field(default_factory=list)
    frt_business_p50_min: list[float | None] = field(default_factory=list)
    handoff_pct: list[float | None] = field(default_factory=list)
    open_to_close_p50_h: list[float | None] = field(default_factory=list)
    # weekday (0 = Monday) -> hour -> median first response in minutes
    frt_by_weekday_hour: list[list[float | None]] = field(default_factory=list)
    agents: list[tuple] = field(default_factory=list)  # (name, answered, p50 min, p90 min)
    sources: list[tuple] = field(default_factory=list)  # (source, conversations, responded %, handoff %)
    # conversations started by a playbook: (conversations, engaged, handed off, meeting booked)
    playbook_funnel: tuple[int, int, int, int] = (0, 0, 0, 0)
    # (playbook, conversations, engaged, handed off, meetings booked, meeting rate %), most meetings first
    playbooks: list[tuple] = field(default_factory=list)
    meeting_weeks: list[date] = field(default_factory=list)  # Mondays (UTC) of the weeks with bookings
    meetings_per_week: list[int] = field(default_factory=list)  # booked that week, not cancelled since
    chat_meetings_per_week: list[int] = field(default_factory=list)  # of those, booked in a conversation
    # Service (per report day): every reply's time, p50/p90 in minutes; open conversations at the
    # day's end (all inboxes); SLA applications decided that day (breached, or met and over) and
    # the breached share of them in %.
    reply_p50_min: list[float | None] = field(default_factory=list)
    reply_p90_min: list[float | None] = field(default_factory=list)
    backlog_open: list[int | None] = field(default_factory=list)
    sla_breach_pct: list[float | None] = field(default_factory=list)


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


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


# --- SVG ------------------------------------------------------------------------------------

def _frame(title: str, body: list[str], width: int = WIDTH, height: int = HEIGHT) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="{_esc(title)}" {FONT} '
            f'class="chart"><title>{_esc(title)}</title>'
            f'<rect width="{width}" height="{height}" fill="#ffffff"/>'
            f'<text x="{MARGIN_LEFT}" y="22" font-size="15" font-weight="600" fill="#111827">'
            f'{_esc(title)}</text>' + "".join(body) + "</svg>")


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
               f'fill="#4b5563" text-anchor="middle">{_esc(unit)}</text>')
    out.append(f'<line x1="{MARGIN_LEFT}" x2="{width - MARGIN_RIGHT}" y1="{bottom}" y2="{bottom}" '
               f'stroke="#9ca3af"/>')
    return out


def _x_labels(labels: Sequence[str], xs: Sequence[float], plot_bottom: float) -> list[str]:
    every = _x_label_every(len(labels))
    return [f'<text x="{x:.1f}" y="{plot_bottom + 16}" font-size="11" fill="#4b5563" '
            f'text-anchor="middle">{_esc(label)}</text>'
            for i, (label, x) in enumerate(zip(labels, xs)) if i % every == 0]


def _empty(title: str) -> str:
    return _frame(title, [f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" font-size="13" fill="#6b7280" '
                          f'text-anchor="middle">no data yet</text>'])


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float | None], unit: str,
              color: str = COLORS[0]) -> str:
    """Vertical bars, one per label (e.g. conversations per day), with a y axis in `unit`."""
    if not labels or not any(v for v in values if v):
        return _empty(title)
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
                    f'<title>{_esc(labels[i])}: {format_number(value)} {_esc(unit)}</title></rect>')
    body += _x_labels(labels, xs, MARGIN_TOP + plot_h)
    return _frame(title, body)


def line_chart(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]],
               unit: str) -> str:
    """One line per (name, values) over shared x labels; a missing value breaks its line."""
    values = [v for _, vs in series for v in vs if v is not None]
    if not labels or not values:
        return _empty(title)
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
                            f'<title>{_esc(name)}, {_esc(label)}: {format_number(value)} {_esc(unit)}'
                            f'</title></circle>')
        # Legend, right-aligned on the title line: swatch then name, last series leftmost.
        text_w = 6.5 * len(name)
        legend_x -= text_w
        body.append(f'<text x="{legend_x:.1f}" y="22" font-size="11" fill="#374151">{_esc(name)}</text>')
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
        return _empty(title)
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
                        f'fill="{fill}"><title>{_esc(tip)}</title></rect>')
    for hour in range(0, 24, 3):
        body.append(f'<text x="{left + hour * cell_w + cell_w / 2 - 1}" y="{top + 7 * cell_h + 14}" '
                    f'font-size="11" fill="#4b5563" text-anchor="middle">{hour:02d}h</text>')
    legend_y = top + 7 * cell_h + 30
    for i in range(10):
        body.append(f'<rect x="{left + i * 18}" y="{legend_y}" width="18" height="10" '
                    f'fill="{_heat_color(i / 9)}"/>')
    body.append(f'<text x="{left + 190}" y="{legend_y + 9}" font-size="11" fill="#4b5563">'
                f'{format_number(lowest)} to {format_number(highest)}{"+" if capped else ""} {_esc(unit)} '
                f'(hour of the first contact message, UTC; grey: none)</text>')
    return _frame(title, body, width, height)


def bar_chart_horizontal(title: str, labels: Sequence[str], values: Sequence[float], unit: str,
                         color: str = COLORS[0]) -> str:
    """Horizontal bars, longest first as given (e.g. conversations per source)."""
    if not labels:
        return _empty(title)
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
                    f'text-anchor="end">{_esc(shown)}</text>')
        body.append(f'<rect x="{left}" y="{y + 4}" width="{max(w, 1):.1f}" height="{row_h - 8}" '
                    f'fill="{color}" rx="2"><title>{_esc(label)}: {format_number(value)} {_esc(unit)}'
                    f'</title></rect>')
        body.append(f'<text x="{left + w + 6:.1f}" y="{y + row_h / 2 + 4}" font-size="11" '
                    f'fill="#374151">{format_number(value)}</text>')
    body.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" font-size="11" fill="#4b5563" '
                f'text-anchor="middle">{_esc(unit)}</text>')
    return _frame(title, body, WIDTH, height)


def html_table(headers: Sequence[str], rows: Sequence[Sequence[object]], numeric_from: int = 1) -> str:
    """A plain table; columns from `numeric_from` on are right-aligned numbers."""
    head = "".join(f'<th class="{"num" if i >= numeric_from else ""}">{_esc(h)}</th>'
                   for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(
            f'<td class="{"num" if i >= numeric_from else ""}">'
            f'{_esc(format_cell(v) if isinstance(v, (int, float)) or v is None else v)}</td>'
            for i, v in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# --- the page -------------------------------------------------------------------------------

def _day_labels(days: Sequence[date]) -> list[str]:
    return [d.strftime("%b %d") for d in days]


def headline_charts(report: OrgReport) -> dict[str, str]:
    """The charts the report and the Dagster UI both show, by a short name, as SVG."""
    labels = _day_labels(report.days)
    return {
        "conversations": bar_chart("Conversations per day", labels, report.conversations,
                                   "conversations"),
        "first_response": line_chart(
            "First response time (minutes)", labels,
            [("p50", report.frt_p50_min), ("p90", report.frt_p90_min),
             ("business-hours p50", report.frt_business_p50_min)], "minutes"),
        "handoff": line_chart("Bot handoff rate (%)", labels, [("handoff rate", report.handoff_pct)],
                              "% of bot conversations"),
        "open_to_close": line_chart("Open to close, median (hours)", labels,
                                    [("p50", report.open_to_close_p50_h)], "hours"),
    }


def org_section(report: OrgReport, with_heading: bool) -> str:
    """One workspace's charts and tables as HTML."""
    charts = headline_charts(report)
    heatmap_svg = heatmap("Median first response by weekday and hour (minutes)",
                          report.frt_by_weekday_hour, "min")
    sources = report.sources
    source_chart = bar_chart_horizontal(
        "Conversations by first-touch source", [s[0] for s in sources], [s[1] for s in sources],
        "conversations")
    parts = [f"<h2>Workspace {report.org_id}</h2>"] if with_heading else []
    parts += [f'<figure>{charts[name]}</figure>' for name in charts]
    parts.append(f"<figure>{heatmap_svg}</figure>")
    parts.append("<h3>Agents: first responses</h3>")
    parts.append(html_table(["agent", "conversations answered first", "p50 minutes", "p90 minutes"],
                            report.agents) if report.agents else "<p>No first responses yet.</p>")
    parts.append(f"<figure>{source_chart}</figure>")
    parts.append(html_table(["source", "conversations", "responded %", "handoff %"], sources)
                 if sources else "<p>No conversations yet.</p>")
    parts.append("<h3>Service: replies, backlog, SLAs</h3>")
    parts += [f"<figure>{svg}</figure>" for svg in service_charts(report).values()]
    parts.append("<h3>Playbooks and meetings</h3>")
    parts += [f"<figure>{svg}</figure>" for svg in meeting_charts(report).values()]
    parts.append(html_table(["playbook", "conversations", "engaged", "handed off", "meetings booked",
                             "meeting rate %"], report.playbooks)
                 if report.playbooks else "<p>No conversations started by a playbook yet.</p>")
    return "\n".join(parts)


FUNNEL_STAGES = ("conversations", "engaged", "handed off", "meeting booked")


def service_charts(report: OrgReport) -> dict[str, str]:
    """Reply time (every reply, not only the first), the backlog at each day's end and the SLA
    breach rate, per report day."""
    labels = _day_labels(report.days)
    return {
        "reply_time": line_chart("Reply time, every reply (minutes)", labels,
                                 [("p50", report.reply_p50_min), ("p90", report.reply_p90_min)], "minutes"),
        "backlog": bar_chart("Backlog: open conversations at day end", labels, report.backlog_open,
                             "conversations"),
        "sla_breaches": line_chart("SLA breach rate (%)", labels, [("breached", report.sla_breach_pct)],
                                   "% of SLA applications decided that day"),
    }


def meeting_charts(report: OrgReport) -> dict[str, str]:
    """The playbook funnel (every playbook together) and the meetings booked per week."""
    funnel = (bar_chart_horizontal("Playbook funnel (conversations started by a playbook)",
                                   FUNNEL_STAGES, report.playbook_funnel, "conversations", COLORS[2])
              if report.playbook_funnel[0] else _empty("Playbook funnel (conversations started by a playbook)"))
    # Weeks by their Monday (UTC), meetings by the day they were booked; cancelled ones left out.
    per_week = line_chart("Meetings booked per week", _day_labels(report.meeting_weeks),
                          [("all", report.meetings_per_week),
                           ("in a conversation", report.chat_meetings_per_week)], "meetings (not cancelled)")
    return {"playbook_funnel": funnel, "meetings_per_week": per_week}


_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Liberation Sans',sans-serif;
margin:24px auto;max-width:760px;color:#111827;background:#f9fafb;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}
h3{font-size:15px;margin:20px 0 8px}p.meta{color:#6b7280;margin:0 0 16px;font-size:13px}
figure{margin:0 0 16px;background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:4px;
overflow-x:auto}svg{display:block;max-width:100%;height:auto}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px;margin-bottom:16px}
th,td{padding:6px 10px;border-bottom:1px solid #e5e7eb;text-align:left}
th{background:#f3f4f6;font-weight:600}.num{text-align:right;font-variant-numeric:tabular-nums}
"""


def render_report(reports: Sequence[OrgReport], generated_at: datetime) -> str:
    """The whole page. No script, no external reference: a strict CSP says so to the browser."""
    sections = "\n".join(org_section(r, with_heading=len(reports) > 1) for r in reports) or \
        "<p>The marts are empty: run <code>drift-pipeline sync</code>.</p>"
    days = [d for r in reports for d in r.days]
    span = f"{min(days)} to {max(days)} (UTC days of conversation start)" if days else "no days yet"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Drift conversations report</title><style>{_STYLE}</style></head>
<body><h1>Drift conversations</h1>
<p class="meta">{_esc(span)}; published {_esc(generated_at.strftime('%Y-%m-%d %H:%M UTC'))} from the
serving copy (analytics.duckdb). Definitions: dbt docs in <code>dbt-docs/index.html</code> beside
this file.</p>
{sections}
</body></html>
"""


# --- reading the serving copy -------------------------------------------------------------------

def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 2)


def load_report_data(conn: duckdb.DuckDBPyConnection, days: int = REPORT_DAYS) -> list[OrgReport]:
    """Per workspace, the last `days` days of the marts, in the units the charts show."""
    reports = []
    org_ids = [r[0] for r in conn.execute(
        "SELECT DISTINCT org_id FROM marts.agg_daily_metrics ORDER BY 1").fetchall()]
    for org_id in org_ids:
        since = conn.execute("SELECT max(metric_date) - ?::INTEGER + 1 FROM marts.agg_daily_metrics "
                             "WHERE org_id = ?", [days, org_id]).fetchall()[0][0]
        report = OrgReport(org_id=org_id)
        for row in conn.execute("""
            SELECT d.metric_date, d.conversations, d.first_response_p50_seconds,
                   d.first_response_p90_seconds, b.business_p50, 100 * d.handoff_rate,
                   d.open_to_close_p50_seconds / 3600
            FROM marts.agg_daily_metrics AS d
            LEFT JOIN (
                SELECT cast(created_at AS DATE) AS metric_date,
                       quantile_cont(first_response_business_seconds, 0.5) AS business_p50
                FROM marts.fct_conversations WHERE org_id = ? GROUP BY 1
            ) AS b USING (metric_date)
            WHERE d.org_id = ? AND d.metric_date >= ?
            ORDER BY d.metric_date""", [org_id, org_id, since]).fetchall():
            report.days.append(row[0])
            report.conversations.append(row[1])
            report.frt_p50_min.append(_minutes(row[2]))
            report.frt_p90_min.append(_minutes(row[3]))
            report.frt_business_p50_min.append(_minutes(row[4]))
            report.handoff_pct.append(None if row[5] is None else round(row[5], 1))
            report.open_to_close_p50_h.append(None if row[6] is None else round(row[6], 2))
        grid: list[list[float | None]] = [[None] * 24 for _ in range(7)]
        for weekday, hour, median in conn.execute("""
            SELECT isodow(first_contact_message_at) - 1, hour(first_contact_message_at),
                   quantile_cont(first_response_seconds, 0.5)
            FROM marts.fct_conversations
            WHERE org_id = ? AND first_response_seconds IS NOT NULL AND cast(created_at AS DATE) >= ?
            GROUP BY 1, 2""", [org_id, since]).fetchall():
            grid[weekday][hour] = _minutes(median)
        report.frt_by_weekday_hour = grid
        report.agents = [
            (name or f"user {user_id}", answered, _minutes(p50), _minutes(p90))
            for user_id, name, answered, p50, p90 in conn.execute("""
                SELECT f.first_responder_user_id, any_value(a.agent_name), count(*),
                       quantile_cont(f.first_response_seconds, 0.5),
                       quantile_cont(f.first_response_seconds, 0.9)
                FROM marts.fct_conversations AS f
                LEFT JOIN (SELECT DISTINCT org_id, user_id, agent_name FROM marts.agg_agent_daily)
                    AS a ON a.org_id = f.org_id AND a.user_id = f.first_responder_user_id
                WHERE f.org_id = ? AND f.first_responder_user_id IS NOT NULL
                    AND cast(f.created_at AS DATE) >= ?
                GROUP BY 1 ORDER BY 3 DESC, 2""", [org_id, since]).fetchall()]
        report.sources = [
            (source, conversations, round(100 * responded / conversations, 1),
             None if bots == 0 else round(100 * handed_off / bots, 1))
            for source, conversations, responded, bots, handed_off in conn.execute("""
                SELECT utm_source, sum(conversations), sum(responded_conversations),
                       sum(bot_conversations), sum(handed_off_conversations)
                FROM marts.agg_attribution_daily
                WHERE org_id = ? AND metric_date >= ?
                GROUP BY 1 ORDER BY 2 DESC, 1""", [org_id, since]).fetchall()]
        _load_playbooks_and_meetings(conn, report, since)
        _load_service(conn, report)
        reports.append(report)
    return reports


def _load_service(conn: duckdb.DuckDBPyConnection, report: OrgReport) -> None:
    """Reply time per day (agg_daily_metrics), the backlog at each day's end (agg_daily_backlog,
    every inbox together) and the SLA breach rate (fct_sla_events, by the day each application
    was decided: its breach, or its end when met; running ones are not decided yet)."""
    org_id, days = report.org_id, report.days
    if not days:
        return
    replies = {day: (p50, p90) for day, p50, p90 in conn.execute("""
        SELECT metric_date, reply_time_p50_seconds, reply_time_p90_seconds FROM marts.agg_daily_metrics
        WHERE org_id = ? AND metric_date BETWEEN ? AND ?""", [org_id, days[0], days[-1]]).fetchall()}
    backlog = dict(conn.execute("""
        SELECT metric_date, sum(open_conversations) FROM marts.agg_daily_backlog
        WHERE org_id = ? AND metric_date BETWEEN ? AND ? GROUP BY 1""", [org_id, days[0], days[-1]]).fetchall())
    breaches = dict(conn.execute("""
        SELECT cast(CASE WHEN is_breached THEN sla_breach_at ELSE sla_ended_at END AS DATE) AS decided_on,
               100.0 * count(*) FILTER (WHERE is_breached) / count(*)
        FROM marts.fct_sla_events
        WHERE org_id = ? AND NOT is_active AND (is_breached OR sla_ended_at IS NOT NULL)
        GROUP BY 1""", [org_id]).fetchall())
    for day in days:
        p50, p90 = replies.get(day, (None, None))
        report.reply_p50_min.append(_minutes(p50))
        report.reply_p90_min.append(_minutes(p90))
        report.backlog_open.append(int(backlog[day]) if day in backlog else 0)
        rate = breaches.get(day)
        report.sla_breach_pct.append(None if rate is None else round(rate, 1))


def _load_playbooks_and_meetings(conn: duckdb.DuckDBPyConnection, report: OrgReport, since: date) -> None:
    """The playbook funnel, the top playbooks by meetings booked and the meetings per week,
    over the report's days (conversations by the day they started, meetings by the day booked)."""
    org_id = report.org_id
    playbooks = conn.execute("""
        SELECT playbook_id, max(playbook_name), sum(conversations), sum(engaged_conversations),
               sum(handed_off_conversations), sum(meetings_booked)
        FROM marts.agg_playbook_daily
        WHERE org_id = ? AND metric_date >= ?
        GROUP BY 1 ORDER BY 6 DESC, 3 DESC, 1""", [org_id, since]).fetchall()
    report.playbooks = [
        (name or f"playbook {playbook_id} (never listed)", conversations, engaged, handed_off, booked,
         round(100 * booked / conversations, 1))
        for playbook_id, name, conversations, engaged, handed_off, booked in playbooks[:10]]
    report.playbook_funnel = tuple(int(sum(row[i] for row in playbooks)) for i in (2, 3, 4, 5))
    weeks = {week: (booked, in_chat) for week, booked, in_chat in conn.execute("""
        SELECT cast(date_trunc('week', scheduled_at) AS DATE), count(*),
               count(*) FILTER (WHERE booked_in_conversation)
        FROM marts.fct_meetings
        WHERE org_id = ? AND NOT is_cancelled AND cast(scheduled_at AS DATE) >= ?
        GROUP BY 1""", [org_id, since]).fetchall()}
    if weeks:  # every week from the first booking to the last, a quiet week as 0, not skipped
        week = min(weeks)
        while week <= max(weeks):
            booked, in_chat = weeks.get(week, (0, 0))
            report.meeting_weeks.append(week)
            report.meetings_per_week.append(booked)
            report.chat_meetings_per_week.append(in_chat)
            week += timedelta(days=7)


class ReportError(RuntimeError):
    """The serving copy cannot be charted; the message says what to run."""


def _read(settings: Settings, serving_db: Path) -> list[OrgReport]:
    conn = connect(settings, serving_db, read_only=True)
    try:
        return load_report_data(conn)
    except duckdb.CatalogException as exc:
        reason = str(exc).splitlines()[0]
        raise ReportError(f"the serving copy lacks a mart the report reads ({reason}): "
                          "run `drift-pipeline sync` to build the marts with dbt") from None
    finally:
        conn.close()


def write_report(settings: Settings, serving_db: Path, target: Path) -> dict:
    """Render the report from the published serving copy and replace `target` atomically.

    Returns {"path", "bytes", "charts"}; run after each publish.
    """
    reports = _read(settings, serving_db)
    page = render_report(reports, datetime.now(timezone.utc))
    atomic_write_text(target, page)
    return {"path": str(target), "bytes": len(page.encode()), "charts": page.count("<svg ")}


def svg_data_uri(svg: str) -> str:
    """An SVG as a `data:` URI, for Markdown image metadata in the Dagster UI."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")


def headline_charts_markdown(settings: Settings, serving_db: Path) -> str:
    """The report's headline charts and playbook funnel as Markdown images (Dagster asset metadata)."""
    reports = _read(settings, serving_db)
    parts = []
    for report in reports:
        if len(reports) > 1:
            parts.append(f"**Workspace {report.org_id}**")
        # The report's headline charts and its playbook funnel and meetings per week: what the
        # report asset shows in the UI is what the report shows.
        charts = {**headline_charts(report), **meeting_charts(report)}
        parts += [f"![{name}]({svg_data_uri(svg)})" for name, svg in charts.items()]
    return "\n\n".join(parts) or "No conversations yet."
