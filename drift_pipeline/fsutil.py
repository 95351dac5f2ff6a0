"""Durable file writes: what a crash may leave is the old file or the new one, never half."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new name in `directory` survive a power loss."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write beside `path` (a hidden temp name), fsync, rename over it, fsync the folder."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def append_json_line(path: Path, record: dict, *, max_bytes: int = 1_000_000) -> None:
    """Append one JSON line (a small log of figures, e.g. `logs/timings.jsonl`); past `max_bytes`
    the file moves to `<name>.1` first, so the pair stays bounded. Best effort: never raises."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size > max_bytes:
            os.replace(path, path.with_name(path.name + ".1"))
        with open(path, "a") as handle:
            handle.write(json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n")
    except OSError:
        pass
