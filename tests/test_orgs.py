"""Several Drift workspaces in one deployment: two simulated orgs behind one API host, each added
by `auth exchange`, synced side by side; each org's marts equal that org synced alone, erasure
in one org never touches the other (whose ids are the same numbers), and an event of an org we
hold no tokens for is quarantined with that reason."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pytest
from dagster import build_schedule_context
from dagster_duckdb import DuckDBResource

from drift_pipeline.assets.drift_raw import run_sync
from drift_pipeline.assets.drift_reports import orgs_to_check, reconcile_with_drift
from drift_pipeline.cli import main
from drift_pipeline.drift.auth_status import auth_status
from drift_pipeline.drift.authorize import auth_exchange
from drift_simulator import MultiOrgSimulator, Simulator, SimulatorConfig, SimulatorServer
from drift_pipeline.runner import refresh_marts
from drift_pipeline.partitions import ORG_TAG
from drift_pipeline.resources import DriftApiResource
from drift_pipeline.schedules import nightly_drift_sync
from drift_pipeline.settings import Settings
from drift_pipeline.timeutil import ts_to_ms
from drift_pipeline.webhooks.apply import apply_inbox

from conftest import SIM_END, deliver, query

END = SIM_END.replace(tzinfo=None)
START = END - timedelta(days=2)
ORG_A, ORG_B, STRANGER = 21000001, 21000002, 21000099
# fct_meetings joins once the simulator serves meetings: every mart compared here must hold rows.
MARTS = ("fct_conversations", "agg_daily_metrics", "agg_agent_daily", "agg_attribution_daily", "agg_playbook_daily",
         "agg_daily_backlog")


@pytest.fixture
def two_orgs(monkeypatch):
    """Two workspaces (different data, the same id ranges) on one loopback host."""
    monkeypatch.setenv("DRIFT_PII_SALT", "test-salt")  # every home hashes alike
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    simulators = [
        Simulator(SimulatorConfig(seed=seed, org_id=org, static_access_token=f"static-{org}", days=2,
                                  conversations_per_day=30, rate_limit_per_minute=60_000, end=SIM_END))
        for seed, org in ((11, ORG_A), (12, ORG_B))
    ]
    orgs = MultiOrgSimulator(simulators)
    with SimulatorServer(orgs) as server:
        yield orgs, server


def _settings(path, base_url, **env) -> Settings:
    return Settings.from_env({"DRIFT_PIPELINE_HOME": str(path), "DRIFT_API_BASE_URL": base_url,
                              "DRIFT_PII_SALT": "test-salt", **env})


def _sync_and_build(settings: Settings, monkeypatch, org_ids=None, *, build: bool = True) -> list:
    """What the raw asset does in a run (every connected org, or those named), then the marts."""
    monkeypatch.setenv("DRIFT_PIPELINE_HOME", str(settings.home))
    for name, value in (("DRIFT_API_BASE_URL", settings.api_base_url),
                        ("DRIFT_CLIENT_ID", settings.client_id), ("DRIFT_CLIENT_SECRET", settings.client_secret),
                        ("DRIFT_ACCESS_TOKEN", settings.access_token)):
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)
    settings.ensure_dirs()
    duck = DuckDBResource(database=str(settings.warehouse_path), connection_config=settings.duckdb_config())
    stats = run_sync(DriftApiResource.for_settings(settings), duck, START, END, org_ids=org_ids)
    if build:
        refresh_marts(settings)
    return stats


def _marts(settings: Settings, org_id: int) -> dict[str, list]:
    conn = duckdb.connect(str(settings.serving_dir / "analytics.duckdb"), read_only=True)
    try:
        # Columns named `_...` say when a row was refreshed: they differ between any two builds.
        return {table: conn.execute(f"SELECT COLUMNS(lambda c: NOT starts_with(c, '_')) FROM marts.{table} "
                                    "WHERE org_id = ? ORDER BY ALL", [org_id]).fetchall() for table in MARTS}
    finally:
        conn.close()


def _raw(settings: Settings, org_id: int) -> dict[str, list]:
    return {table: query(settings, f"SELECT * EXCLUDE (synced_at) FROM raw.{table} WHERE org_id = ? ORDER BY ALL",
                         [org_id]) for table in ("conversations", "messages", "participants", "contacts")}


# Three dbt builds (both orgs, each alone): about 2 minutes on a 2-core machine shared with other
# dbt runs, up to 5 when it is saturated; the suite's 300 s default is too tight for that.
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_orgs_in_one_deployment_equal_each_alone_and_stay_apart(two_orgs, home, dbt_parse_seed, tmp_path,
                                                                   monkeypatch):
    orgs, server = two_orgs
    sim_a, sim_b = orgs[ORG_A], orgs[ORG_B]
    oauth = {"DRIFT_CLIENT_ID": sim_a.config.client_id, "DRIFT_CLIENT_SECRET": sim_a.config.client_secret}
    both = _settings(home, server.base_url, **oauth)  # its first dbt command starts from the seeded parse

    # Each `auth exchange` adds its org and keeps the others; status lists both, no token text.
    auth_exchange(both, sim_a.issue_authorization_code())
    auth_exchange(both, sim_b.issue_authorization_code())
    status = auth_status(both)
    assert [o["org_id"] for o in status["orgs"]] == [ORG_A, ORG_B]
    assert all(o["expires_at"] and o["has_refresh_token"] and o["disconnected_at"] is None for o in status["orgs"])
    assert "sim-at-" not in str(status) and "sim-rt-" not in str(status)

    # One deployment syncs both orgs, each with its own client, budget and checkpointed job.
    stats = _sync_and_build(both, monkeypatch)
    assert sorted(s.org_id for s in stats) == [ORG_A, ORG_B] and not any(s.responses_429 for s in stats)
    assert query(both, "SELECT org_id, count(*) FROM raw.exports WHERE success GROUP BY 1 ORDER BY 1") == [
        (ORG_A, 1), (ORG_B, 1)]
    for sim in (sim_a, sim_b):
        stored = {r[0] for r in query(both, "SELECT conversation_id FROM raw.conversations WHERE org_id = ?",
                                      [sim.world.org_id])}
        expected = {cid for cid, c in sim.world.conversations.items()
                    if ts_to_ms(START - timedelta(minutes=60)) <= c["updatedAt"] < ts_to_ms(END)}
        assert stored == expected
    shared = {r[0] for r in query(both, "SELECT conversation_id FROM raw.conversations GROUP BY 1 "
                                        "HAVING count(DISTINCT org_id) = 2")}
    assert shared, "the two workspaces use the same ids: the test must see them kept apart"

    # Drift's reports agree with each org's marts: each org is asked with its own tokens, for
    # its own synced window (two days: two calls each), and compared with its own rows only.
    checked = reconcile_with_drift(both, DuckDBResource(database=str(both.warehouse_path)),
                                   orgs_to_check(DriftApiResource.from_env()))
    assert checked.report_calls == 4 and len(checked.windows) == 2
    assert checked.passed and not checked.unexplained and checked.tallies["first_close"].matched > 20
    assert checked.reported == sum(len(expected_ids) for expected_ids in (
        {cid for cid, c in sim.world.conversations.items() if ts_to_ms(START) <= c["updatedAt"] < ts_to_ms(END)}
        for sim in (sim_a, sim_b)))

    # The nightly schedule asks for one run per org.
    with build_schedule_context(scheduled_execution_time=SIM_END, resources={"drift": DriftApiResource.from_env()}) as tick:
        requests = nightly_drift_sync(tick)
    assert [r.tags[ORG_TAG] for r in requests] == [str(ORG_A), str(ORG_B)]
    assert len({r.run_key for r in requests}) == 2

    # Each org's marts equal that org synced alone (its static token, its own home).
    together = {org: _marts(both, org) for org in (ORG_A, ORG_B)}
    for sim in (sim_a, sim_b):
        alone = _settings(tmp_path / f"alone-{sim.world.org_id}", server.base_url,
                          DRIFT_ACCESS_TOKEN=sim.config.static_access_token)
        _sync_and_build(alone, monkeypatch)
        assert _raw(alone, sim.world.org_id) == _raw(both, sim.world.org_id)
        assert _marts(alone, sim.world.org_id) == together[sim.world.org_id]
        assert all(rows for rows in together[sim.world.org_id].values() if rows is not None)
    monkeypatch.setenv("DRIFT_PIPELINE_HOME", str(both.home))
    monkeypatch.delenv("DRIFT_ACCESS_TOKEN")

    # Erasure in org A never touches org B, though B has a contact with the same id.
    contact = next(c for (c,) in query(both, "SELECT contact_id FROM raw.contacts WHERE org_id = ? "
                                             "INTERSECT SELECT contact_id FROM raw.contacts WHERE org_id = ? "
                                             "ORDER BY 1", [ORG_A, ORG_B])
                   if query(both, "SELECT count(*) FROM raw.conversations WHERE org_id = ? AND contact_id = ?",
                            [ORG_B, c])[0][0])
    org_b_before = _raw(both, ORG_B)
    assert main(["erase", "--contact-id", str(contact)]) == 2, "ids are per org: --org is required"
    deliver(sim_a, both, sim_a.world.request_gdpr_delete(contact))
    assert apply_inbox(both).contacts_erased == 1
    assert query(both, "SELECT org_id FROM raw.contacts WHERE contact_id = ?", [contact]) == [(ORG_B,)]
    assert query(both, "SELECT count(*) FROM raw.conversations WHERE org_id = ? AND contact_id = ?",
                 [ORG_A, contact]) == [(0,)]
    assert _raw(both, ORG_B) == org_b_before
    assert query(both, "SELECT org_id FROM raw.erased_contacts") == [(ORG_A,)]

    # A webhook names its org: org B's event re-fetches with B's tokens into B's rows only, and
    # an event of an org with no tokens here waits in quarantine with that reason.
    cid = sorted(shared)[0]
    a_row = query(both, "SELECT * FROM raw.conversations WHERE org_id = ? AND conversation_id = ?", [ORG_A, cid])
    foreign = dict(sim_b.world.set_status(cid, "closed", at_ms=sim_b.world.now_ms + 60_000)[0])
    foreign_id = dict(foreign, orgId=str(STRANGER))
    deliver(sim_b, both, sim_b.world.set_status(cid, "open", at_ms=sim_b.world.now_ms + 120_000) + [foreign_id])
    result = apply_inbox(both)
    assert result.events_applied == 1 and result.events_invalid == 1 and result.conversations_refetched == 1
    assert query(both, "SELECT status FROM raw.conversations WHERE org_id = ? AND conversation_id = ?",
                 [ORG_B, cid]) == [(sim_b.world.conversations[cid]["status"],)]
    assert query(both, "SELECT * FROM raw.conversations WHERE org_id = ? AND conversation_id = ?",
                 [ORG_A, cid]) == a_row
    [reason] = [p.read_text() for p in both.quarantine_dir.glob("*.reason")]
    assert f"org {STRANGER} has no tokens" in reason and "auth exchange" in reason and reason.count("\n") == 1
    assert query(both, "SELECT count(*) FROM raw.webhook_events WHERE org_id = ?", [STRANGER]) == [(0,)]


def test_a_single_org_store_written_before_several_orgs_still_syncs_that_org(two_orgs, tmp_path, monkeypatch):
    orgs, server = two_orgs
    sim_a = orgs[ORG_A]
    settings = _settings(tmp_path / "one", server.base_url, DRIFT_CLIENT_ID=sim_a.config.client_id,
                         DRIFT_CLIENT_SECRET=sim_a.config.client_secret)
    auth_exchange(settings, sim_a.issue_authorization_code())
    stats = _sync_and_build(settings, monkeypatch, build=False)
    assert [s.org_id for s in stats] == [ORG_A]
    with build_schedule_context(scheduled_execution_time=SIM_END, resources={"drift": DriftApiResource.from_env()}) as tick:
        assert [r.tags[ORG_TAG] for r in nightly_drift_sync(tick)] == [str(ORG_A)]
