"""`drift-pipeline sync` runs through Dagster like a scheduled run, checks included."""

from __future__ import annotations

from datetime import timedelta

import pytest

from drift_pipeline.runner import materialize_days

from conftest import SIM_END

pytestmark = pytest.mark.slow


def test_a_cli_sync_without_dbt_runs_the_raw_assets_with_their_checks(sim_env):
    _, settings = sim_env
    day = (SIM_END - timedelta(days=1)).date()
    result = materialize_days(settings, day, day + timedelta(days=1), with_dbt=False)
    checks = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
              for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert checks == {"conversations_unique": True, "messages_unique": True,
                      "messages_have_conversation": True, "conversations_fresh": checks.get("conversations_fresh")}
    materialized = {tuple(e.asset_key.path) for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}
    assert ("raw", "conversations") in materialized
    assert not any(key[0] == "marts" for key in materialized)
