"""One path to the marts: the CLI's apply-inbox, replay and erase each refresh the marts and
the serving copy through the same Dagster assets the webhook job runs, and its publish the
serving copy alone, so each is a materialization in the instance (what the UI shows), whoever
started it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dagster import AssetKey

from drift_pipeline.cli import main
from drift_pipeline.instance import open_instance
from drift_pipeline.webhooks.inbox_files import write_events_file

from conftest import SIM_END, query

pytestmark = pytest.mark.slow
END = SIM_END.replace(tzinfo=None)
WATCHED = (AssetKey(["marts", "fct_conversations"]), AssetKey(["marts", "agg_daily_metrics"]),
           AssetKey(["serving", "analytics"]), AssetKey(["serving", "report"]))


def _latest(settings) -> dict[AssetKey, tuple[str, str]]:
    """Each watched asset's latest materialization: its run id and the run's trigger tag."""
    latest = {}
    with open_instance(settings) as instance:
        for key in WATCHED:
            event = instance.get_latest_materialization_event(key)
            if event is not None:
                run = instance.get_run_by_id(event.run_id)
                latest[key] = (event.run_id, run.tags.get("drift/trigger"))
    return latest


def test_cli_apply_inbox_replay_and_erase_each_leave_a_materialization_of_the_marts_and_serving_copy(
        sim_env, synced):
    simulator, settings = sim_env
    world = simulator.world
    synced(simulator, settings, END - timedelta(days=3), END)
    assert _latest(settings) == {}  # the sync here ran outside Dagster: nothing recorded yet
    conversation_id = next(cid for cid, c in world.conversations.items() if c["status"] == "open"
                           and query(settings, "SELECT 1 FROM raw.conversations WHERE conversation_id = ?", [cid]))

    write_events_file(settings.inbox_dir, world.set_status(conversation_id, "closed", at_ms=world.now_ms + 1000))
    assert main(["apply-inbox"]) == 0
    after_apply = _latest(settings)
    assert set(after_apply) == set(WATCHED)
    assert {trigger for _, trigger in after_apply.values()} == {"apply-inbox"}
    assert len({run for run, _ in after_apply.values()}) == 1  # one run made them all

    assert main(["replay", "conversation", str(conversation_id)]) == 0
    after_replay = _latest(settings)
    assert all(after_replay[key][0] != after_apply[key][0] for key in WATCHED)
    assert {trigger for _, trigger in after_replay.values()} == {"cli"}

    contact_id = world.conversations[conversation_id]["contactId"]
    assert main(["erase", "--contact-id", str(contact_id)]) == 0
    after_erase = _latest(settings)
    assert all(after_erase[key][0] not in (after_apply[key][0], after_replay[key][0]) for key in WATCHED)
    # ... and the serving copy that run published no longer has the contact.
    import duckdb

    with duckdb.connect(str(settings.serving_dir / "analytics.duckdb"), read_only=True) as served:
        assert served.execute("SELECT count(*) FROM marts.fct_conversations WHERE contact_id = ?",
                              [contact_id]).fetchall() == [(0,)]

    # `publish` alone is a run of the serving assets too: the copy and the report are
    # materialized again (with their checks), the marts are left as the erase run built them.
    assert main(["publish"]) == 0
    after_publish = _latest(settings)
    serving = (AssetKey(["serving", "analytics"]), AssetKey(["serving", "report"]))
    assert {after_publish[key][1] for key in serving} == {"publish"}
    assert len({after_publish[key][0] for key in serving}) == 1
    assert all(after_publish[key] == after_erase[key] for key in WATCHED if key not in serving)
