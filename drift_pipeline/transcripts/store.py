"""`raw.transcripts`: the rendered text of each conversation, kept current for the pipeline.

A transcript is re-rendered only when the hash of its inputs changes, so `rendered_at` says
when a conversation's transcript last changed: that is what incremental exports select on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable

from drift_pipeline.timeutil import utcnow
from drift_pipeline.transcripts.render import input_hash, stored_transcript
from drift_pipeline.warehouse import transcripts as wt

# Conversations read per query: bounds memory whatever the warehouse's size.
BATCH = 1000


@dataclass
class RefreshResult:
    checked: int = 0
    rendered: int = 0
    changed_keys: list = field(default_factory=list)  # (org_id, conversation_id) re-rendered


def refresh_transcripts(conn, keys: Iterable[wt.Key] | None = None, *,
                        created_from: datetime | None = None,
                        created_before: datetime | None = None) -> RefreshResult:
    """Bring `raw.transcripts` up to date and return how many were checked and re-rendered.

    Without `keys`, the conversations checked are those written since their transcript was
    last checked (or never rendered), optionally only those created in the window. With
    `keys` (after an erasure or a retention pass changed their messages), exactly those.
    The caller owns the transaction.
    """
    if keys is None:
        keys = wt.stale_transcript_keys(conn, created_from=created_from, created_before=created_before)
    keys = list(keys)
    result = RefreshResult()
    now = utcnow()
    for start in range(0, len(keys), BATCH):
        batch = keys[start:start + BATCH]
        inputs = wt.conversation_inputs(conn, batch)
        stored = wt.stored_hashes(conn, inputs)
        changed, unchanged = [], []
        for key, conversation in inputs.items():
            hashed = input_hash(conversation)
            if stored.get(key) == hashed:
                unchanged.append(key)
            else:
                changed.append(stored_transcript(conversation, now, hashed))
        wt.save_transcripts(conn, changed, unchanged, now)
        result.checked += len(inputs)
        result.rendered += len(changed)
        result.changed_keys.extend((row["org_id"], row["conversation_id"]) for row in changed)
    return result
