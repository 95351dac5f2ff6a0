"""The receiver's memory of accepted webhook event ids (`state/webhook_seen_ids`).

Ids already written are kept in memory and appended to `state/webhook_seen_ids`
(`<id> <received ms>` per line) after their file is durable (flushed per batch, fsynced at
shutdown), and reloaded at start together with the ids in files still waiting in the inbox.
Both are a rolling window (`SeenIds`, `SEEN_IDS_WINDOW_MS`: Drift's retry period with room),
compacted in place, so they stay bounded. The order (inbox first, then the seen list) means a
crash can at worst let one redelivery be written twice, which the apply step absorbs (it upserts
`raw.webhook_events` on `event_id`); it can never lose an event.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from drift_pipeline.fsutil import atomic_write_text
from drift_pipeline.webhooks.inbox_files import InvalidInboxFile, iter_inbox_files, now_ms, read_inbox_file

SEEN_IDS_FILENAME = "webhook_seen_ids"


# How long an accepted id is remembered: Drift redelivers an event it got no 2xx for, for a
# period it does not document; webhook senders commonly retry for up to 24-28 hours. Three days
# covers that with room (a receiver that answered 5xx over a weekend is still deduplicated).
# Past it a redelivery is written again and absorbed by the apply step (`raw.webhook_events`).
SEEN_IDS_WINDOW_MS = 72 * 3600 * 1000
# The file is rewritten with the live ids once it has grown by as many lines as they number
# (so it stays under twice the window's ids), and never for fewer than this many new lines.
_COMPACT_MIN_LINES = 10_000


class SeenIds:
    """The receiver's memory of accepted event ids: a rolling window of `SEEN_IDS_WINDOW_MS`,
    persisted in `state/webhook_seen_ids` (one `<id> <received ms>` per line, appended per
    batch) and compacted in place, so file and memory stay bounded however long it runs.

    Ids of files still waiting in the inbox are kept by every compaction and reloaded at start:
    what is not applied yet stays deduplicated. Only the writer thread calls `persist`,
    `remember` and `maybe_compact`; `__contains__` may come from any thread.
    """

    def __init__(self, state_dir: Path, inbox_dir: Path | None = None, *,
                 window_ms: int = SEEN_IDS_WINDOW_MS, compact_min_lines: int = _COMPACT_MIN_LINES,
                 clock=None) -> None:
        self.path = Path(state_dir) / SEEN_IDS_FILENAME
        self.inbox_dir = inbox_dir
        self.window_ms = window_ms
        self.compact_min_lines = compact_min_lines
        self._clock = clock or now_ms
        self._received: dict[str, int] = {}  # id -> received ms, in arrival order
        self._lock = threading.Lock()  # memory only: file I/O happens outside it
        self._lines_on_disk = 0
        self._handle = None

    def __contains__(self, identity: str) -> bool:
        with self._lock:
            return identity in self._received

    def __len__(self) -> int:
        return len(self._received)

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._received)

    @property
    def lines_on_disk(self) -> int:
        return self._lines_on_disk

    def load(self) -> None:
        """Read the file (older files hold bare ids: they count as received now), add the ids
        of files waiting in the inbox, and rewrite the file with what is live."""
        now = self._clock()
        if self.path.exists():
            with self.path.open("rb") as handle:
                for line in handle:
                    parts = line.split()
                    if not parts or len(parts[0]) != 64:
                        continue  # a partial last line of a crashed append
                    try:
                        identity = parts[0].decode("ascii")
                        at = int(parts[1]) if len(parts) > 1 else now
                    except (UnicodeDecodeError, ValueError):
                        continue
                    self._received[identity] = max(at, self._received.get(identity, at))
        # Oldest first, so expiry can stop at the first id still in the window.
        self._received = dict(sorted(self._received.items(), key=lambda item: item[1]))
        self.compact()

    def _waiting_ids(self) -> set[str]:
        if self.inbox_dir is None:
            return set()
        waiting: set[str] = set()
        for file in iter_inbox_files(self.inbox_dir):
            try:
                waiting.update(record["event_id"] for record in read_inbox_file(file))
            except InvalidInboxFile:
                pass  # the apply step quarantines it; its ids are not trusted
        return waiting

    def persist(self, entries: list[tuple[str, int]]) -> None:
        """Append (id, received ms) lines, flushed to the OS (not fsynced: see `InboxWriter._commit`)."""
        if self._handle is None:
            self._handle = open(self.path, "ab")
        self._handle.write("".join(f"{i} {at}\n" for i, at in entries).encode("ascii"))
        self._handle.flush()
        self._lines_on_disk += len(entries)

    def remember(self, entries: list[tuple[str, int]]) -> None:
        """Add to memory and forget what left the window (the oldest come first)."""
        now = self._clock()
        with self._lock:
            for identity, at in entries:
                self._received.pop(identity, None)
                self._received[identity] = at
            self._expire(now)

    def _expire(self, now: int) -> None:
        horizon = now - self.window_ms
        expired = []
        for identity, at in self._received.items():
            if at >= horizon:
                break  # arrival order: the rest are younger (a late straggler waits its turn)
            expired.append(identity)
        for identity in expired:
            del self._received[identity]

    def maybe_compact(self) -> bool:
        """Rewrite the file when it has grown past twice the live ids; True when it did."""
        if self._lines_on_disk - len(self._received) < max(self.compact_min_lines, len(self._received)):
            return False
        self.compact()
        return True

    def compact(self) -> None:
        """Rewrite the file atomically with the ids in the window and those still waiting in the
        inbox (not applied yet)."""
        waiting = self._waiting_ids()
        now = self._clock()
        with self._lock:
            self._expire(now)
            for identity in waiting:
                self._received.setdefault(identity, now)
            entries = list(self._received.items())
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, "".join(f"{i} {at}\n" for i, at in entries))
        self._lines_on_disk = len(entries)

    def close(self, *, sync: bool = False) -> None:
        if self._handle is None:
            return
        try:
            self._handle.flush()
            if sync:
                os.fsync(self._handle.fileno())
        finally:
            self._handle.close()
            self._handle = None


def load_seen_ids(state_dir: Path, inbox_dir: Path | None = None) -> set[str]:
    """Ids the receiver still deduplicates: the rolling window plus ids in files still waiting
    in the inbox."""
    seen = SeenIds(state_dir, inbox_dir)
    seen.load()
    return seen.ids()

