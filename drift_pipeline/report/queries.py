"""The serving copy's marts read into what the report draws: one `OrgReport` per workspace, in
the units the charts show (minutes, hours, %)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb

from drift_pipeline.settings import Settings
from drift_pipeline.warehouse.connection import connect

# Days shown: enough for trends, few enough that daily bars stay readable.
REPORT_DAYS = 60


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


def read_reports(settings: Settings, serving_db: Path) -> list[OrgReport]:
    """`load_report_data` on the published serving copy, opened read-only."""
    conn = connect(settings, serving_db, read_only=True)
    try:
        return load_report_data(conn)
    except duckdb.CatalogException as exc:
        reason = str(exc).splitlines()[0]
        raise ReportError(f"the serving copy lacks a mart the report reads ({reason}): "
                          "run `drift-pipeline sync` to build the marts with dbt") from None
    finally:
        conn.close()
