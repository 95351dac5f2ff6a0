"""Transcript rendering rules on a small explicit conversation: chat only, deletes applied,
edits shown as edited, notes only on request, HTML as text, the contact as "Visitor"."""

from __future__ import annotations

from datetime import datetime

from drift_pipeline.transcripts.render import (
    REMOVED_BODY,
    export_record,
    html_to_text,
    input_hash,
    render_text,
    visible_messages,
)

USERS = {10: {"name": "Alice Martin", "is_bot": False}, 99: {"name": "Drift Bot", "is_bot": True}}


def _msg(message_id, minute, message_type="chat", author_type="user", author_id=10, body="<p>x</p>",
         edited=None, edit_type=None, is_bot=False):
    return {"conversation_id": 1, "message_id": message_id, "created_at": datetime(2026, 11, 14, 9, minute),
            "message_type": message_type, "author_type": author_type, "author_id": author_id, "is_bot": is_bot,
            "body": body, "edited_message_id": edited, "edit_type": edit_type}


MESSAGES = [
    _msg(1, 0, author_type="contact", author_id=500, body="<p>Hi, I&#39;m <b>stuck</b>&nbsp;at login.</p>"),
    _msg(2, 1, author_id=99, is_bot=True, body="<p>Let me find someone.</p>"),
    _msg(3, 2, body="<p>Wrong window, sorry</p>"),
    _msg(4, 3, message_type="edit", body="", edited=3, edit_type="delete"),
    _msg(5, 4, body="<p>Try resetting your pasword</p>"),
    _msg(6, 5, message_type="edit", body="<p>Try resetting your password</p>", edited=5, edit_type="replace_body"),
    _msg(7, 6, message_type="private_note", body="<p>Customer is on the legacy plan</p>"),
    _msg(8, 7, message_type="suggestion", body="<p>Suggested reply</p>"),
    _msg(9, 8, author_type="contact", author_id=500, body=None),  # blanked by erasure/retention
]


def _inputs(messages=MESSAGES):
    return {"conversation": {"org_id": 7, "conversation_id": 1, "status": "closed", "contact_id": 500,
                             "created_at": datetime(2026, 11, 14, 9, 0), "updated_at": datetime(2026, 11, 14, 9, 8),
                             "tags": ["billing"]},
            "messages": messages, "participants": [{"id": 10, "type": "user", "is_current": True}],
            "users": USERS}


def test_deleted_messages_and_non_chat_types_are_left_out():
    shown = visible_messages(MESSAGES, USERS)
    assert [m["message_id"] for m in shown] == [1, 2, 5, 9]


def test_an_edit_shows_the_message_once_marked_edited_with_the_new_body():
    edited = next(m for m in visible_messages(MESSAGES, USERS) if m["message_id"] == 5)
    assert edited["edited"] and edited["text"] == "Try resetting your password"
    assert "pasword" not in render_text(visible_messages(MESSAGES, USERS))


def test_private_notes_only_when_asked_for_and_labelled():
    assert "legacy plan" not in render_text(visible_messages(MESSAGES, USERS))
    with_notes = render_text(visible_messages(MESSAGES, USERS, include_notes=True))
    assert "Alice Martin (private note): Customer is on the legacy plan" in with_notes


def test_authors_are_named_and_the_contact_is_a_visitor():
    text = render_text(visible_messages(MESSAGES, USERS))
    assert text.splitlines()[0] == "[2026-11-14T09:00:00Z] Visitor: Hi, I'm stuck at login."
    assert "Drift Bot (bot): Let me find someone." in text
    assert "Alice Martin (edited): Try resetting your password" in text
    assert text.splitlines()[-1] == f"[2026-11-14T09:08:00Z] Visitor: {REMOVED_BODY}"


def test_html_becomes_plain_text_with_blocks_on_their_own_lines():
    assert html_to_text("<p>one &amp; two</p><ul><li>a</li><li>b<br>c</li></ul>") == "one & two\na\nb\nc"
    assert html_to_text(None) is None


def test_export_record_has_ids_times_participants_and_tags_but_no_email():
    record = export_record(_inputs(), include_notes=False)
    assert record["conversation_id"] == 1 and record["status"] == "closed" and record["tags"] == ["billing"]
    assert record["created_at"] == "2026-11-14T09:00:00Z" and record["message_count"] == 4
    assert record["participants"] == [{"type": "contact", "id": 500, "name": "Visitor"},
                                      {"type": "user", "id": 10, "name": "Alice Martin", "is_current": True}]
    assert record["transcript"] == render_text(visible_messages(MESSAGES, USERS))
    assert "@" not in str(record)


def test_the_input_hash_moves_with_a_note_or_a_body_and_not_otherwise():
    base = input_hash(_inputs())
    assert input_hash(_inputs([dict(m) for m in MESSAGES])) == base
    changed_note = [dict(m, body="<p>other</p>") if m["message_id"] == 7 else m for m in MESSAGES]
    assert input_hash(_inputs(changed_note)) != base
    blanked = [dict(m, body=None) for m in MESSAGES]
    assert input_hash(_inputs(blanked)) != base
