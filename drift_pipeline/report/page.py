"""The report page: which charts and tables each workspace gets, the HTML around them, and
`serving/report.html` written atomically; the same headline charts as Dagster asset metadata."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from typing import Sequence

from drift_pipeline.fsutil import atomic_write_text
from drift_pipeline.report.charts import (
    COLORS,
    bar_chart,
    bar_chart_horizontal,
    empty_chart,
    escape,
    heatmap,
    html_table,
    line_chart,
    svg_data_uri,
)
from drift_pipeline.report.queries import OrgReport, read_reports
from drift_pipeline.settings import Settings

REPORT_FILENAME = "report.html"


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
              if report.playbook_funnel[0] else empty_chart("Playbook funnel (conversations started by a playbook)"))
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
<p class="meta">{escape(span)}; published {escape(generated_at.strftime('%Y-%m-%d %H:%M UTC'))} from the
serving copy (analytics.duckdb). Definitions: dbt docs in <code>dbt-docs/index.html</code> beside
this file.</p>
{sections}
</body></html>
"""


def write_report(settings: Settings, serving_db: Path, target: Path) -> dict:
    """Render the report from the published serving copy and replace `target` atomically.

    Returns {"path", "bytes", "charts"}; run after each publish.
    """
    reports = read_reports(settings, serving_db)
    page = render_report(reports, datetime.now(timezone.utc))
    atomic_write_text(target, page)
    return {"path": str(target), "bytes": len(page.encode()), "charts": page.count("<svg ")}

def headline_charts_markdown(settings: Settings, serving_db: Path) -> str:
    """The report's headline charts and playbook funnel as Markdown images (Dagster asset metadata)."""
    reports = read_reports(settings, serving_db)
    parts = []
    for report in reports:
        if len(reports) > 1:
            parts.append(f"**Workspace {report.org_id}**")
        # The report's headline charts and its playbook funnel and meetings per week: what the
        # report asset shows in the UI is what the report shows.
        charts = {**headline_charts(report), **meeting_charts(report)}
        parts += [f"![{name}]({svg_data_uri(svg)})" for name, svg in charts.items()]
    return "\n\n".join(parts) or "No conversations yet."
