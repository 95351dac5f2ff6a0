"""`drift-pipeline export transcripts` on simulator data: a job killed with SIGKILL resumes with
no conversation missing or doubled, and a later run writes only the conversations that changed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import SIM_END, query, sync

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).parent / "drift-pipeline")
END = SIM_END.replace(tzinfo=None)
SINCE = (END - timedelta(days=3)).date().isoformat()


def _export(out: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "export", "transcripts", "--since", SINCE, "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=120, env=env)


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(out.glob("transcripts-*.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]


def _transcript_jobs(settings):
    return query(settings, "SELECT success, conversations_written, changed_after IS NULL FROM raw.exports "
                           "WHERE kind = 'transcripts' ORDER BY started_at")


def test_export_killed_midway_resumes_with_nothing_missing_or_doubled(sim_env, synced):
    simulator, settings = sim_env
    synced(simulator, settings, END - timedelta(days=3), END)
    expected = sorted(r[0] for r in query(
        settings, "SELECT conversation_id FROM raw.conversations WHERE created_at >= ?", [SINCE]))
    assert len(expected) > 60
    out = settings.home / "exports" / "qa"

    slow = dict(os.environ, DRIFT_EXPORT_PAUSE_SECONDS="0.5")
    proc = subprocess.Popen([CLI, "export", "transcripts", "--since", SINCE, "--out", str(out),
                             "--chunk-size", "10"], env=slow, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while len(list(out.glob("transcripts-*.jsonl"))) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"the export ended before it was killed: {proc.stderr.read().decode()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = _records(out)
    assert 0 < len(partial) < len(expected)
    assert _transcript_jobs(settings)[0][0] is None, "a killed job is left unfinished"

    resumed = _export(out, "--chunk-size", "10")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("resumed job")
    ids = [r["conversation_id"] for r in _records(out)]
    assert sorted(ids) == expected, "every conversation exactly once"
    assert _transcript_jobs(settings) == [(True, len(expected), True)]
    assert not list(out.glob(".*.tmp")), "no temp file left behind"

    # Nothing changed: a second run writes nothing.
    again = _export(out, "--chunk-size", "10")
    assert again.returncode == 0 and "wrote 0 conversation(s)" in again.stdout

    # Two conversations get a new message; the next run writes exactly those two.
    world = simulator.world
    changed = expected[:2]
    for cid in changed:
        world.add_message(cid, author_type="user", author_id=world.users[0]["id"], body="<p>Following up</p>")
    sync(settings, END - timedelta(days=3), END + timedelta(days=1))
    before = set(out.glob("transcripts-*.jsonl"))
    third = _export(out, "--chunk-size", "10")
    assert third.returncode == 0, third.stderr
    new_files = set(out.glob("transcripts-*.jsonl")) - before
    written = [json.loads(line) for path in new_files for line in path.read_text().splitlines()]
    assert sorted(r["conversation_id"] for r in written) == changed
    assert all("Following up" in r["transcript"] for r in written)
    assert [row[:2] for row in _transcript_jobs(settings)] == [(True, len(expected)), (True, 0), (True, 2)]


def test_a_chunk_written_but_not_checkpointed_is_replaced_not_doubled(sim_env, synced, monkeypatch, tmp_path):
    from drift_pipeline.transcripts import export

    simulator, settings = sim_env
    synced(simulator, settings, END - timedelta(days=3), END)
    commit = export.wt.commit_export_chunk
    calls = []

    def crash_before_second_checkpoint(*args):
        calls.append(args)
        if len(calls) == 2:  # chunk 2 is on disk, its checkpoint is not
            raise KeyboardInterrupt
        commit(*args)

    monkeypatch.setattr(export.wt, "commit_export_chunk", crash_before_second_checkpoint)
    filters = export.ExportFilters(since=END.date() - timedelta(days=3))
    with pytest.raises(KeyboardInterrupt):
        export.export_transcripts(settings, filters, tmp_path, chunk_size=15)
    assert len(list(tmp_path.glob("transcripts-*.jsonl"))) == 2
    monkeypatch.setattr(export.wt, "commit_export_chunk", commit)

    result = export.export_transcripts(settings, filters, tmp_path, chunk_size=15)
    assert result["resumed"]
    ids = [r["conversation_id"] for r in _records(tmp_path)]
    assert len(ids) == len(set(ids)) == result["conversations_written_by_job"]
    assert sorted(ids) == sorted(r[0] for r in query(
        settings, "SELECT conversation_id FROM raw.conversations WHERE created_at >= ?", [SINCE]))


def test_export_and_retention_have_help(capsys):
    from drift_pipeline.cli import main

    for words in (["export", "transcripts"], ["retention"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*words, "--help"])
        assert exit_info.value.code == 0 and "usage: drift-pipeline" in capsys.readouterr().out


def test_export_lines_have_no_contact_email_and_respect_the_status_filter(sim_env, synced, tmp_path):
    simulator, settings = sim_env
    synced(simulator, settings, END - timedelta(days=3), END)
    result = _export(tmp_path / "closed", "--status", "closed", "--include-notes")
    assert result.returncode == 0, result.stderr
    records = _records(tmp_path / "closed")
    closed = query(settings, "SELECT count(*) FROM raw.conversations WHERE created_at >= ? AND status = 'closed'",
                   [SINCE])[0][0]
    assert len(records) == closed and all(r["status"] == "closed" and r["notes_included"] for r in records)
    emails = [c["attributes"]["email"] for c in simulator.world.contacts.values() if c["attributes"].get("email")]
    text = "\n".join(path.read_text() for path in (tmp_path / "closed").glob("*.jsonl"))
    assert emails and not any(email in text for email in emails)


@pytest.mark.parametrize("argv", [
    ["export", "transcripts", "--out", "x"],
    ["export", "transcripts", "--since", "2026-11-31", "--out", "x"],
    ["export", "transcripts", "--since", "2026-11-12", "--out", "x", "--status", "gone"],
    ["export", "transcripts", "--since", "2026-11-12", "--until", "2026-11-12", "--out", "x"],
    ["retention"], ["retention", "--days", "0"], ["retention", "--days", "ten"],
])
def test_bad_export_and_retention_usage_exits_2_with_one_line(argv, home, capsys):
    from drift_pipeline.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err
