"""The webhook inbox's files: their format, and writing them atomically and durably.

Layout (docs/reference.md): `$DRIFT_PIPELINE_HOME/inbox/*.json`, one JSON object per line:
`{"event_id": <sha256 hex>, "received_at": <epoch ms>, "payload": <the event without token>}`.
A file is written under a temporary name (`.tmp-*`, never matching `*.json`), fsynced, then
linked to its final name `<received ms, 13 digits>-<seq>.json` and the directory fsynced, so a
reader never sees a half-written file and names sort oldest first.

The receiver's writer (`inbox_writer.py`) and the tools (`write_events_file`) both write through
`write_inbox_file`; the apply step reads with `iter_inbox_files` and `read_inbox_file`.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

from drift_pipeline.fsutil import atomic_write_text, fsync_dir
from drift_pipeline.webhooks.events import event_id as compute_event_id
from drift_pipeline.webhooks.events import strip_token

TEMP_PREFIX = ".tmp-"

_NAME_RE = re.compile(r"^(\d{13})-(\d+)\.json$")
_EVENT_ID_RE = re.compile(r"^[0-9a-f]{64}$")
# Stale temp files are leftovers of a crashed writer; younger ones may belong to a live one.
_STALE_TEMP_SECONDS = 300

# Process-wide, so the writer thread and `write_events_file` never pick the same name.
_sequence = itertools.count()
_sequence_lock = threading.Lock()


class InvalidInboxFile(ValueError):
    """An inbox file that cannot be applied; the message is a one-line reason to quarantine."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- the file format -------------------------------------------------------------------------

def inbox_record(payload: Mapping[str, Any], received_at_ms: int | None = None,
                 event_id: str | None = None) -> dict[str, Any]:
    """The line stored for one event (token removed, id computed when not given)."""
    return {
        "event_id": event_id or compute_event_id(payload),
        "received_at": now_ms() if received_at_ms is None else received_at_ms,
        "payload": strip_token(payload),
    }


def _encode(record: Mapping[str, Any]) -> bytes:
    # ensure_ascii keeps every line free of raw newlines and U+2028-style separators.
    return json.dumps(record, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii") + b"\n"


def encode_canonical_line(identity: str, received_at_ms: int, canonical: str) -> bytes:
    # Same line as _encode(inbox_record(...)), with the payload already serialized.
    return (f'{{"event_id":{json.dumps(identity)},"received_at":{int(received_at_ms)},'
            f'"payload":{canonical}}}\n').encode("ascii")


def iter_inbox_files(inbox_dir: Path | str) -> list[Path]:
    """Inbox files waiting to be applied, oldest first (by the time in their name).

    Temporary files (`.tmp-*`) and anything not ending in `.json` are never returned. Files
    dropped by hand with another name sort after the receiver's, by modification time.
    """
    inbox_dir = Path(inbox_dir)
    if not inbox_dir.is_dir():
        return []
    named: list[tuple[tuple, Path]] = []
    for path in inbox_dir.iterdir():
        if path.name.startswith(".") or not path.name.endswith(".json") or not path.is_file():
            continue
        match = _NAME_RE.match(path.name)
        if match:
            key = (0, int(match.group(1)), int(match.group(2)), path.name)
        else:
            try:
                mtime = path.stat().st_mtime_ns
            except FileNotFoundError:  # applied by someone else meanwhile
                continue
            key = (1, mtime, 0, path.name)
        named.append((key, path))
    return [path for _, path in sorted(named)]


def read_inbox_file(path: Path | str) -> list[dict[str, Any]]:
    """The records of one inbox file, in file order.

    Each record is `{"event_id": str, "received_at": int, "payload": dict}`. Checks the
    envelope only; the payload's shape is `events.validate_event`'s job. Raises
    `InvalidInboxFile` with a one-line reason (naming the line) on a malformed file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInboxFile(f"{path.name}: cannot read: {exc.strerror or exc}") from None
    records: list[dict[str, Any]] = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise InvalidInboxFile(f"{path.name} line {number}: not JSON: {reason}") from None
        if not isinstance(record, dict):
            raise InvalidInboxFile(f"{path.name} line {number}: not a JSON object")
        identity = record.get("event_id")
        if not isinstance(identity, str) or not _EVENT_ID_RE.match(identity):
            raise InvalidInboxFile(
                f"{path.name} line {number}: event_id must be 64 lowercase hex characters")
        received_at = record.get("received_at")
        if not isinstance(received_at, int) or isinstance(received_at, bool):
            raise InvalidInboxFile(
                f"{path.name} line {number}: received_at must be epoch milliseconds")
        if not isinstance(record.get("payload"), dict):
            raise InvalidInboxFile(f"{path.name} line {number}: payload must be a JSON object")
        records.append(record)
    if not records:
        raise InvalidInboxFile(f"{path.name}: holds no events")
    return records


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# --- atomic file writes --------------------------------------------------------------------


def _publish(temp: Path, inbox_dir: Path, received_at_ms: int) -> Path:
    """Give a durable temp file its final name without ever replacing an existing file."""
    while True:
        with _sequence_lock:
            seq = next(_sequence)
        final = inbox_dir / f"{received_at_ms:013d}-{seq:06d}.json"
        try:
            os.link(temp, final)  # unlike rename, link never clobbers a file of another writer
        except FileExistsError:
            continue
        except OSError:
            # Filesystems without hard links: rename, having checked the name is free.
            if final.exists():
                continue
            os.replace(temp, final)
            return final
        os.unlink(temp)
        return final


def write_inbox_file(inbox_dir: Path, lines: list[bytes], received_at_ms: int,
                sync_dir: bool = True) -> Path:
    temp = inbox_dir / f"{TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        try:
            _write_all(fd, lines)
            os.fsync(fd)
        finally:
            os.close(fd)
        final = _publish(temp, inbox_dir, received_at_ms)
    except BaseException:
        try:
            temp.unlink()
        except FileNotFoundError:
            pass
        raise
    if sync_dir:
        fsync_dir(inbox_dir)
    return final


def _write_all(fd: int, lines: list[bytes]) -> None:
    view = memoryview(b"".join(lines))
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_events_file(inbox_dir: Path | str, events: Iterable[Mapping[str, Any]]) -> Path | None:
    """Write events as one inbox file, atomically and durably; for tests, replay and tools.

    `events` are Drift payloads (their `token` is dropped) or ready records with `event_id`,
    `received_at` and `payload`. No deduplication here: the apply step is idempotent.
    Returns the file written, or None when there was nothing to write.
    """
    inbox_dir = Path(inbox_dir)
    inbox_dir.mkdir(parents=True, exist_ok=True)
    received = now_ms()
    lines = []
    for event in events:
        if {"event_id", "received_at", "payload"} <= set(event):
            record = {"event_id": event["event_id"], "received_at": event["received_at"],
                      "payload": strip_token(event["payload"])}
        else:
            record = inbox_record(event, received)
        lines.append(_encode(record))
    if not lines:
        return None
    return write_inbox_file(inbox_dir, lines, received)


def quarantine_record(quarantine_dir: Path | str, name: str, record: Mapping[str, Any],
                      reason: str) -> Path:
    """Keep one event that cannot be applied as `<name>` (an inbox file of one line, so
    `replay event` reads it) with `<name>.reason` beside it; both written atomically.

    The reason is written first, so every quarantined file has one. The record's payload must
    already be without its token (see `inbox_record`).
    """
    quarantine_dir = Path(quarantine_dir)
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    target = quarantine_dir / name
    atomic_write_text(quarantine_dir / f"{name}.reason", (reason.strip().splitlines() or ["no reason given"])[0] + "\n")
    atomic_write_text(target, json.dumps(record, separators=(",", ":"), ensure_ascii=True,
                                         allow_nan=False) + "\n")
    return target


def remove_stale_temp_files(inbox_dir: Path, older_than_s: float = _STALE_TEMP_SECONDS) -> int:
    """Delete temp files left by a crashed writer (never applied: they were not durable)."""
    removed = 0
    cutoff = time.time() - older_than_s
    for path in inbox_dir.glob(f"{TEMP_PREFIX}*"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass
    return removed

