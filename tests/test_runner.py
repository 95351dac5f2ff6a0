"""`drift-pipeline sync` runs through Dagster like a scheduled run, checks included."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from drift_pipeline.assets.drift_reports import CHECK_NAME as RECONCILIATION
from drift_pipeline.assets.drift_reports import reconcile_with_drift
from drift_pipeline.dbt_project import ensure_manifest
from drift_pipeline.resources import warehouse_resource
from drift_pipeline.runner import materialize_days

from conftest import SIM_END

pytestmark = pytest.mark.slow


def test_a_cli_sync_without_dbt_runs_the_raw_assets_with_their_checks(sim_env):
    _, settings = sim_env
    day = (SIM_END - timedelta(days=1)).date()
    result = materialize_days(settings, day, day + timedelta(days=1), with_dbt=False)
    checks = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
              for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    # The simulator's clock stops at SIM_END, weeks before today: its newest update is stale,
    # so the freshness check (a warning) fails; tests/test_raw_checks.py covers both sides.
    assert checks == {"conversations_unique": True, "messages_unique": True,
                      "messages_have_conversation": True, "conversations_fresh": False,
                      # The meetings, playbooks and accounts streams' checks (drift_streams).
                      "meetings_scope_granted": True, "playbooks_scope_granted": True,
                      "accounts_scope_granted": True, "meeting_states_recorded": True,
                      "playbook_goals_have_playbook": True}
    materialized = {tuple(e.asset_key.path) for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}
    assert ("raw", "conversations") in materialized
    assert not any(key[0] == "marts" for key in materialized)


def test_a_syncs_dbt_tests_are_asset_checks_and_a_failing_one_fails_the_sync(sim_env):
    """A sync's `dbt build` (every model, every test; a dbt process, unlike the webhook
    refresh): its tests come back as Dagster asset checks, and a test that fails fails the
    run, naming it."""
    import duckdb

    from drift_pipeline.runner import RunFailed

    simulator, settings = sim_env
    day = (SIM_END - timedelta(days=1)).date()
    result = materialize_days(settings, day, day + timedelta(days=1))
    dbt_checks = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
                  for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
                  and e.asset_check_evaluation_data.asset_key.path[0] not in ("raw", "serving")
                  and e.asset_check_evaluation_data.check_name != RECONCILIATION}
    manifest = json.loads(ensure_manifest().read_text())  # the one the definitions loaded
    data_tests = {node["name"] for node in manifest["nodes"].values() if node["resource_type"] == "test"}
    assert set(dbt_checks) == data_tests and all(dbt_checks.values())
    timings = [json.loads(line) for line in (settings.home / "logs" / "timings.jsonl").read_text().splitlines()]
    assert [t["dbt_in_process"] for t in timings if t["kind"] == "marts"] == [False]
    _the_sync_matched_drifts_reports(simulator, settings, result)
    # What `drift-pipeline sync` prints of the same checks.
    from drift_pipeline.cli import check_summary

    evaluations = result.get_asset_check_evaluations()
    summary = check_summary(evaluations)
    # The simulator's clock stands still, so the freshness check does not pass (test_raw_checks.py).
    assert summary[0] == (f"checks: {len(evaluations) - 1} of {len(evaluations)} passed; "
                          "not passed: raw/conversations:conversations_fresh")
    compared = [e for e in evaluations if e.check_name == RECONCILIATION][0].metadata["agreement"].value
    closes = compared["first_close"]["compared"]
    assert f"  first_close: {closes} of {closes} agree" in summary

    with duckdb.connect(str(settings.warehouse_path)) as conn:  # a duplicate row, as a bug would leave
        conn.execute("insert into intermediate.int_drift__message_counts "
                     "select * from intermediate.int_drift__message_counts limit 1")
    with pytest.raises(RunFailed) as failed:
        materialize_days(settings, day, day + timedelta(days=1), full_tests=True)
    assert "unique_combination_int_drift__message_counts" in str(failed.value)


def _the_sync_matched_drifts_reports(simulator, settings, result):
    """The same sync's reconciliation with Drift's reports (`assets/drift_reports.py`): every
    difference on the simulator is one the DECISIONLOG records, one report call for the synced
    day; then a first close planted in Drift's answer for one conversation is a difference
    nothing explains, and the check fails."""
    [evaluation] = [e.asset_check_evaluation_data for e in result.all_events
                    if e.event_type_value == "ASSET_CHECK_EVALUATION"
                    and e.asset_check_evaluation_data.check_name == RECONCILIATION]
    meta = {key: value.value for key, value in evaluation.metadata.items()}
    assert evaluation.passed and evaluation.asset_key.path == ["marts", "fct_conversations"]
    assert meta["unexplained"] == 0 and meta["unexplained_ids"] == []
    assert meta["report_calls"] == 1  # one synced day: one call, however many conversations
    agreement = meta["agreement"]
    assert all(a["agree_or_explained_pct"] == 100.0 for a in agreement.values())
    assert agreement["first_close"]["compared"] > 20 and agreement["first_close"]["matched_pct"] == 100.0
    # The simulator's Drift times responses from the bots' hand-offs and counts openers and
    # deleted replies: differences there, each explained.
    assert agreement["time_to_agent_response"]["explained"] > 0
    assert meta["reasons"]["time_to_agent_response"].get("bot_routing", 0) > 0
    assert set(meta["reasons"]["first_agent_message"]) <= {"agent_opener", "deleted_message"}

    world = simulator.world
    end_ms = int(SIM_END.timestamp() * 1000)
    planted = min(cid for cid, c in world.conversations.items()  # closed, in the synced day
                  if end_ms - 86_400_000 <= c["updatedAt"] < end_ms
                  and world.conversation_metrics(cid)["firstCloseAt"] is not None)
    original = world.conversation_metrics

    def tampered(cid):
        metrics = dict(original(cid))
        if cid == planted:  # Drift says it closed an hour later than it did
            metrics["firstCloseAt"] += 3_600_000
            metrics["timeToCloseMillis"] += 3_600_000
        return metrics

    world.conversation_metrics = tampered
    before = simulator.stats.by_route.get("reports", 0)
    checked = reconcile_with_drift(settings, warehouse_resource(settings))
    assert simulator.stats.by_route.get("reports", 0) - before == checked.report_calls == 1
    assert [(d.conversation_id, d.metric, d.reasons) for d in checked.unexplained] == [
        (planted, "first_close", ()), (planted, "time_to_close", ())]
    compared = checked.tallies["first_close"].compared
    assert compared < 100 and not checked.passed  # one unexplained in fewer than 100: under 99%

