"""Rendering a conversation's stored messages as a transcript. Pure functions: the dicts that
`warehouse.transcripts.conversation_inputs` returns in, text and JSON-ready dicts out.

The rules follow the definition of a chat message (DECISIONLOG.md), so a transcript shows exactly
the messages the metrics count:
- chat messages only; private notes only when asked for (and labelled); prompts, suggestions
  and the edit messages themselves never;
- an `edit` message with `edit_type = 'delete'` removes the message it points at;
- `replace` / `replace_body` edits show the message once, marked edited, with the newest body;
- HTML bodies become plain text; a body blanked by erasure or retention shows as a placeholder;
- authors are named from `raw.users`; the contact is always "Visitor" (emails are never stored
  in the warehouse in the clear, and a transcript must not reintroduce them).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from html import unescape
from html.parser import HTMLParser

VISITOR = "Visitor"
REMOVED_BODY = "[message text removed]"
REPLACING_EDITS = frozenset({"replace", "replace_body"})
_BLOCK_TAGS = frozenset({"p", "div", "br", "li", "ul", "ol", "tr", "h1", "h2", "h3", "h4", "blockquote", "pre"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data):
        self.parts.append(data)


def html_to_text(body: str | None) -> str | None:
    """Drift's HTML body as plain text: tags dropped, entities decoded, blocks on their own
    lines, runs of spaces collapsed. None stays None (a blanked body)."""
    if body is None:
        return None
    parser = _TextExtractor()
    parser.feed(body)
    parser.close()
    text = unescape("".join(parser.parts)).replace("\xa0", " ")
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line)


def author_label(message: dict, users: dict) -> str:
    """Who wrote a message, as a reader of the transcript should see it."""
    if message["author_type"] == "contact":
        return VISITOR
    user = users.get(message["author_id"]) or {}
    name = user.get("name") or f"User {message['author_id']}"
    return f"{name} (bot)" if message["is_bot"] or user.get("is_bot") else name


def visible_messages(messages: list[dict], users: dict, *, include_notes: bool = False) -> list[dict]:
    """The messages a transcript shows, oldest first, with deletes and edits applied."""
    deleted = {m["edited_message_id"] for m in messages
               if m["message_type"] == "edit" and m["edit_type"] == "delete"}
    replacements: dict[int, dict] = {}
    for m in messages:  # oldest first: the last replacement wins
        if m["message_type"] == "edit" and m["edit_type"] in REPLACING_EDITS:
            replacements[m["edited_message_id"]] = m
    shown_types = {"chat", "private_note"} if include_notes else {"chat"}
    out = []
    for m in messages:
        if m["message_type"] not in shown_types or m["message_id"] in deleted:
            continue
        edit = replacements.get(m["message_id"])
        body = edit["body"] if edit is not None else m["body"]
        text = html_to_text(body)
        out.append({
            "message_id": m["message_id"],
            "created_at": m["created_at"],
            "author": author_label(m, users),
            "note": m["message_type"] == "private_note",
            "edited": edit is not None,
            "text": REMOVED_BODY if text is None else text,
        })
    return out


def _stamp(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def render_text(shown: list[dict]) -> str:
    """One block per message: `[time] Author (edited): text`, continuation lines indented."""
    blocks = []
    for m in shown:
        label = m["author"] + (" (private note)" if m["note"] else "") + (" (edited)" if m["edited"] else "")
        text = m["text"].replace("\n", "\n    ")
        blocks.append(f"[{_stamp(m['created_at'])}] {label}: {text}")
    return "\n".join(blocks)


def _jsonable(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot hash {type(value).__name__}")


def input_hash(inputs: dict) -> str:
    """sha256 of everything rendering reads (notes included): equal hashes, equal renderings."""
    conversation = inputs["conversation"]
    authors = sorted({m["author_id"] for m in inputs["messages"] if m["author_id"] is not None}
                     | {p["id"] for p in inputs["participants"] if p["type"] == "user"})
    payload = {
        "conversation": conversation,
        "messages": inputs["messages"],
        "participants": inputs["participants"],
        "users": [[a, inputs["users"].get(a)] for a in authors],
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return hashlib.sha256(canonical.encode()).hexdigest()


def stored_transcript(inputs: dict, rendered_at: datetime, hashed: str | None = None) -> dict:
    """The `raw.transcripts` row of a conversation (chat only: notes never stored rendered);
    `hashed` is its `input_hash` when the caller computed it already."""
    conversation = inputs["conversation"]
    shown = visible_messages(inputs["messages"], inputs["users"])
    return {
        "org_id": conversation["org_id"],
        "conversation_id": conversation["conversation_id"],
        "transcript": render_text(shown),
        "message_count": len(shown),
        "input_hash": hashed or input_hash(inputs),
        "rendered_at": rendered_at,
        "checked_at": rendered_at,
    }


def export_record(inputs: dict, *, include_notes: bool) -> dict:
    """One JSONL line of `drift-pipeline export transcripts`."""
    conversation = inputs["conversation"]
    users = inputs["users"]
    shown = visible_messages(inputs["messages"], users, include_notes=include_notes)
    participants = [{"type": "contact", "id": conversation["contact_id"], "name": VISITOR}] \
        if conversation["contact_id"] is not None else []
    participants += [
        {"type": "user", "id": p["id"], "name": (users.get(p["id"]) or {}).get("name"),
         "is_current": p["is_current"]}
        for p in inputs["participants"] if p["type"] == "user"
    ]
    return {
        "org_id": conversation["org_id"],
        "conversation_id": conversation["conversation_id"],
        "status": conversation["status"],
        "created_at": _stamp(conversation["created_at"]),
        "updated_at": _stamp(conversation["updated_at"]),
        "contact_id": conversation["contact_id"],
        "participants": participants,
        "tags": conversation["tags"],
        "notes_included": include_notes,
        "message_count": len(shown),
        "messages": [
            {"message_id": m["message_id"], "created_at": _stamp(m["created_at"]), "author": m["author"],
             "private_note": m["note"], "edited": m["edited"], "text": m["text"]}
            for m in shown
        ],
        "transcript": render_text(shown),
    }
