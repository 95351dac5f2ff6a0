"""Shared fixtures: a seeded simulator on loopback and an isolated $DRIFT_PIPELINE_HOME."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from drift_pipeline.settings import Settings

SIM_END = datetime(2026, 11, 15, tzinfo=timezone.utc)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An isolated pipeline home; the environment points everything at it."""
    path = tmp_path / "home"
    monkeypatch.setenv("DRIFT_PIPELINE_HOME", str(path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    for name in ("DRIFT_ACCESS_TOKEN", "DRIFT_CLIENT_ID", "DRIFT_CLIENT_SECRET", "DRIFT_REFRESH_TOKEN",
                 "DRIFT_TOKEN_KEY", "DRIFT_PII_SALT", "DRIFT_WEBHOOK_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture
def make_simulator():
    """Start simulators on 127.0.0.1 (free ports); all are stopped at teardown."""
    from drift_pipeline.drift.simulator import Simulator, SimulatorConfig, SimulatorServer

    servers = []

    def start(**config):
        config.setdefault("end", SIM_END)
        simulator = Simulator(SimulatorConfig(**config))
        server = SimulatorServer(simulator).start()
        servers.append(server)
        return simulator, server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def sim_env(home, make_simulator, monkeypatch):
    """A small simulated workspace (3 days x 40 conversations) with the env pointing at it."""
    simulator, server = make_simulator(seed=11, days=3, conversations_per_day=40, rate_limit_per_minute=60_000)
    monkeypatch.setenv("DRIFT_API_BASE_URL", server.base_url)
    monkeypatch.setenv("DRIFT_ACCESS_TOKEN", simulator.config.static_access_token)
    return simulator, Settings.from_env()
