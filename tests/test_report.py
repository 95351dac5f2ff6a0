"""serving/report.html: the chart functions, and the page drawn from a small serving copy."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from drift_pipeline.report.charts import bar_chart, format_cell, format_number, heatmap, line_chart, nice_ticks
from drift_pipeline.report.page import headline_charts_markdown, render_report, write_report
from drift_pipeline.report.queries import OrgReport, ReportError, load_report_data
from drift_pipeline.settings import Settings

FIRST_DAY = date(2026, 11, 2)  # a Monday
DAYS = 14
# Charts in the page: four headline charts, the heatmap, conversations by source, reply time,
# backlog, SLA breach rate, the playbook funnel, meetings per week.
CHART_COUNT = 11


def build_serving_copy(path: Path) -> None:
    """A serving copy with the marts' columns the report reads and 14 days of explicit numbers:
    day i has 10 + i conversations, responses of 60 s x (1 + hour % 5), three sources; each day
    playbook 1 (Pricing page) has 4 conversations, 3 engaged, 2 handed off, 1 meeting booked and
    playbook 2 (never listed) 2, 1, 0 and a meeting on even days; meetings booked in the weeks
    of Nov 02 (3 standing, 2 of them in a conversation, 1 cancelled) and Nov 23 (1), and one in
    September, before the report's 60 days."""
    conn = duckdb.connect(str(path))
    conn.execute("CREATE SCHEMA marts")
    conn.execute("""CREATE TABLE marts.fct_conversations (org_id BIGINT, conversation_id BIGINT,
        created_at TIMESTAMP, first_contact_message_at TIMESTAMP, first_responder_user_id BIGINT,
        first_response_seconds DOUBLE, first_response_business_seconds DOUBLE)""")
    conn.execute("""CREATE TABLE marts.agg_daily_metrics (org_id BIGINT, metric_date DATE,
        conversations BIGINT, first_response_p50_seconds DOUBLE, first_response_p90_seconds DOUBLE,
        handoff_rate DOUBLE, open_to_close_p50_seconds DOUBLE, reply_time_p50_seconds DOUBLE,
        reply_time_p90_seconds DOUBLE)""")
    conn.execute("""CREATE TABLE marts.agg_daily_backlog (org_id BIGINT, metric_date DATE, inbox_id BIGINT,
        open_conversations BIGINT)""")
    conn.execute("""CREATE TABLE marts.fct_sla_events (org_id BIGINT, sla_breach_at TIMESTAMP,
        sla_ended_at TIMESTAMP, is_breached BOOLEAN, is_active BOOLEAN)""")
    conn.execute("""CREATE TABLE marts.agg_agent_daily (org_id BIGINT, metric_date DATE,
        user_id BIGINT, agent_name VARCHAR)""")
    conn.execute("""CREATE TABLE marts.agg_attribution_daily (org_id BIGINT, metric_date DATE,
        utm_source VARCHAR, conversations BIGINT, responded_conversations BIGINT,
        bot_conversations BIGINT, handed_off_conversations BIGINT)""")
    conn.execute("""CREATE TABLE marts.agg_playbook_daily (org_id BIGINT, metric_date DATE,
        playbook_id BIGINT, playbook_name VARCHAR, conversations BIGINT, engaged_conversations BIGINT,
        handed_off_conversations BIGINT, meetings_booked BIGINT)""")
    conn.execute("""CREATE TABLE marts.fct_meetings (org_id BIGINT, slug VARCHAR, is_cancelled BOOLEAN,
        booked_in_conversation BOOLEAN, scheduled_at TIMESTAMP)""")
    for slug, cancelled, in_chat, at in (("a", False, True, "2026-11-02 09:00"), ("b", False, True, "2026-11-05 09:00"),
                                         ("c", False, False, "2026-11-08 23:59"), ("d", True, True, "2026-11-03 09:00"),
                                         ("e", False, True, "2026-11-23 10:00"), ("f", False, True, "2026-09-01 10:00")):
        conn.execute("INSERT INTO marts.fct_meetings VALUES (1, ?, ?, ?, ?)", [slug, cancelled, in_chat, at])
    conversation_id = 0
    for i in range(DAYS):
        day = FIRST_DAY + timedelta(days=i)
        for n in range(10 + i):
            conversation_id += 1
            started = datetime.combine(day, datetime.min.time()) + timedelta(hours=(n * 5) % 24)
            seconds = 60.0 * (1 + started.hour % 5)
            conn.execute("INSERT INTO marts.fct_conversations VALUES (1, ?, ?, ?, ?, ?, ?)",
                         [conversation_id, started, started, 7 + n % 2, seconds, seconds / 2])
        conn.execute("INSERT INTO marts.agg_daily_metrics VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [day, 10 + i, 120.0 + 10 * i, 300.0 + 20 * i, None if i == 3 else 0.2 + i / 50,
                      3600.0 * (2 + i % 4), 90.0 + 6 * i, 240.0 + 12 * i])
        # Backlog: inbox 3 holds i open conversations at the day's end, inbox 4 two.
        conn.execute("INSERT INTO marts.agg_daily_backlog VALUES (1, ?, 3, ?), (1, ?, 4, 2)", [day, i, day])
        # SLAs: each day one breach (decided at its breach), and i % 3 + 1 met (decided at their
        # reply; their deadline the next day must not count), and one still running.
        noon = datetime.combine(day, datetime.min.time()) + timedelta(hours=12)
        conn.execute("INSERT INTO marts.fct_sla_events VALUES (1, ?, NULL, true, false)", [noon])
        for _ in range(i % 3 + 1):
            conn.execute("INSERT INTO marts.fct_sla_events VALUES (1, ?, ?, false, false)",
                         [noon + timedelta(days=1), noon])
        conn.execute("INSERT INTO marts.fct_sla_events VALUES (1, ?, NULL, false, true)", [noon])
        conn.execute("INSERT INTO marts.agg_agent_daily VALUES (1, ?, 7, 'Ada'), (1, ?, 8, 'Grace')",
                     [day, day])
        conn.execute("INSERT INTO marts.agg_playbook_daily VALUES (1, ?, 1, 'Pricing page', 4, 3, 2, 1), "
                     "(1, ?, 2, NULL, 2, 1, 0, ?)", [day, day, 1 if i % 2 == 0 else 0])
        for source, share in (("google", 5), ("(untracked)", 3), ("newsletter", 2)):
            conn.execute("INSERT INTO marts.agg_attribution_daily VALUES (1, ?, ?, ?, ?, ?, ?)",
                         [day, source, share, share - 1, 2, 1])
    conn.close()


def settings_for(serving_db: Path) -> Settings:
    """Settings whose home (DuckDB's spill folder) sits beside the test's serving copy."""
    return Settings.from_env({"DRIFT_PIPELINE_HOME": str(serving_db.parent / "home")})


@pytest.fixture
def serving_copy(tmp_path: Path) -> Path:
    path = tmp_path / "analytics.duckdb"
    build_serving_copy(path)
    return path


# --- the chart functions -------------------------------------------------------------------

def test_nice_ticks_cover_the_maximum_in_round_steps():
    assert nice_ticks(9.3) == [0, 2, 4, 6, 8, 10]
    assert nice_ticks(240) == [0, 50, 100, 150, 200, 250]
    assert nice_ticks(0) == [0, 1]


def test_numbers_are_short_on_axes():
    assert [format_number(v) for v in (3.0, 0.25, 12.34, 1500, 25_000, None)] == \
        ["3", "0.25", "12.3", "1.5k", "25k", "-"]


def test_table_cells_are_exact():
    assert [format_cell(v) for v in (1934, 2.07, 2.0, None)] == ["1,934", "2.1", "2.0", "-"]


def test_a_missing_value_breaks_the_line_instead_of_drawing_a_zero():
    svg = line_chart("t", ["a", "b", "c", "d"], [("s", [1.0, None, 2.0, 3.0])], "min")
    paths = re.findall(r'<path d="([^"]+)"', svg)
    assert len(paths) == 2 and paths[0].count("L") == 0 and paths[1].count("L") == 1
    assert svg.count("<circle") == 3


def test_bars_are_one_per_nonzero_value_with_a_tooltip():
    svg = bar_chart("Conversations per day", ["Nov 02", "Nov 03", "Nov 04"], [4, 0, 8], "conversations")
    assert svg.count('rx="2"><title>') == 2 and "Nov 04: 8 conversations" in svg


def test_heatmap_draws_all_168_cells_and_marks_empty_ones():
    grid = [[None] * 24 for _ in range(7)]
    grid[0][9], grid[4][15] = 2.0, 10.0
    svg = heatmap("h", grid, "min")
    assert svg.count('height="22" rx="2"') == 168
    assert "Mon 09:00: 2 min" in svg and "Sun 23:00: no responses" in svg


def test_one_slow_hour_does_not_wash_out_the_heatmap():
    grid = [[float(1 + (day * 24 + hour) % 10) for hour in range(24)] for day in range(7)]
    grid[0][5] = 500.0
    svg = heatmap("h", grid, "min")
    assert "1 to 10+ min" in svg
    # A 10-minute cell is as dark as the outlier: the scale spans the ordinary cells.
    ten = re.search(r'fill="(#[0-9a-f]{6})"><title>Mon 09:00: 10 min', svg).group(1)
    outlier = re.search(r'fill="(#[0-9a-f]{6})"><title>Mon 05:00: 500 min', svg).group(1)
    assert ten == outlier


def test_empty_marts_say_so_instead_of_drawing_empty_axes():
    assert "no data yet" in line_chart("t", [], [("s", [])], "min")
    page = render_report([], datetime(2026, 11, 16))
    assert "drift-pipeline sync" in page


# --- the page --------------------------------------------------------------------------------

def test_report_data_comes_from_the_marts_in_chart_units(serving_copy):
    with duckdb.connect(str(serving_copy), read_only=True) as conn:
        [report] = load_report_data(conn)
    assert report.days[0] == FIRST_DAY and len(report.days) == DAYS
    assert report.conversations[:3] == [10, 11, 12]
    assert report.frt_p50_min[0] == 2.0 and report.frt_p90_min[0] == 5.0
    assert report.handoff_pct[3] is None and report.handoff_pct[0] == 20.0
    assert report.open_to_close_p50_h[:2] == [2.0, 3.0]
    # Monday 00:00 conversations responded in 60 s: 1 minute; business half of that.
    assert report.frt_by_weekday_hour[0][0] == 1.0
    assert report.frt_business_p50_min[0] is not None
    assert [a[0] for a in report.agents] == ["Ada", "Grace"]
    assert report.sources[0] == ("google", 70, 80.0, 50.0)


def test_playbooks_and_meetings_come_from_their_marts(serving_copy):
    with duckdb.connect(str(serving_copy), read_only=True) as conn:
        [report] = load_report_data(conn)
    assert report.playbooks == [("Pricing page", 56, 42, 28, 14, 25.0),
                                ("playbook 2 (never listed)", 28, 14, 0, 7, 25.0)]
    assert report.playbook_funnel == (84, 56, 28, 21)
    # A quiet week is a 0, not left out; cancelled and older meetings are not counted.
    assert report.meeting_weeks == [date(2026, 11, 2), date(2026, 11, 9), date(2026, 11, 16), date(2026, 11, 23)]
    assert report.meetings_per_week == [3, 0, 0, 1]
    assert report.chat_meetings_per_week == [2, 0, 0, 1]


def test_reply_time_backlog_and_sla_breaches_come_from_their_marts(serving_copy):
    with duckdb.connect(str(serving_copy), read_only=True) as conn:
        [report] = load_report_data(conn)
    # Day i: reply p50 90 + 6i s, p90 240 + 12i s, in minutes.
    assert report.reply_p50_min[:2] == [1.5, 1.6] and report.reply_p90_min[:2] == [4.0, 4.2]
    # Every inbox together: i + 2 open at day i's end.
    assert report.backlog_open[:4] == [2, 3, 4, 5]
    # Day 0 decides its breach and its 1 met reply (its deadline the next day does not move it)
    # and day 1 its breach and 2 met: 50% and 33.3%; day 2: 1 of 4; running ones are left out.
    assert report.sla_breach_pct[:3] == [50.0, 33.3, 25.0]


def test_the_page_is_self_contained_with_every_chart(serving_copy, tmp_path):
    target = tmp_path / "report.html"
    result = write_report(settings_for(serving_copy), serving_copy, target)
    page = target.read_text()

    assert result["charts"] == CHART_COUNT == page.count("<svg ")
    assert "no data yet" not in page
    # Nothing to fetch: no script, no stylesheet or image link, no URL but the SVG namespace.
    assert "<script" not in page and "<link" not in page and "src=" not in page
    assert set(re.findall(r"https?://[^\s\"'<>)]+", page)) == {"http://www.w3.org/2000/svg"}
    assert "default-src 'none'" in page
    for title in ("Conversations per day", "First response time (minutes)", "Bot handoff rate (%)",
                  "Open to close, median (hours)", "Median first response by weekday and hour",
                  "Conversations by first-touch source", "Agents: first responses",
                  "Playbook funnel (conversations started by a playbook)",
                  "Meetings booked per week", "meetings (not cancelled)", "playbook 2 (never listed)",
                  "Reply time, every reply (minutes)", "Backlog: open conversations at day end",
                  "SLA breach rate (%)"):
        assert title in page


def test_headline_charts_for_the_dagster_ui_are_markdown_images(serving_copy):
    markdown = headline_charts_markdown(settings_for(serving_copy), serving_copy)
    # The four headline charts, the playbook funnel and the meetings per week.
    assert markdown.count("](data:image/svg+xml;base64,") == 6
    assert "![playbook_funnel](" in markdown and "![meetings_per_week](" in markdown


def test_a_serving_copy_without_the_attribution_mart_names_the_fix(serving_copy, tmp_path):
    with duckdb.connect(str(serving_copy)) as conn:
        conn.execute("DROP TABLE marts.agg_attribution_daily")
    with pytest.raises(ReportError, match="drift-pipeline sync"):
        write_report(settings_for(serving_copy), serving_copy, tmp_path / "report.html")


def test_several_workspaces_get_a_section_each(serving_copy):
    reports = [OrgReport(org_id=1, days=[FIRST_DAY], conversations=[3]),
               OrgReport(org_id=2, days=[FIRST_DAY], conversations=[5])]
    page = render_report(reports, datetime(2026, 11, 16))
    assert "Workspace 1" in page and "Workspace 2" in page


# --- publishing ----------------------------------------------------------------------------------

def test_every_publish_writes_the_report_beside_the_serving_copy(tmp_path):
    from drift_pipeline.serving import publish

    settings = Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path / "home")})
    settings.ensure_dirs()
    build_serving_copy(settings.warehouse_path)  # marts with the columns the report reads
    result = publish(settings)

    report = settings.serving_dir / "report.html"
    assert result["report"] == str(report)
    assert report.read_text().count("<svg ") == CHART_COUNT
    assert not list(settings.serving_dir.glob(".*tmp"))  # written atomically, nothing left over


def test_top_playbooks_rank_by_meetings_booked_from_the_serving_copy(tmp_path):
    from drift_pipeline.serving import publish, top_playbooks

    settings = Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path / "home")})
    settings.ensure_dirs()
    build_serving_copy(settings.warehouse_path)
    publish(settings)
    assert top_playbooks(settings) == [("Pricing page", 56, 14, 25.0), ("playbook 2 (never listed)", 28, 7, 25.0)]
    assert top_playbooks(settings, limit=1) == [("Pricing page", 56, 14, 25.0)]


def test_publish_rewrites_only_the_parquet_files_of_marts_that_changed(tmp_path):
    from drift_pipeline.serving import publish

    settings = Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path / "home")})
    settings.ensure_dirs()
    build_serving_copy(settings.warehouse_path)
    first = publish(settings)
    assert len(first["parquet_written"]) == 8 and first["parquet_unchanged"] == []

    assert publish(settings)["parquet_unchanged"] == sorted(first["tables"]), "nothing changed, nothing rewritten"
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        conn.execute("UPDATE marts.agg_agent_daily SET agent_name = 'Ada L.' WHERE user_id = 7")
    (settings.serving_dir / "parquet" / "marts.agg_daily_metrics.parquet").unlink()  # lost: written again
    third = publish(settings)
    assert third["parquet_written"] == ["marts.agg_agent_daily.parquet", "marts.agg_daily_metrics.parquet"]
    parquet = settings.serving_dir / "parquet" / "marts.agg_agent_daily.parquet"
    assert duckdb.sql(f"SELECT count(*) FROM '{parquet}' WHERE agent_name = 'Ada L.'").fetchall()[0][0] == DAYS
    serving = duckdb.connect(str(settings.serving_dir / "analytics.duckdb"), read_only=True)
    try:  # the DuckDB copy is whole and current either way
        assert serving.execute("SELECT count(*) FROM marts.agg_agent_daily WHERE agent_name = 'Ada L.'").fetchall() \
            == [(DAYS,)]
        assert serving.execute("SELECT count(*) FROM marts.fct_conversations").fetchall()[0][0] == first["tables"][
            "marts.fct_conversations"]
    finally:
        serving.close()


def _storage_format(path: Path) -> int:
    """The storage format number in a DuckDB file's header (after the magic "DUCK"): what a
    DuckDB release checks before it opens the file at all."""
    header = path.read_bytes()[:20]
    assert header[8:12] == b"DUCK", header
    return int.from_bytes(header[12:20], "little")


def test_publish_writes_the_serving_copy_in_the_storage_format_configured(tmp_path):
    """BI tools open the copy with the DuckDB their driver bundles (1.x): by default it is
    written in v1.0.0's format (number 64, which DuckDB 0.10 to 1.1 write and 1.x reads), not
    the pinned DuckDB's own. tests/test_marts_readers.py opens one in DuckDB 1.4."""
    from drift_pipeline.serving import publish

    settings = Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path / "home")})
    settings.ensure_dirs()
    build_serving_copy(settings.warehouse_path)
    serving = settings.serving_dir / "analytics.duckdb"
    publish(settings)
    assert _storage_format(serving) == 64
    duckdb.connect(str(tmp_path / "native.duckdb")).close()
    publish(replace(settings, serving_storage_version="latest"))
    assert _storage_format(serving) == _storage_format(tmp_path / "native.duckdb") != 64


def test_a_storage_version_duckdb_cannot_write_fails_the_publish_in_one_line_and_keeps_the_copy(tmp_path):
    from drift_pipeline.serving import PublishError, publish

    settings = Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path / "home")})
    settings.ensure_dirs()
    build_serving_copy(settings.warehouse_path)
    serving = settings.serving_dir / "analytics.duckdb"
    publish(settings)
    published = serving.read_bytes()
    with pytest.raises(PublishError) as raised:
        publish(replace(settings, serving_storage_version="v9.9.9"))
    assert "DRIFT_SERVING_STORAGE_VERSION=v9.9.9" in str(raised.value) and "\n" not in str(raised.value)
    assert serving.read_bytes() == published
    assert not list(settings.serving_dir.glob(".*tmp*"))


def test_dbt_docs_are_published_whole_or_not_at_all(tmp_path):
    from drift_pipeline.serving import PublishError, publish_dbt_docs

    settings = Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path / "home")})
    generated = tmp_path / "generated"
    generated.mkdir()
    (generated / "index.html").write_text("<html>docs</html>")
    (generated / "manifest.json").write_text("{}")
    with pytest.raises(PublishError, match="catalog.json"):
        publish_dbt_docs(settings, generated)
    assert not (settings.serving_dir / "dbt-docs").exists()

    (generated / "catalog.json").write_text("{}")
    target = publish_dbt_docs(settings, generated)
    assert sorted(p.name for p in target.iterdir()) == ["catalog.json", "index.html", "manifest.json"]
