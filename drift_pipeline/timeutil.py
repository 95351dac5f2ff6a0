"""Time as the warehouse keeps it: naive UTC `TIMESTAMP`s, and Drift's epoch milliseconds."""

from __future__ import annotations

from datetime import datetime, timezone


def ms_to_ts(value) -> datetime | None:
    """Epoch milliseconds (Drift's timestamps) -> naive UTC datetime (the warehouse's TIMESTAMP)."""
    if value is None:
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc).replace(tzinfo=None)


def ts_to_ms(value: datetime) -> int:
    """A warehouse timestamp (naive UTC, or aware) -> epoch milliseconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(round(value.timestamp() * 1000))


def utcnow() -> datetime:
    """Now, as the warehouse stores it (naive UTC)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
