"""`drift-pipeline export transcripts`: JSONL files, one line per conversation, incremental
and resumable.

Incremental: each job is a `raw.exports` row (`kind = 'transcripts'`) with the canonical JSON
of its filters. A job first brings `raw.transcripts` up to date (a transcript is re-rendered
only when its inputs changed, which moves its `rendered_at`), then writes the conversations in
the filter window whose `rendered_at` lies in `(changed_after, changed_until]`: `changed_after`
is the `changed_until` of the last successful job with the same filters, so a second run writes
only what changed since.

Resumable: conversations are written in key order, in chunks. Each chunk goes to its own file
through the durable-write helper (temp file, fsync, rename, fsync the folder), then the job's
checkpoint (chunk number and last key) is committed. A job killed at any point is resumed by
the next run with the same filters and folder: it keeps its bounds and continues after the
checkpoint. A chunk written but not yet checkpointed is written again under the same name,
replacing the orphan, so no conversation is missing or doubled.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path


from drift_pipeline.fsutil import atomic_write_text
from drift_pipeline.settings import Settings, UsageError
from drift_pipeline.timeutil import utcnow
from drift_pipeline.transcripts.render import export_record
from drift_pipeline.transcripts.store import refresh_transcripts
from drift_pipeline.warehouse import transcripts as wt
from drift_pipeline.warehouse.connection import open_warehouse
from drift_pipeline.warehouse.load import transaction

FILE_PREFIX = "transcripts-"
FILE_SUFFIX = ".jsonl"
DEFAULT_CHUNK_SIZE = 500
STATUSES = ("open", "closed", "pending", "bulk_sent")


class TranscriptExportError(RuntimeError):
    """The export cannot run as asked; the message says what to do."""


@dataclass(frozen=True)
class ExportFilters:
    """Which conversations an export covers: created in [since, until), optionally one status."""

    since: date
    until: date | None = None
    status: str | None = None
    include_notes: bool = False

    def canonical(self) -> str:
        """The filters' identity: exports with equal filters continue each other."""
        return json.dumps({"since": self.since.isoformat(),
                           "until": self.until.isoformat() if self.until else None,
                           "status": self.status, "include_notes": self.include_notes},
                          sort_keys=True, separators=(",", ":"))

    @property
    def created_from(self) -> datetime:
        return datetime(self.since.year, self.since.month, self.since.day)

    @property
    def created_before(self) -> datetime | None:
        return None if self.until is None else datetime(self.until.year, self.until.month, self.until.day)


def chunk_path(out_dir: Path, job_id: str, chunk: int) -> Path:
    return out_dir / f"{FILE_PREFIX}{job_id[:12]}-{chunk:06d}{FILE_SUFFIX}"


def remove_leftover_temp_files(out_dir: Path) -> int:
    """Delete temp files a killed export left half-written (they hold transcript text that
    erasure and retention would not see). Safe: exports hold the warehouse's write lock, so
    none is writing here now."""
    leftovers = list(out_dir.glob(f".{FILE_PREFIX}*.tmp"))
    for path in leftovers:
        path.unlink(missing_ok=True)
    return len(leftovers)


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records)


def _resume_or_start(conn, filters: ExportFilters, out_dir: Path) -> dict:
    """The job to run: the unfinished one with these filters and folder, or a new one."""
    identity = filters.canonical()
    latest = wt.latest_export_job(conn, identity)
    if latest and latest["success"] is not True and latest["output_dir"] == str(out_dir):
        checkpoint = json.loads(latest["checkpoint"]) if latest["checkpoint"] else None
        return {**latest, "resumed": True, "rendered": 0,
                "chunk": checkpoint["chunk"] if checkpoint else 0,
                "after_key": (checkpoint["org_id"], checkpoint["conversation_id"]) if checkpoint else None}
    job_id = uuid.uuid4().hex
    with transaction(conn):
        refreshed = refresh_transcripts(conn, created_from=filters.created_from,
                                        created_before=filters.created_before)
        changed_after = wt.last_successful_watermark(conn, identity)
        changed_until = utcnow()
        wt.start_export_job(conn, job_id=job_id, filters=identity, output_dir=str(out_dir),
                            started_at=changed_until, changed_after=changed_after,
                            changed_until=changed_until)
    return {"job_id": job_id, "changed_after": changed_after, "changed_until": changed_until,
            "resumed": False, "rendered": refreshed.rendered, "chunk": 0, "after_key": None,
            "conversations_written": 0}


def export_transcripts(settings: Settings, filters: ExportFilters, out_dir: Path, *,
                       chunk_size: int = DEFAULT_CHUNK_SIZE, pause_seconds: float = 0.0) -> dict:
    """Run (or resume) one transcript export job into `out_dir`; returns what it did.

    `pause_seconds` sleeps between chunks: a test hook that gives a kill time to land mid-job.
    """
    if chunk_size < 1:
        raise UsageError(f"--chunk-size must be at least 1, got {chunk_size}")
    if filters.until is not None and filters.until <= filters.since:
        raise UsageError(f"--until ({filters.until}) must be after --since ({filters.since})")
    if not settings.warehouse_path.exists():
        raise TranscriptExportError(f"no warehouse at {settings.warehouse_path}: run `drift-pipeline sync` first")
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    with open_warehouse(settings) as conn:
        remove_leftover_temp_files(out_dir)
        job = _resume_or_start(conn, filters, out_dir)
        job_id, chunk = job["job_id"], job["chunk"]
        keys = wt.export_keys(conn, created_from=filters.created_from, created_before=filters.created_before,
                              status=filters.status, changed_after=job["changed_after"],
                              changed_until=job["changed_until"], after_key=job["after_key"])
        written, files = 0, []
        try:
            for start in range(0, len(keys), chunk_size):
                batch = keys[start:start + chunk_size]
                inputs = wt.conversation_inputs(conn, batch)
                records = [export_record(inputs[key], include_notes=filters.include_notes)
                           for key in batch if key in inputs]
                chunk += 1
                path = chunk_path(out_dir, job_id, chunk)
                atomic_write_text(path, _jsonl(records))
                wt.commit_export_chunk(conn, job_id, chunk, batch[-1], len(records))
                written += len(records)
                files.append(path.name)
                if pause_seconds and start + chunk_size < len(keys):
                    time.sleep(pause_seconds)
            wt.finish_export_job(conn, job_id, utcnow(), success=True)
        except BaseException as exc:
            wt.finish_export_job(conn, job_id, utcnow(), success=False, error_code=type(exc).__name__)
            raise
    return {"job_id": job_id, "resumed": job["resumed"], "transcripts_rendered": job["rendered"],
            "conversations_written": written,
            "conversations_written_by_job": (job["conversations_written"] or 0) + written,
            "files_written": files, "out": str(out_dir)}


def exported_files(settings: Settings, conn) -> list[Path]:
    """Transcript export files the pipeline wrote under `$DRIFT_PIPELINE_HOME` (the ones
    erasure and retention keep clean; copies elsewhere are the operator's)."""
    home = settings.home.resolve()
    files = []
    for folder in wt.export_output_dirs(conn):
        path = Path(folder)
        if path.is_dir() and path.resolve().is_relative_to(home):
            remove_leftover_temp_files(path)
            files.extend(sorted(path.glob(f"{FILE_PREFIX}*{FILE_SUFFIX}")))
    return files


def rewrite_exported_lines(settings: Settings, conn, keys: set[wt.Key]) -> int:
    """Re-render the lines of these conversations in the export files under the home from the
    warehouse as it is now (after an erasure or retention pass blanked bodies); a conversation
    no longer in the warehouse loses its line. Returns the number of lines rewritten or dropped."""
    if not keys:
        return 0
    changed = 0
    for path in exported_files(settings, conn):
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        hits = [(r["org_id"], r["conversation_id"]) for r in records
                if (r["org_id"], r["conversation_id"]) in keys]
        if not hits:
            continue
        inputs = wt.conversation_inputs(conn, hits)
        kept = []
        for record in records:
            key = (record["org_id"], record["conversation_id"])
            if key not in keys:
                kept.append(record)
            elif key in inputs:
                kept.append(export_record(inputs[key], include_notes=record["notes_included"]))
        atomic_write_text(path, _jsonl(kept))
        changed += len(hits)
    return changed
