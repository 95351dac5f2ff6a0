"""`raw.exports` rows of sync jobs (`kind = 'sync'`): resuming, checkpoints, finishing, and how
far earlier runs left the listing exact. The rows themselves are written with `load.upsert`;
transcript export jobs live in `warehouse/transcripts.py`."""

from __future__ import annotations

from datetime import datetime


def covered_until(conn, org_id: int, list_from: datetime) -> datetime | None:
    """The newest `updatedAt` up to which an earlier successful run of this org listed
    everything, counting only runs that listed from `list_from` or earlier; None without one."""
    row = conn.execute(
        "SELECT max(least(window_end, newest_listed_at)) FROM raw.exports "
        "WHERE org_id = ? AND success AND newest_listed_at IS NOT NULL AND list_from <= ?",
        [org_id, list_from],
    ).fetchall()
    return row[0][0] if row else None


def resumable_job(conn, org_id: int, window_start: datetime,
                  window_end: datetime) -> tuple[str | None, str | None]:
    """(job id, checkpoint cursor) of the newest job of this exact window when it did not
    succeed and has a checkpoint; else (None, None)."""
    row = conn.execute(
        "SELECT job_id, page_token_checkpoint, success FROM raw.exports "
        "WHERE org_id = ? AND window_start = ? AND window_end = ? "
        "ORDER BY started_at DESC LIMIT 1",
        [org_id, window_start, window_end],
    ).fetchall()
    if row and row[0][2] is not True and row[0][1]:
        return row[0][0], row[0][1]
    return None, None


def mark_interrupted(conn, job_id: str, at: datetime) -> None:
    """Close a job another run resumes: failed, `interrupted` unless it recorded its own error."""
    conn.execute(
        "UPDATE raw.exports SET success = false, error_code = coalesce(error_code, 'interrupted'), "
        "finished_at = coalesce(finished_at, ?) WHERE job_id = ?",
        [at, job_id],
    )


def checkpoint_page(conn, job_id: str, next_cursor: str | None) -> None:
    """One more list page committed: where the next run resumes."""
    conn.execute(
        "UPDATE raw.exports SET page_token_checkpoint = ?, pages = pages + 1 WHERE job_id = ?",
        [next_cursor, job_id],
    )


def finish_job(conn, job_id: str, *, finished_at: datetime, success: bool, error_code: str | None,
               api_calls: int, conversations_listed: int, conversations_fetched: int,
               conversations_skipped: int, rate_limited: int, newest_listed_at: datetime | None,
               report_calls: int) -> None:
    """Record how a job ended and what it did."""
    conn.execute(
        "UPDATE raw.exports SET finished_at = ?, success = ?, error_code = ?, api_calls = ?, "
        "conversations_listed = ?, conversations_fetched = ?, conversations_skipped = ?, "
        "rate_limited = ?, newest_listed_at = ?, report_calls = ? WHERE job_id = ?",
        [finished_at, success, error_code, api_calls, conversations_listed, conversations_fetched,
         conversations_skipped, rate_limited, newest_listed_at, report_calls, job_id],
    )
