"""GDPR erasure reaches the warehouse, the files under $DRIFT_PIPELINE_HOME and the serving copy,
and a later sync does not bring the contact back."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pytest

from drift_pipeline.runner import refresh_marts
from drift_pipeline.operations import erase
from drift_pipeline.webhooks.inbox_files import write_events_file

from conftest import SIM_END, query, sync

pytestmark = pytest.mark.slow
END = SIM_END.replace(tzinfo=None)


def test_erase_by_email_reaches_warehouse_files_and_serving_copy(sim_env, synced):
    simulator, settings = sim_env
    world = simulator.world
    start = END - timedelta(days=3)
    synced(simulator, settings, start, END)
    refresh_marts(settings)
    contact_id, conversation_ids = next(
        (c["contactId"], [cid]) for cid, c in world.conversations.items()
        if c["contactId"] in {r[0] for r in query(settings, "SELECT contact_id FROM raw.contacts")}
        and any(m["author"]["type"] == "contact" for m in world.messages[cid]))
    email = world.contacts[contact_id]["attributes"]["email"]
    conversation_ids = [cid for cid, c in world.conversations.items() if c["contactId"] == contact_id
                        and query(settings, "SELECT 1 FROM raw.conversations WHERE conversation_id = ?", [cid])]
    # A webhook file about the contact waits in the inbox; another was processed already.
    payloads = world.add_message(conversation_ids[0], author_type="contact", author_id=contact_id,
                                 body=f"<p>my email is {email}</p>")
    write_events_file(settings.inbox_dir, payloads)
    processed = write_events_file(settings.processed_dir, payloads)
    other = write_events_file(settings.inbox_dir, world.advance(minutes=240))

    result = erase(settings, email=email.upper(), refresh=refresh_marts)
    assert result["contacts_erased"] == 1 and result["serving_copy_republished"]
    assert query(settings, "SELECT count(*) FROM raw.contacts WHERE contact_id = ?", [contact_id]) == [(0,)]
    bodies = query(settings, "SELECT count(body) FROM raw.messages WHERE conversation_id IN "
                             "(SELECT unnest(?::BIGINT[]))", [conversation_ids])
    assert bodies == [(0,)]
    assert query(settings, "SELECT count(*) FROM raw.conversations WHERE contact_id = ?", [contact_id]) == [(0,)]
    for path in [*settings.inbox_dir.glob("*.json"), *settings.processed_dir.glob("*.json")]:
        text = path.read_text()
        assert email not in text and f'"conversationId":{conversation_ids[0]}' not in text
    assert not processed.exists() and other.exists(), "only lines about the contact went"
    serving = duckdb.connect(str(settings.serving_dir / "analytics.duckdb"), read_only=True)
    try:
        assert serving.execute("SELECT count(*) FROM marts.fct_conversations WHERE contact_id = ?",
                               [contact_id]).fetchall() == [(0,)]
        assert serving.execute("SELECT count(*) FROM marts.fct_conversations WHERE conversation_id IN "
                               "(SELECT unnest(?::BIGINT[]))", [conversation_ids]).fetchall()[0][0] == len(conversation_ids)
    finally:
        serving.close()

    # Drift still has the conversation (with a newer updatedAt): a re-sync must not restore the contact.
    sync(settings, start, END + timedelta(days=1))
    assert query(settings, "SELECT count(*) FROM raw.contacts WHERE contact_id = ?", [contact_id]) == [(0,)]
    assert query(settings, "SELECT count(body) FROM raw.messages WHERE conversation_id = ?",
                 [conversation_ids[0]]) == [(0,)]
    assert query(settings, "SELECT count(*) FROM raw.conversations WHERE contact_id = ?", [contact_id]) == [(0,)]
