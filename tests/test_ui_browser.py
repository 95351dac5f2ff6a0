"""The Dagster UI, driven in headless Chromium: `make dev`'s devserver against a small simulator.

Checks that the Drift assets are in the catalog with their groups, that the lineage runs from
raw/* through the dbt models to marts/* (in the UI graph and through /graphql), then launches
one daily partition of `drift_sync_job` (raw + dbt models) from the UI and waits for the run to
succeed and the marts to be built and published. Screenshots go to tests/artifacts/.

Skipped when Playwright or Debian's Chromium (`make browser-deps`) is missing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, browser_marks, expect, sync_playwright

pytestmark = browser_marks(1500)
PROJECT_DIR = Path(__file__).resolve().parent.parent
LOCATION = "drift_pipeline.definitions"
JOB = "drift_sync_job"
UI_START_TIMEOUT = 180
RUN_TIMEOUT = 900


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _killpg(pgid: int | None, sig: int) -> None:
    if pgid is None:
        return
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int | None) -> bool:
    if pgid is None:
        return False
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class DagsterUI:
    """`python -m drift_pipeline.devserver` (which runs `dagster dev`) and /graphql helpers."""

    def __init__(self, url: str, proc: subprocess.Popen, log_path: Path, home: Path) -> None:
        self.url = url
        self.proc = proc
        self.log_path = log_path
        self.home = home
        self.dagster_pgid: int | None = None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def wait_until_up(self, timeout: float = UI_START_TIMEOUT) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.dagster_pgid is None:
                match = re.search(r"dagster dev \(pid \d+, process group (\d+)\)", self.log_tail(100_000))
                if match:
                    self.dagster_pgid = int(match.group(1))
            if self.proc.poll() is not None:
                pytest.fail(f"the devserver exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + "/server_info", timeout=5).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(1)
        pytest.fail(f"the Dagster UI did not answer within {timeout} s:\n{self.log_tail()}")

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        last_error: Exception | None = None
        for _ in range(5):
            try:
                response = httpx.post(self.url + "/graphql", json={"query": query, "variables": variables or {}},
                                      timeout=60)
                response.raise_for_status()
                body = response.json()
                assert not body.get("errors"), body["errors"]
                return body["data"]
            except (httpx.HTTPError, ValueError) as exc:
                last_error = exc
                time.sleep(2)
        raise AssertionError(f"/graphql failed: {last_error}")

    def stop(self) -> None:
        """SIGTERM the devserver (it forwards to `dagster dev`), then SIGKILL both process groups."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 10
        while _group_alive(self.dagster_pgid) and time.monotonic() < deadline:
            time.sleep(0.5)
        _killpg(self.dagster_pgid, signal.SIGKILL)
        _killpg(self.proc.pid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def _secrets(simulator) -> dict[str, str]:
    """Every secret the pipeline reads, set as a deployment sets them (the static token wins
    over the OAuth ones, so the run still reaches the simulator): the test looks for each value
    in what the UI serves and in what Dagster stores."""
    from cryptography.fernet import Fernet

    return {"DRIFT_ACCESS_TOKEN": simulator.config.static_access_token,
            "DRIFT_CLIENT_ID": "client-id-value-5e1f", "DRIFT_CLIENT_SECRET": "client-secret-value-77ab",
            "DRIFT_REFRESH_TOKEN": "refresh-token-value-0c4d", "DRIFT_WEBHOOK_TOKEN": "webhook-token-value-9d2e",
            "DRIFT_TOKEN_KEY": Fernet.generate_key().decode(), "DRIFT_PII_SALT": "pii-salt-value-3b8a",
            "DRIFT_WIDGET_SECRET": "widget-secret-value-6f01"}


RESOURCES = """{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError {
  ... on RepositoryLocation { repositories { allTopLevelResourceDetails {
    name configuredValues { key value type } } } } } } } } }"""
ASSET_DETAILS = """{ assetNodes { assetKey { path } description opName
  metadataEntries { label ... on TextMetadataEntry { text } ... on JsonMetadataEntry { jsonString }
                    ... on PathMetadataEntry { path } ... on UrlMetadataEntry { url } } } }"""
RUN_DETAILS = """query($runId: ID!) { runOrError(runId: $runId) { ... on Run { runConfigYaml tags { key value } } }
  logsForRun(runId: $runId, limit: 5000) { ... on EventConnection { events { __typename
    ... on MessageEvent { message }
    ... on MaterializationEvent { assetKey { path } metadataEntries { label
      ... on TextMetadataEntry { text } ... on JsonMetadataEntry { jsonString } ... on MarkdownMetadataEntry { mdStr } } }
  } } } }"""


def _secrets_in(text: str, secrets: dict[str, str]) -> list[str]:
    return sorted(name for name, value in secrets.items() if value in text)


def _secrets_in_files(root: Path, secrets: dict[str, str]) -> dict[str, list[str]]:
    found = {}
    for path in root.rglob("*"):
        if path.is_file():
            names = _secrets_in(path.read_bytes().decode("utf-8", errors="replace"), secrets)
            if names:
                found[str(path.relative_to(root))] = names
    return found


@pytest.fixture
def dagster_ui(home, dbt_parse_seed, make_simulator, tmp_path):
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    simulator, server = make_simulator(days=3, conversations_per_day=20, end=now, rate_limit_per_minute=60_000)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update({
        "DRIFT_PIPELINE_HOME": str(home),
        "DRIFT_API_BASE_URL": server.base_url,
        **_secrets(simulator),
        "DAGSTER_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    })
    log_path = tmp_path / "devserver.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "drift_pipeline.devserver"], cwd=PROJECT_DIR, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ui = DagsterUI(f"http://127.0.0.1:{port}", proc, log_path, home)
    ui.secrets = _secrets(simulator)
    try:
        ui.startup_seconds = ui.wait_until_up()
        yield ui
    finally:
        ui.stop()


ASSET_NODES = "{ assetNodes { assetKey { path } groupName jobNames dependencyKeys { path } } }"
RUNS = """query($filter: RunsFilter) { runsOrError(filter: $filter, limit: 10) {
  ... on Runs { results { runId status tags { key value } } } } }"""
LATEST_MATERIALIZATION = """query($key: AssetKeyInput!) { assetOrError(assetKey: $key) {
  ... on Asset { assetMaterializations(limit: 1) { runId partition } } } }"""


def _key(path: list[str]) -> str:
    return "/".join(path)


def _upstream(nodes: dict[str, dict], key: str) -> set[str]:
    seen: set[str] = set()
    todo = [key]
    while todo:
        for dep in nodes[todo.pop()]["deps"]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def _runs_for_partition(ui: DagsterUI, partition: str) -> list[dict]:
    data = ui.graphql(RUNS, {"filter": {"pipelineName": JOB,
                                        "tags": [{"key": "dagster/partition", "value": partition}]}})
    return data["runsOrError"]["results"]


def _shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def _retry(action, attempts: int = 3, pause: float = 3.0):
    for attempt in range(attempts):
        try:
            return action()
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(pause)


def test_dagster_ui_lineage_and_partition_run(dagster_ui: DagsterUI):
    ui = dagster_ui
    (ARTIFACTS / "ui_failure.png").unlink(missing_ok=True)
    partition = (datetime.now(timezone.utc) - timedelta(days=1)).date().isoformat()

    # -- the definitions, through /graphql: groups, the job, raw -> models -> marts ------------
    nodes = {
        _key(n["assetKey"]["path"]): {"group": n["groupName"], "jobs": n["jobNames"],
                                      "deps": [_key(d["path"]) for d in n["dependencyKeys"]]}
        for n in ui.graphql(ASSET_NODES)["assetNodes"]
    }
    synced = {f"raw/{t}" for t in ("conversations", "messages", "participants", "users", "contacts",
                                    "status_events")}
    streams = {f"raw/{t}" for t in ("meetings", "meeting_changes", "playbooks", "playbook_goals_defined",
                                     "accounts")}
    raw = {k for k in nodes if k.startswith("raw/")}
    # The sync's six tables and the streams', plus the inbox path's three (webhook and widget
    # events, goals met).
    assert synced | streams <= raw
    assert raw - synced - streams == {"raw/webhook_events", "raw/widget_events", "raw/playbook_goals"}
    assert {nodes[k]["group"] for k in raw - synced - streams} == {"drift_webhooks"}
    assert {nodes[k]["group"] for k in synced | streams} == {"drift_raw"}
    raw = synced
    marts = {k for k, n in nodes.items() if n["group"] == "drift_marts"}
    assert "marts/fct_conversations" in marts and all(k.startswith("marts/") for k in marts)
    assert {"raw/conversations", "raw/messages", "raw/status_events"} <= _upstream(nodes, "marts/fct_conversations")
    assert "raw/users" in _upstream(nodes, "marts/agg_agent_daily")
    job_assets = {k for k, n in nodes.items() if JOB in n["jobs"]}
    assert raw | marts <= job_assets
    # The webhook job: the inbox's assets, then the same dbt models (dbt's own materializations).
    assert "raw/webhook_events" in _upstream(nodes, "marts/fct_conversations")
    webhook_job = {k for k, n in nodes.items() if "apply_webhooks_job" in n["jobs"]}
    assert {"raw/webhook_events", "raw/widget_events"} | marts <= webhook_job and not webhook_job & raw
    assert not job_assets & {"raw/webhook_events", "raw/widget_events"}

    # -- no secret in what the UI serves: each resource's configured values name the
    # variables (ENV_VAR), and no asset says a secret's value -----------------------------------
    resources = ui.graphql(RESOURCES)
    drift = next(r for entry in resources["workspaceOrError"]["locationEntries"]
                 for repo in entry["locationOrLoadError"]["repositories"]
                 for r in repo["allTopLevelResourceDetails"] if r["name"] == "drift")
    shown = {v["key"]: (v["type"], v["value"]) for v in drift["configuredValues"]}
    assert shown["access_token"] == ("ENV_VAR", "DRIFT_ACCESS_TOKEN")
    assert shown["token_key"] == ("ENV_VAR", "DRIFT_TOKEN_KEY")
    assert _secrets_in(json.dumps(resources), ui.secrets) == []
    assert _secrets_in(json.dumps(ui.graphql(ASSET_DETAILS)), ui.secrets) == []

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)
        # A fresh profile gets the "Join the Dagster community" dialog, whenever it shows up.
        community = page.get_by_role("dialog").filter(has_text="Join the Dagster community")
        page.add_locator_handler(community, lambda d: d.get_by_role("button", name="Skip").click())
        # Before the first webhook run, Dagster warns that the inbox's assets (upstream of the
        # staging models, written by the sensor's job) were never materialized; a sync does not
        # need them.
        unmaterialized = page.get_by_role("dialog").filter(has_text="have not been materialized yet")
        page.add_locator_handler(unmaterialized, lambda d: d.get_by_role("button", name="Confirm").click())
        try:
            # -- the catalog: raw and marts assets with their groups ---------------------------
            for key, group in (("raw/conversations", "drift_raw"), ("raw/messages", "drift_raw"),
                               ("marts/fct_conversations", "drift_marts")):
                page.goto(f"{ui.url}/assets/{key}")
                expect(page.get_by_text(key.split("/")[1], exact=True).first).to_be_visible()
                expect(page.get_by_text(group, exact=True).first).to_be_visible()

            # -- lineage: fct_conversations' upstream graph reaches the drift_raw group ---------
            page.goto(f"{ui.url}/assets/marts/fct_conversations")
            _retry(lambda: page.get_by_role("tab", name="Lineage").click())
            _retry(lambda: page.get_by_role("button", name="Upstream").click())
            all_depth = page.get_by_role("button", name="All", exact=True)
            if all_depth.count() and all_depth.first.is_enabled():
                all_depth.first.click()
            # (The graph renders what is in view: the raw nodes checked are the ones it lays out
            # on screen; /graphql above checks the whole upstream set.) fct_conversations has
            # enough upstream models that the raw group can lie above the view: zoom out (the
            # graph's zoom-out control, an icon labelled zoom_out) until it shows.
            raw_group = page.get_by_text("drift_raw", exact=True).first
            zoom_out = page.locator('[aria-label="zoom_out"]').first
            for _ in range(8):
                if raw_group.is_visible() or not zoom_out.count():
                    break
                zoom_out.click()
                page.wait_for_timeout(500)
            for text in ("drift_raw", "drift_models", "drift_marts", "messages", "status_events"):
                expect(page.get_by_text(text, exact=True).first).to_be_visible()
            _shot(page, "ui_lineage_fct_conversations.png")

            # -- launch one partition of the whole job (raw + dbt) from the UI --------------------
            def launch():
                if _runs_for_partition(ui, partition):
                    return  # an earlier attempt got through
                page.goto(f"{ui.url}/locations/{LOCATION}/jobs/{JOB}")
                expect(page.get_by_text("drift_raw", exact=True).first).to_be_visible()  # the job's graph
                # (an icon's label comes first in the button's accessible name)
                page.get_by_role("button", name=re.compile(r"Materialize all")).first.click()
                dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
                expect(dialog).to_contain_text(f"materialize {len(job_assets)} assets")
                box = dialog.get_by_role("textbox").first
                box.fill(partition)
                box.press("Enter")
                expect(box).to_have_value(partition)
                expect(dialog).to_contain_text("1 partition")
                dialog.get_by_role("button", name=re.compile(r"Launch 1 run")).first.click()
                deadline = time.monotonic() + 60
                while not _runs_for_partition(ui, partition):
                    assert time.monotonic() < deadline, "no run appeared after Launch"
                    time.sleep(1)

            _retry(launch)
            runs = _runs_for_partition(ui, partition)
            assert len(runs) == 1, runs
            run_id = runs[0]["runId"]
            tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
            assert tags.get("dagster/from_ui") == "true"

            # -- the run succeeds (GraphQL), and its page says so (UI) ----------------------------
            deadline = time.monotonic() + RUN_TIMEOUT
            status = None
            while time.monotonic() < deadline:
                status = _runs_for_partition(ui, partition)[0]["status"]
                if status in ("SUCCESS", "FAILURE", "CANCELED"):
                    break
                time.sleep(3)
            page.goto(f"{ui.url}/runs/{run_id}")
            assert status == "SUCCESS", f"run {run_id} ended {status}:\n{ui.log_tail()}"
            expect(page.get_by_text("Success", exact=True).first).to_be_visible()

            # -- raw was materialized for that partition by that run, and the marts (whole
            # tables, unpartitioned) by the same run ------------------------------------------
            for path, expected_partition in ((["raw", "messages"], partition),
                                             (["marts", "fct_conversations"], None),
                                             (["marts", "agg_daily_metrics"], None)):
                data = ui.graphql(LATEST_MATERIALIZATION, {"key": {"path": path}})
                latest = data["assetOrError"]["assetMaterializations"]
                assert latest and latest[0]["runId"] == run_id, (path, latest)
                assert latest[0]["partition"] == expected_partition, (path, latest)

            # ... and the serving copy holds the marts.
            import duckdb

            with duckdb.connect(str(ui.home / "serving" / "analytics.duckdb"), read_only=True) as conn:
                assert conn.execute("SELECT count(*) FROM marts.fct_conversations").fetchall()[0][0] > 0

            page.goto(f"{ui.url}/runs/{run_id}")
            expect(page.get_by_text("Success", exact=True).first).to_be_visible()
            _shot(page, "ui_run_success.png")

            # -- after a whole run, nothing Dagster stored or serves holds a secret: the run's
            # config, tags and events, and every file under the Dagster home (event log, run
            # storage, compute logs) and the pipeline's logs --------------------------------------
            details = ui.graphql(RUN_DETAILS, {"runId": run_id})
            assert len(details["logsForRun"]["events"]) > 20
            assert _secrets_in(json.dumps(details), ui.secrets) == []
            assert _secrets_in(json.dumps(ui.graphql(RESOURCES)), ui.secrets) == []
            for root in (ui.home / "dagster", ui.home / "logs"):
                assert _secrets_in_files(root, ui.secrets) == {}, root
        except BaseException:
            try:
                _shot(page, "ui_failure.png")
            except Exception:
                pass
            raise
        finally:
            browser.close()
