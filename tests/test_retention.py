"""Retention and the transcripts copy: message text older than N days is gone from every
table and every file under the home while every metric stays equal; erasure and retention
are audited in raw.erasures without PII; serving/transcripts.duckdb exists only when enabled
and follows erasure."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import timedelta

import duckdb
import pytest

from drift_pipeline.dbt_project import dbt_cli, dbt_run_dir, ensure_manifest
from drift_pipeline.marts import dbt_output_to_file
from drift_pipeline.runner import refresh_marts
from drift_pipeline.operations import erase
from drift_pipeline.pii import hash_pii
from drift_pipeline.retention import run_retention
from drift_pipeline.serving import publish
from drift_pipeline.timeutil import ts_to_ms, utcnow
from drift_pipeline.transcripts.export import ExportFilters, export_transcripts
from drift_pipeline.webhooks.apply import apply_inbox
from drift_pipeline.webhooks.inbox_files import write_events_file

from conftest import SIM_END, mart_rows, query, sync

pytestmark = pytest.mark.slow
END = SIM_END.replace(tzinfo=None)
START = END - timedelta(days=3)
OLD = "OLDSECRET"  # only in bodies of messages older than the retention window
NEW = "NEWTEXT"  # only in a body inside the window


def _tables(path) -> dict[str, list[tuple]]:
    """Every row of every table of a DuckDB file, sorted."""
    conn = duckdb.connect(str(path), read_only=True)
    try:
        names = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                             "WHERE table_type = 'BASE TABLE' ORDER BY 1, 2").fetchall()
        return {f"{s}.{t}": sorted(conn.execute(f'SELECT * FROM "{s}"."{t}"').fetchall(), key=repr)
                for s, t in names}
    finally:
        conn.close()


def _rebuild_marts_from_scratch(settings) -> None:
    """dbt --full-refresh: every mart row recomputed from the (now body-less) raw tables. Its
    artifacts go under the home like every pipeline invocation's (another test, run beside this
    one, checks that nothing lands in the checkout's dbt_project/target)."""
    with dbt_output_to_file(settings, "test_full_refresh"):
        dbt_cli().cli(
            ["run", "--full-refresh", "--select", "+marts"], manifest=ensure_manifest(), raise_on_error=True,
            target_path=dbt_run_dir(settings, "full-refresh")).wait()


def _tables_mentioning(path, text: str) -> list[str]:
    return [name for name, rows in _tables(path).items() if text in repr(rows)]


def _files_mentioning(root, text: str) -> list[str]:
    needle = text.encode()
    return [str(p.relative_to(root)) for p in sorted(root.rglob("*")) if p.is_file() and needle in p.read_bytes()]


def test_retention_blanks_old_text_everywhere_and_leaves_every_metric_equal(sim_env, monkeypatch):
    simulator, settings = sim_env
    settings = replace(settings, publish_transcripts=True)
    world = simulator.world
    agent = next(u["id"] for u in world.users if not u.get("bot"))
    old_at = ts_to_ms(END - timedelta(days=2, hours=12))
    old_cid, old_payloads = world.new_conversation(old_at, body=f"<p>{OLD}-alpha wants a refund</p>")
    old_payloads += world.add_message(old_cid, author_type="user", author_id=agent,
                                      body=f"<p>{OLD}-bravo: refund issued</p>", at_ms=old_at + 90_000)
    new_cid, new_payloads = world.new_conversation(ts_to_ms(END - timedelta(hours=1)), body=f"<p>{NEW}-charlie</p>")
    sync(settings, START, END + timedelta(days=1))
    # The webhooks about them: applied (raw.webhook_events, processed/), waiting again in the
    # inbox, and a quarantined unreadable copy from long ago.
    write_events_file(settings.inbox_dir, old_payloads + new_payloads)
    apply_inbox(settings)
    write_events_file(settings.inbox_dir, old_payloads)
    bad = settings.quarantine_dir / "0000000000000-1.json"
    bad.write_text(f'{{"broken": "{OLD}-delta\n')
    os.utime(bad, (0, 0))
    refresh_marts(settings)  # dbt, then the serving copy and the transcripts copy
    export_transcripts(settings, ExportFilters(since=START.date()), settings.home / "exports")

    assert settings.serving_dir.joinpath("transcripts.duckdb").exists()
    assert set(_tables_mentioning(settings.warehouse_path, OLD)) >= {
        "raw.messages", "raw.transcripts", "raw.webhook_events"}
    assert _tables_mentioning(settings.serving_dir / "transcripts.duckdb", OLD)
    assert {"inbox", "processed", "quarantine", "exports"} <= {f.split("/")[0] for f in _files_mentioning(settings.home, OLD)}
    metrics_before = mart_rows(settings.warehouse_path)
    assert len(metrics_before["fct_conversations"][1]) > 100  # (columns, rows)

    # N such that the cutoff falls between the old messages and the new one, whatever today is.
    days = (utcnow() - END).days + 2
    result = run_retention(settings, days, trigger="cli")

    _rebuild_marts_from_scratch(settings)
    assert mart_rows(settings.warehouse_path) == metrics_before, "no metric moved"
    assert _tables_mentioning(settings.warehouse_path, OLD) == []
    for copy in ("analytics.duckdb", "transcripts.duckdb"):
        assert _tables_mentioning(settings.serving_dir / copy, OLD) == [], copy
    assert _files_mentioning(settings.home, OLD) == [], "no file under the home keeps old text"
    # Text inside the window stays, and the old conversation is still there, text removed.
    assert _tables_mentioning(settings.warehouse_path, NEW)
    assert _tables_mentioning(settings.serving_dir / "transcripts.duckdb", NEW)
    old_transcript = query(settings, "SELECT transcript FROM raw.transcripts WHERE conversation_id = ?", [old_cid])
    assert "Visitor: [message text removed]" in old_transcript[0][0]

    audit = query(settings, "SELECT kind, trigger, retention_days, subject_hashes, counts FROM raw.erasures")
    assert len(audit) == 1 and audit[0][:4] == ("retention", "cli", days, None)
    counts = json.loads(audit[0][4])
    assert counts["raw.messages.body"] >= 2 and counts["raw.transcripts"] >= 1
    assert counts["raw.webhook_events.payload"] >= 1 and counts["files.transcript_exports"] >= 1
    assert counts["files.inbox"] >= 1 and counts["files.processed"] >= 1 and counts["files.quarantine"] == 1
    assert result["counts"]["raw.messages.body"] == counts["raw.messages.body"]

    # A conversation re-fetched from Drift after the pass does not bring old bodies back.
    world.add_message(old_cid, author_type="contact", body=f"<p>{NEW}-echo</p>")
    sync(settings, START, END + timedelta(days=2))
    bodies = dict(query(settings, "SELECT message_id, body FROM raw.messages WHERE conversation_id = ?", [old_cid]))
    assert not any(OLD in (b or "") for b in bodies.values()) and any(NEW in (b or "") for b in bodies.values())


def test_transcripts_copy_only_when_enabled_followed_by_erasure_and_audited_without_pii(sim_env, synced):
    simulator, settings = sim_env
    world = simulator.world
    synced(simulator, settings, START, END)
    refresh_marts(settings)
    assert not (settings.serving_dir / "transcripts.duckdb").exists(), "off unless configured"

    stored = {r[0] for r in query(settings, "SELECT contact_id FROM raw.contacts")}
    cid, contact_id = next((cid, c["contactId"]) for cid, c in world.conversations.items()
                           if c["contactId"] in stored and c["status"] != "bulk_sent")
    email = world.contacts[contact_id]["attributes"]["email"]
    world.add_message(cid, author_type="contact", author_id=contact_id, body="<p>ERASEME please call me back</p>")
    sync(settings, START, END + timedelta(days=1))
    enabled = replace(settings, publish_transcripts=True)
    published = publish(enabled)["transcripts"]
    copy = settings.serving_dir / "transcripts.duckdb"
    assert published["published"] and published["rows"] == query(settings, "SELECT count(*) FROM raw.conversations")[0][0]
    assert "qa.conversation_transcripts" in _tables(copy)
    assert _tables_mentioning(copy, "ERASEME")
    analytics = duckdb.connect(str(settings.serving_dir / "analytics.duckdb"), read_only=True)
    try:
        columns = {r[0] for r in analytics.execute("SELECT column_name FROM information_schema.columns").fetchall()}
    finally:
        analytics.close()
    assert not columns & {"body", "transcript"}, "the analysts' copy stays body-free"

    result = erase(enabled, email=email, refresh=refresh_marts)
    assert result["contacts_erased"] == 1
    assert _tables_mentioning(copy, "ERASEME") == [] and _tables_mentioning(settings.warehouse_path, "ERASEME") == []
    assert _files_mentioning(settings.home, "ERASEME") == []

    # The GDPR webhook path is audited too.
    other = next(c["contactId"] for c in world.conversations.values()
                 if c["contactId"] in stored and c["contactId"] != contact_id)
    write_events_file(settings.inbox_dir, [{"type": "gdpr_delete_requested", "orgId": world.org_id,
                                            "data": {"contactId": other}}])
    assert apply_inbox(settings).contacts_erased == 1
    # The webhook path erases the files too (the request's own line included); a follow-up
    # `erase --contact-id` (which also compacts the warehouse file) finds nothing left there.
    gdpr_line = f'"contactId":{other}'
    assert not any(gdpr_line in p.read_text() for p in settings.processed_dir.glob("*.json"))
    assert erase(enabled, contact_id=other)["file_lines_removed"] == 0

    rows = query(settings, "SELECT kind, trigger, subject_hashes, counts, finished_at FROM raw.erasures "
                           "ORDER BY started_at")
    assert [(kind, trigger) for kind, trigger, *_ in rows] == [("contact", "cli"), ("contact", "webhook"),
                                                                ("contact", "cli")]
    assert json.loads(rows[0][2]) == [hash_pii(contact_id, "test-salt")]
    assert json.loads(rows[1][2]) == [hash_pii(other, "test-salt")]
    cli_counts = json.loads(rows[0][3])
    assert cli_counts["raw.messages.body"] > 0 and cli_counts["raw.transcripts"] >= 1 and rows[0][4] is not None
    text = repr(rows)
    assert email not in text and str(contact_id) not in text and str(other) not in text

    publish(settings)  # turned off again: the copy is removed, not left to go stale
    assert not copy.exists()
