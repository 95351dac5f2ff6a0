"""Readers of the marts outside the pipeline: a BI tool's own, older DuckDB opening the serving
copy, and the dbt semantic layer (MetricFlow's `mf query`) answering the headline metrics.

One small warehouse, built by `dbt build` from explicit raw rows, serves both. Each reader's
answers are compared with what the pinned DuckDB reads (the serving copy) or with values computed
by hand and, independently, in SQL on marts.fct_conversations (the metrics).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from dependencies import unavailable

from drift_pipeline.settings import Settings
from drift_pipeline.warehouse.schema import create_raw_schema
from test_dbt_models import BOT, agent_says, bot_says, contact_says, conversation, load_raw

pytestmark = pytest.mark.slow

DBT_PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"
BI_DUCKDB = "1.4.2"  # the 1.x LTS line, which BI drivers (DBeaver, Metabase, Superset) bundle
SYNCED = datetime(2026, 11, 14)
ORG, OTHER_ORG = 1, 2
# What every subprocess here gets besides this one's environment: no usage statistics, and a
# dead proxy on loopback so `mf`'s check for a newer release on PyPI fails at once (it is
# caught and ignored) instead of leaving the machine.
OFFLINE = {"DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}

# (org, conversation, inbox, created_at, has a bot, handed off, first response s, closed after s)
# Weeks start on Monday (ISO, DuckDB's date_trunc('week')): 2026-10-26, 11-02 and 11-09.
CONVERSATIONS = [
    (ORG, 1, 10, "2026-10-27 09:00:00", False, False, 60, 600),
    (ORG, 2, 10, "2026-10-28 10:00:00", False, False, 120, None),
    (ORG, 3, 20, "2026-10-29 11:00:00", False, False, 300, 1800),
    (ORG, 4, 20, "2026-11-01 23:00:00", True, True, 200, 3600),     # Sunday night: still week 10-26
    (ORG, 5, 10, "2026-11-02 00:30:00", True, False, None, 900),    # Monday: week 11-02
    (ORG, 6, 10, "2026-11-04 12:00:00", True, True, 90, None),
    (ORG, 7, 20, "2026-11-06 08:00:00", False, False, 30, 300),
    (ORG, 8, 20, "2026-11-10 09:00:00", True, True, 45, None),
    (ORG, 9, 30, "2026-11-11 10:00:00", True, False, None, 1200),
    (ORG, 10, 30, "2026-11-12 11:00:00", False, False, 15, None),
    (ORG, 11, 10, "2026-11-13 12:00:00", False, False, None, None),  # nobody answered
    (ORG, 12, 40, "2026-11-12 15:00:00", False, False, 20, None),   # an inbox without bots
    # Another workspace reusing conversation and inbox ids.
    (OTHER_ORG, 1, 10, "2026-11-03 09:00:00", True, True, 50, None),
]
# Later contact turns: (org, conversation) -> [(contact writes, agent answers) in seconds after
# created_at]. Conversation 3's second turn waits 60 s, so its replies are 300 and 60 s.
LATER_TURNS = {(ORG, 3): [(400, 460)]}
# One calendar-hours policy for both turns, and a fixed "now" for the open waits, so the SLA
# events are known by hand: a reply (or a close) more than 100 s after the contact breaches.
SLA_VARS = {"sla_policies": [{"name": "Chat", "first_reply_seconds": 100, "next_reply_seconds": 100}],
            "sla_as_of": "2026-11-14 00:00:00"}


def _dataset() -> dict:
    """The conversations above as Drift API shapes: the contact writes 10 s after creation, a
    bot 10 s later; the agent answers `first response` seconds after the contact (after the
    bot, so a bot conversation with an answer is handed off); bot conversations that are not
    handed off get no agent message."""
    dataset: dict = {}
    message_id = 1000
    for org_id, conversation_id, inbox_id, created, bot, handed_off, response, closed_after in CONVERSATIONS:
        data = dataset.setdefault(org_id, {"conversations": [], "messages": {}, "status_events": [],
                                           "users": [{"id": 7, "name": "Ada"}, {"id": BOT, "name": "Bot", "bot": True}]})
        created_at = datetime.fromisoformat(created)
        contact_at = created_at + timedelta(seconds=10)
        closed_at = created_at + timedelta(seconds=closed_after) if closed_after else None
        updated_at = closed_at or created_at + timedelta(minutes=10)
        record = conversation(conversation_id, "closed" if closed_at else "open", created, str(updated_at))
        record["inboxId"] = inbox_id
        data["conversations"].append(record)
        messages = [contact_says(message_id + 1, str(contact_at))]
        if bot:
            messages.append(bot_says(message_id + 2, str(contact_at + timedelta(seconds=10))))
        assert handed_off == (bot and response is not None)
        if response is not None:
            messages.append(agent_says(message_id + 3, str(contact_at + timedelta(seconds=response)), 7))
        for turn, (contact_after, agent_after) in enumerate(LATER_TURNS.get((org_id, conversation_id), [])):
            messages.append(contact_says(message_id + 4 + 2 * turn, str(created_at + timedelta(seconds=contact_after))))
            messages.append(agent_says(message_id + 5 + 2 * turn, str(created_at + timedelta(seconds=agent_after)), 7))
        data["messages"][conversation_id] = messages
        if closed_at:
            data["status_events"].append((conversation_id, "closed", closed_at))
        message_id += 10
    return dataset


def _run(args: list[str], *, cwd: Path, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    completed = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    command = " ".join(arg.strip()[:40] for arg in args[:3])
    assert completed.returncode == 0, f"{command} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
    return completed


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """A home whose warehouse holds the raw rows above and one `dbt build`, published.

    dbt runs on a copy of the project: `mf` reads dbt's artifacts from the project's own
    target/ folder, and nothing a test runs may write into the checkout."""
    root = tmp_path_factory.mktemp("marts-readers")
    home, project = root / "home", root / "dbt_project"
    shutil.copytree(DBT_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml"))
    home.mkdir()
    with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
        create_raw_schema(conn)
        load_raw(conn, _dataset(), SYNCED)
    env = {**os.environ, **OFFLINE, "DRIFT_PIPELINE_HOME": str(home), "TMPDIR": str(root)}
    _run([str(Path(sys.executable).with_name("dbt")), "build", "--project-dir", ".", "--profiles-dir", ".",
          "--vars", json.dumps(SLA_VARS)], cwd=project, env=env)
    from drift_pipeline.serving import publish

    published = publish(Settings.from_env({"DRIFT_PIPELINE_HOME": str(home)}))
    return {"home": home, "project": project, "env": env, "published": published}


# ---------------------------------------------------------------- the serving copy in DuckDB 1.x

def _unavailable(reason: str):
    """CI must prove both readers work: there a reader that cannot be had fails the test; on a
    machine that cannot reach the package registry, or whose venv predates the `semantic`
    extra, the test is skipped with the reason (tests/dependencies.py)."""
    unavailable(reason)


@pytest.fixture(scope="session")
def bi_duckdb_python(tmp_path_factory) -> Path:
    """A Python with duckdb==BI_DUCKDB from the registry, in a throwaway venv built once per
    session (pytest worker)."""
    venv = tmp_path_factory.mktemp(f"duckdb-{BI_DUCKDB}-venv")
    python = venv / "bin" / "python"
    # The project's own constraints (duckdb==2.x), when a shell exports them, do not apply here.
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_CONSTRAINT", "PIP_REQUIRE_VIRTUALENV")}
    for step in ([sys.executable, "-m", "venv", str(venv)],
                 [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                  "--only-binary=:all:", f"duckdb=={BI_DUCKDB}"]):
        try:
            completed = subprocess.run(step, env=env, capture_output=True, text=True, timeout=420)
        except subprocess.TimeoutExpired:
            _unavailable(f"building a venv with duckdb=={BI_DUCKDB} timed out: {' '.join(step[:4])}")
        if completed.returncode != 0:
            last = (completed.stderr or completed.stdout).strip().splitlines()[-1:]
            _unavailable(f"could not build a venv with duckdb=={BI_DUCKDB} ({' '.join(step[:4])}): {last}")
    return python


# Prints {table: [rows, digest of every row, sorted]} for each table of schema marts; the same
# code runs under the pinned DuckDB and the BI tool's.
READ_EVERY_MART = r"""
import hashlib, json, sys, duckdb
conn = duckdb.connect(sys.argv[1], read_only=True)
out = {"version": duckdb.__version__}
for (table,) in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts' "
                             "AND table_type = 'BASE TABLE' ORDER BY 1").fetchall():
    rows = conn.execute(f"SELECT * FROM marts.{table} ORDER BY ALL").fetchall()
    count = conn.execute(f"SELECT count(*) FROM marts.{table}").fetchall()[0][0]
    out[table] = [count, len(rows), hashlib.sha256(json.dumps(rows, default=repr).encode()).hexdigest()]
print(json.dumps(out))
"""


def test_duckdb_1_4_opens_the_serving_copy_and_reads_every_mart_as_the_pinned_duckdb_does(built, bi_duckdb_python):
    serving = Path(built["published"]["path"])
    theirs = json.loads(_run([str(bi_duckdb_python), "-c", READ_EVERY_MART, str(serving)], cwd=serving.parent,
                             env=dict(os.environ)).stdout)
    ours = json.loads(_run([sys.executable, "-c", READ_EVERY_MART, str(serving)], cwd=serving.parent,
                           env=dict(os.environ)).stdout)
    assert theirs.pop("version") == BI_DUCKDB and ours.pop("version") == duckdb.__version__
    assert set(ours) == {"fct_conversations", "agg_daily_metrics", "agg_agent_daily", "agg_attribution_daily",
                         "fct_meetings", "agg_playbook_daily", "agg_daily_backlog", "fct_sla_events"}
    assert ours["fct_conversations"][0] == len(CONVERSATIONS)
    assert {table: counts[0] for table, counts in theirs.items()} == {table: counts[0] for table, counts in ours.items()}
    assert theirs == ours, "the same rows, value for value"


# ---------------------------------------------------------------- the semantic layer (MetricFlow)

def _mf_query(built: dict, metrics: list[str], group_by: list[str]) -> list[dict]:
    """`mf query` in the built project; its rows, numbers as floats (None when empty)."""
    mf = Path(sys.executable).with_name("mf")
    if not mf.exists():
        _unavailable(f"no {mf}: dbt-metricflow is not installed (make install)")
    out = built["project"] / f"mf-{'-'.join(metrics)}.csv"
    _run([str(mf), "query", "--metrics", ",".join(metrics), "--group-by", ",".join(group_by), "--csv", str(out)],
         cwd=built["project"], env=built["env"])
    with out.open() as handle:
        return [{k: (float(v) if v not in ("", None) and not k.startswith("metric_time") else (v or None))
                 for k, v in row.items()} for row in csv.DictReader(handle)]


def _mart_sql(built: dict, sql: str) -> list[tuple]:
    with duckdb.connect(str(built["home"] / "warehouse.duckdb"), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_first_response_p50_by_week_from_metricflow_equals_the_mart(built):
    rows = _mf_query(built, ["first_response_p50_seconds", "open_to_close_p50_seconds", "conversations"],
                     ["metric_time__week", "conversation__org_id"])
    answered = {(int(r["conversation__org_id"]), r["metric_time__week"][:10]):
                (r["first_response_p50_seconds"], r["open_to_close_p50_seconds"], r["conversations"]) for r in rows}
    # By hand: week 10-26 answers 60, 120, 300, 200 s (the Sunday-night one included) -> median
    # 160; week 11-02 90 and 30 -> 60; week 11-09 45, 15, 20 -> 20; the other org's one answer.
    assert {key: value[0] for key, value in answered.items()} == {
        (ORG, "2026-10-26"): 160.0, (ORG, "2026-11-02"): 60.0, (ORG, "2026-11-09"): 20.0, (OTHER_ORG, "2026-11-02"): 50.0}
    assert answered[(ORG, "2026-10-26")][1] == 1800.0 and answered[(OTHER_ORG, "2026-11-02")][1] is None
    expected = _mart_sql(built, """
        SELECT org_id, strftime(date_trunc('week', created_at), '%Y-%m-%d'),
               quantile_cont(first_response_seconds, 0.5), quantile_cont(open_to_close_seconds, 0.5), count(*)
        FROM marts.fct_conversations GROUP BY ALL""")
    assert answered == {(org, week): (fr, otc, float(n)) for org, week, fr, otc, n in expected}


def test_handoff_rate_by_inbox_from_metricflow_equals_the_mart(built):
    rows = _mf_query(built, ["handoff_rate", "bot_conversations"], ["conversation__org_id", "conversation__inbox_id"])
    answered = {(int(r["conversation__org_id"]), int(r["conversation__inbox_id"])): r["handoff_rate"] for r in rows}
    # By hand: inbox 10 handed off 1 of its 2 bot conversations, 20 both, 30 none of 1; inbox
    # 40 had no bot (null, not 0); the other org's inbox 10 (same id) 1 of 1.
    assert answered == {(ORG, 10): 0.5, (ORG, 20): 1.0, (ORG, 30): 0.0, (ORG, 40): None, (OTHER_ORG, 10): 1.0}
    expected = _mart_sql(built, """
        SELECT org_id, inbox_id,
               count(*) FILTER (WHERE handed_off) / nullif(count(*) FILTER (WHERE has_bot), 0)
        FROM marts.fct_conversations GROUP BY ALL""")
    assert answered == {(org, inbox): rate for org, inbox, rate in expected}


def test_reply_time_by_week_from_metricflow_counts_every_reply_and_matches_the_daily_mart(built):
    rows = _mf_query(built, ["reply_time_p50_seconds", "reply_time_p90_seconds", "replies"],
                     ["metric_time__week", "conversation__org_id"])
    answered = {(int(r["conversation__org_id"]), r["metric_time__week"][:10]):
                (r["reply_time_p50_seconds"], r["reply_time_p90_seconds"], r["replies"]) for r in rows}
    # By hand: week 10-26's replies are 60, 120, 300 and 60 (conversation 3's second turn), 200
    # -> sorted 60 60 120 200 300: p50 120 (the first responses alone give 160), p90 at
    # position 3.6: 200 + 0.6 * 100 = 260. Week 11-02: 90, 30 -> 60 and 84; week 11-09: 45, 15,
    # 20 -> 20 and 40; the other org: 50.
    assert answered == {(ORG, "2026-10-26"): (120.0, 260.0, 5.0), (ORG, "2026-11-02"): (60.0, 84.0, 2.0),
                        (ORG, "2026-11-09"): (20.0, 40.0, 3.0), (OTHER_ORG, "2026-11-02"): (50.0, 50.0, 1.0)}
    # At day grain the metric is the daily mart's column, computed there by its own SQL.
    by_day = _mf_query(built, ["reply_time_p50_seconds", "reply_time_p90_seconds"],
                       ["metric_time__day", "conversation__org_id"])
    expected = _mart_sql(built, """
        SELECT org_id, strftime(metric_date, '%Y-%m-%d'), reply_time_p50_seconds, reply_time_p90_seconds
        FROM marts.agg_daily_metrics WHERE reply_time_p50_seconds IS NOT NULL""")
    assert {(int(r["conversation__org_id"]), r["metric_time__day"][:10]):
            (r["reply_time_p50_seconds"], r["reply_time_p90_seconds"]) for r in by_day} == {
        (org, day): (p50, p90) for org, day, p50, p90 in expected}


def test_backlog_from_metricflow_is_the_last_days_snapshot_not_a_sum(built):
    by_day = _mf_query(built, ["backlog_open_conversations"], ["metric_time__day", "workspace", "backlog_day__inbox_id"])
    on_13th = {int(r["backlog_day__inbox_id"]): r["backlog_open_conversations"] for r in by_day
               if r["metric_time__day"][:10] == "2026-11-13" and int(r["workspace"]) == ORG}
    # By hand: at the end of 11-13 the org's never-closed conversations are open: 2, 6, 11 in
    # inbox 10, 8 in 20, 10 in 30, 12 in 40.
    assert on_13th == {10: 3.0, 20: 1.0, 30: 1.0, 40: 1.0}
    assert {(int(r["workspace"]), r["metric_time__day"][:10], int(r["backlog_day__inbox_id"])): r["backlog_open_conversations"]
            for r in by_day} == {(org, day, inbox): float(n) for org, day, inbox, n in _mart_sql(built, """
        SELECT org_id, strftime(metric_date, '%Y-%m-%d'), inbox_id, open_conversations
        FROM marts.agg_daily_backlog WHERE open_conversations > 0""")}
    by_week = _mf_query(built, ["backlog_open_conversations"], ["metric_time__week", "workspace"])
    # A week gives its last day's backlog, per workspace: the org's 11-01 (conversations 2 and 4:
    # 4 closes at 00:00 on 11-02), 11-08 (2 and 6) and 11-13 (its newest day; six open); the
    # other org's only day, 11-03 (its one conversation). Summing the days would give far more.
    assert {(int(r["workspace"]), r["metric_time__week"][:10]): r["backlog_open_conversations"] for r in by_week} == {
        (ORG, "2026-10-26"): 2.0, (ORG, "2026-11-02"): 2.0, (ORG, "2026-11-09"): 6.0, (OTHER_ORG, "2026-11-02"): 1.0}


def test_sla_breach_rate_from_metricflow_is_the_reports_decided_applications(built):
    rows = _mf_query(built, ["sla_breach_rate", "sla_breached_applications", "sla_decided_applications"],
                     ["metric_time__week", "sla_application__org_id"])
    answered = {(int(r["sla_application__org_id"]), r["metric_time__week"][:10]):
                (r["sla_breached_applications"], r["sla_decided_applications"], r["sla_breach_rate"]) for r in rows}
    # By hand, 100 s targets, each decided on its breach day or its end's: week 10-26 decides 1
    # (60 s, met), 2 (120 s), 3's first turn (300 s), 3's second (60 s, met) and 4 (200 s, on
    # 11-01) -> 3 of 5; week 11-02: 5 (closed unanswered after 890 s), 6 and 7 (met) -> 1 of 3;
    # week 11-09: 8, 10, 12 met, 9 (closed unanswered) and 11 (unanswered at sla_as_of) breached
    # -> 2 of 5; the other org's one reply in 50 s -> 0 of 1 (0, not null).
    assert answered == {(ORG, "2026-10-26"): (3.0, 5.0, 0.6), (ORG, "2026-11-02"): (1.0, 3.0, 1 / 3),
                        (ORG, "2026-11-09"): (2.0, 5.0, 0.4), (OTHER_ORG, "2026-11-02"): (0.0, 1.0, 0.0)}
    # The report's own query (drift_pipeline/report.py, _load_service), per day, on the mart.
    by_day = _mf_query(built, ["sla_breach_rate"], ["metric_time__day", "sla_application__org_id"])
    expected = _mart_sql(built, """
        SELECT org_id, strftime(cast(CASE WHEN is_breached THEN sla_breach_at ELSE sla_ended_at END AS DATE), '%Y-%m-%d'),
               100.0 * count(*) FILTER (WHERE is_breached) / count(*)
        FROM marts.fct_sla_events
        WHERE NOT is_active AND (is_breached OR sla_ended_at IS NOT NULL)
        GROUP BY ALL""")
    assert {(int(r["sla_application__org_id"]), r["metric_time__day"][:10]): 100 * r["sla_breach_rate"]
            for r in by_day} == pytest.approx({(org, day): rate for org, day, rate in expected})
