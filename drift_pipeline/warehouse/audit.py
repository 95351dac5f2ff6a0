"""`raw.erasures`: the audit trail of every erasure and retention pass (what, when, how many;
never the content or an identifier in the clear)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

from drift_pipeline.warehouse import schema
from drift_pipeline.warehouse.load import upsert

RETENTION = "retention"
CONTACT = "contact"


def record_erasure(conn, *, kind: str, trigger: str, started_at: datetime, counts: dict,
                   org_id: int | None = None, subject_hashes: list[str] | None = None,
                   retention_days: int | None = None, cutoff_at: datetime | None = None,
                   erasure_id: str | None = None) -> str:
    """Write one audit row (finished_at stays NULL until `finish_erasure`); returns its id."""
    erasure_id = erasure_id or uuid.uuid4().hex
    upsert(conn, schema.ERASURES, [{
        "erasure_id": erasure_id, "org_id": org_id, "kind": kind, "trigger": trigger,
        "started_at": started_at, "subject_hashes": json.dumps(sorted(subject_hashes))
        if subject_hashes is not None else None, "retention_days": retention_days,
        "cutoff_at": cutoff_at, "counts": json.dumps(counts, sort_keys=True),
    }])
    return erasure_id


def finish_erasure(conn, erasure_id: str, finished_at: datetime, more_counts: dict) -> None:
    """Add the counts of the steps after the warehouse (files, copies) and close the row."""
    rows = conn.execute("SELECT counts FROM raw.erasures WHERE erasure_id = ?", [erasure_id]).fetchall()
    counts = json.loads(rows[0][0]) if rows and rows[0][0] else {}
    counts.update(more_counts)
    conn.execute("UPDATE raw.erasures SET counts = ?, finished_at = ? WHERE erasure_id = ?",
                 [json.dumps(counts, sort_keys=True), finished_at, erasure_id])


def retention_horizon(conn, now: datetime) -> datetime | None:
    """Messages created before this have no body: `now` minus the last retention pass's days.

    Syncs apply it to what they fetch, so a conversation re-fetched from Drift between passes
    does not bring old bodies back.
    """
    rows = conn.execute(
        "SELECT retention_days FROM raw.erasures WHERE kind = ? AND retention_days IS NOT NULL "
        "ORDER BY started_at DESC LIMIT 1", [RETENTION]).fetchall()
    return now - timedelta(days=rows[0][0]) if rows else None
