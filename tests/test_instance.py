"""The Dagster instance in the home: one run at a time, the run queue looked at every second,
and homes written by earlier versions upgraded in place."""

from __future__ import annotations

import json


from drift_pipeline.instance import _PREVIOUS_DAGSTER_YAMLS, ensure_dagster_home, open_instance
from drift_pipeline.settings import Settings


def test_an_earlier_home_gets_the_one_second_run_queue_and_keeps_one_run_at_a_time(home, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    settings = Settings.from_env()
    dagster_home = settings.home / "dagster"
    dagster_home.mkdir(parents=True)
    runs_dir = json.dumps(str(dagster_home / "history" / "runs"))
    (dagster_home / "dagster.yaml").write_text(_PREVIOUS_DAGSTER_YAMLS[-1].format(runs_dir=runs_dir))
    with open_instance(settings) as instance:
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1


def test_an_operators_own_dagster_yaml_is_left_alone(home, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    settings = Settings.from_env()
    dagster_home = settings.home / "dagster"
    dagster_home.mkdir(parents=True)
    own = "telemetry:\n  enabled: false\n"
    (dagster_home / "dagster.yaml").write_text(own)
    ensure_dagster_home(settings)
    assert (dagster_home / "dagster.yaml").read_text() == own
