"""Shared fixtures: a seeded simulator on loopback and an isolated $DRIFT_PIPELINE_HOME."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import glob
import hashlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import httpx
import pytest

from drift_pipeline.settings import Settings
from dependencies import unavailable
from drift_pipeline.webhooks.receiver import create_app

SIM_END = datetime(2026, 11, 15, tzinfo=timezone.utc)

# Hypothesis keeps its example database and caches in ./.hypothesis by default: in the checkout.
# Read when it first writes, so set before any test runs; each worker gets a folder of its own.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", tempfile.mkdtemp(prefix="drift-hypothesis-"))

# The files that take longest (measured: `--durations`, summed per file), first. pytest-xdist
# hands whole files to its two workers in collection order (`--no-loadscope-reorder` in
# pyproject.toml), each the next file when it is nearly done with its last: alphabetically, or
# by number of tests (xdist's default), the longest came last and one worker ran them alone
# for minutes at the end of the suite.
LONGEST_FIRST = ("test_dbt_models.py", "test_webhook_apply.py", "test_ui_browser.py", "test_runner.py",
                 "test_history_backfill.py", "test_sync.py", "test_postgres.py", "test_retention.py",
                 "test_marts_readers.py",
                 "test_dbt_run_dir.py", "test_serving.py", "test_sensor.py", "test_end_to_end.py", "test_orgs.py",
                 "test_erasure.py", "test_client.py", "test_app_disconnected.py", "test_transcripts_export.py",
                 "test_settings.py")


# Fixtures that bring dbt, a whole sync, a PostgreSQL server or the Dagster UI with them: a test
# that uses one is `slow` and stays out of `make test-fast` (the inner loop's lane).
SLOW_FIXTURES = frozenset({"dbt_parse_seed", "sim_env", "synced", "postgres_server", "dagster_ui"})
# Files whose every test runs dbt against a warehouse of its own.
SLOW_FILES = frozenset({"test_dbt_models.py", "test_dbt_run_dir.py", "test_dbt_spill.py"})


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order within a file kept


def _worker_home(tmp_path_factory) -> Path:
    """Where this worker's tests keep their pipeline home: one path, emptied for each test.
    dbt's saved parse is valid only for the profile it was made with, and the profile holds
    the home's path (the warehouse, DuckDB's temp folder): a new path per test made every
    test's first dbt command parse the whole project again (`dbt_parse_seed`)."""
    return tmp_path_factory.getbasetemp() / "home"


@pytest.fixture
def home(tmp_path_factory, monkeypatch):
    """An isolated pipeline home, empty and not created yet; the environment points
    everything at it. Each test starts without what an earlier test left there."""
    path = _worker_home(tmp_path_factory)
    if path.exists():
        shutil.rmtree(path)
    monkeypatch.setenv("DRIFT_PIPELINE_HOME", str(path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    # A run writes where the deployment's processes read (the Postgres URLs Dagster's run
    # workers need): nothing an earlier test's run set may reach this one.
    for name in ("DRIFT_ACCESS_TOKEN", "DRIFT_CLIENT_ID", "DRIFT_CLIENT_SECRET", "DRIFT_REFRESH_TOKEN",
                 "DRIFT_TOKEN_KEY", "DRIFT_WEBHOOK_TOKEN", "DRIFT_WAREHOUSE_URL", "DRIFT_DAGSTER_PG_URL",
                 "DRIFT_DAGSTER_STORAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DRIFT_PII_SALT", "test-salt")  # the same hashes in every test home
    return path


@pytest.fixture
def make_simulator():
    """Start simulators on 127.0.0.1 (free ports); all are stopped at teardown."""
    from drift_simulator import Simulator, SimulatorConfig, SimulatorServer

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


@pytest.fixture(scope="session")
def _dbt_parse_seed(tmp_path_factory) -> Path:
    """dbt's saved parse of the project (partial_parse.msgpack) as the pipeline's dbt commands
    make it in this worker's home: its vars, its profile. Parsed once per worker (a dbt process
    and a full parse: about 12 s on a quiet 2-core machine); `dbt_parse_seed` puts it in a
    test's home."""
    from drift_pipeline.dbt_project import DBT_PROJECT_DIR, PARTIAL_PARSE, VENV_DBT, dbt_vars

    target = tmp_path_factory.mktemp("dbt-parse-seed")
    settings = Settings.from_env({"DRIFT_PIPELINE_HOME": str(_worker_home(tmp_path_factory))})
    parsed = subprocess.run(
        [str(VENV_DBT) if VENV_DBT.exists() else "dbt", "parse", *dbt_vars(settings), "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(target), "--log-path", str(target)],
        capture_output=True, text=True, timeout=600)
    assert parsed.returncode == 0, parsed.stdout[-3000:] + parsed.stderr[-3000:]
    return target / PARTIAL_PARSE


@pytest.fixture
def dbt_parse_seed(home, _dbt_parse_seed):
    """The home starts as one where dbt ran before: with an earlier run's folder holding dbt's
    saved parse, which the first dbt command of the test starts from (`dbt_run_dir`), as every
    command after the first in a home does. It saves the full parse (about 6-9 s of a 2-core
    machine) a new home's first dbt command makes. dbt checks the seed as it checks any saved
    parse: it parses the files changed since, and everything when the vars or profile differ."""
    from drift_pipeline.dbt_project import PARTIAL_PARSE

    earlier = home / "dbt" / "00000000T000000-seeded-parse"
    earlier.mkdir(parents=True)
    shutil.copyfile(_dbt_parse_seed, earlier / PARTIAL_PARSE)
    return earlier


@pytest.fixture
def sim_env(request, home, dbt_parse_seed, make_simulator, monkeypatch):
    """A small simulated workspace (3 days x 40 conversations) with the env pointing at it.
    Serves Drift's current shapes; `@pytest.mark.parametrize("sim_env", ["current", "legacy"],
    indirect=True)` runs a test against both. The home starts with dbt's saved parse
    (`dbt_parse_seed`)."""
    shapes = getattr(request, "param", "current")
    simulator, server = make_simulator(seed=11, days=3, conversations_per_day=40, rate_limit_per_minute=60_000,
                                       shapes=shapes)
    monkeypatch.setenv("DRIFT_API_BASE_URL", server.base_url)
    monkeypatch.setenv("DRIFT_ACCESS_TOKEN", simulator.config.static_access_token)
    return simulator, Settings.from_env()


def sync(settings, start, end, *, overlap_minutes=60, org_id=None, full_window=False, **client_kw):
    from drift_pipeline.drift.client import DriftClient
    from drift_pipeline.ingest.sync import ConversationSync
    from drift_pipeline.warehouse.connection import open_warehouse

    async def go():
        async with DriftClient.from_settings(settings, **client_kw) as client:
            with open_warehouse(settings) as conn:
                sync = ConversationSync(client, conn, salt=settings.secret("pii_salt"), org_id=org_id,
                                        overlap=timedelta(minutes=overlap_minutes), full_window=full_window)
                return await sync.run(start, end)

    settings.ensure_dirs()
    return asyncio.run(go())


def _world_fingerprint(simulator) -> str:
    """What a sync from `simulator` reads, as one hash: its configuration and its world's data
    (conversations, messages, status histories, users, contacts, its clock). A test that
    changed the world before syncing gets another hash."""
    world = simulator.world
    with world.lock:
        data = [repr(simulator.config), simulator.latency_seconds, world.now_ms, world.conversations, world.messages,
                world.status_history, world.users, world.contacts]
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=repr).encode()).hexdigest()


@pytest.fixture(scope="session")
def _synced_homes(tmp_path_factory) -> dict:
    """This worker's homes as a sync left them, each under the key of what made it (see
    `synced`), with the sync's stats."""
    return {"root": tmp_path_factory.mktemp("synced-homes"), "stats": {}}


@pytest.fixture
def synced(_synced_homes):
    """`synced(simulator, settings, start, end, **options)`: the new home `settings.home` as
    `sync(settings, start, end, **options)` leaves it, and that sync's stats.

    The same sync from the same simulator data with the same settings writes the same rows,
    so it runs once per worker and later tests get a copy of the home it wrote (its warehouse
    and state files, which hold no path of the home); each test still has its own simulator
    and its own copy to change. For tests whose subject is what comes after a sync (webhook
    apply, erasure, exports): a sync takes 3-4 s, and many tests start with the same one."""

    def go(simulator, settings: Settings, start, end, **options):
        from drift_pipeline.dbt_project import PARTIAL_PARSE

        present = [p for p in settings.home.rglob("*") if p.is_file() and p.name != PARTIAL_PARSE] \
            if settings.home.exists() else []
        assert not present, f"synced() fills a new home; this one holds {present[:3]}"
        assert not simulator.faults.pending, "a sync with faults injected is the test's own: call sync()"
        unkeyed = replace(settings, home=Path("."), api_base_url="")  # the test's own paths and port
        key = hashlib.sha256(repr((_world_fingerprint(simulator), asdict(unkeyed), str(start), str(end),
                                   sorted(options.items()))).encode()).hexdigest()[:16]
        template = _synced_homes["root"] / key
        if key not in _synced_homes["stats"]:
            stats = sync(settings, start, end, **options)
            # dbt's folder is the home's dbt_parse_seed, not the sync's.
            shutil.copytree(settings.home, template,
                            ignore=lambda folder, names: ["dbt"] if Path(folder) == settings.home else [])
            _synced_homes["stats"][key] = copy.deepcopy(stats)
            return stats
        shutil.copytree(template, settings.home, dirs_exist_ok=True)
        return copy.deepcopy(_synced_homes["stats"][key])

    return go


def run_days(settings, start, end, **options):
    """What `drift-pipeline sync --start --end` runs, in this process: one Dagster run of the
    definitions built for `settings` (test resources), recorded in the home's instance, with
    the environment the CLI's entry point gives Dagster (restored after)."""
    from drift_pipeline.instance import dagster_environment
    from drift_pipeline.runner import materialize_days

    saved = dict(os.environ)
    os.environ.update(dagster_environment(settings))
    try:
        return materialize_days(settings, start, end, **options)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def mart_rows(database, *, skip: tuple[str, ...] = ()) -> dict[str, tuple[list[str], list[tuple]]]:
    """Every mart table in the DuckDB file `database` (the warehouse or a serving copy): its
    columns and its rows in order. The `_`-prefixed bookkeeping columns (when a row was built,
    not what it holds) and the `skip` ones are left out."""
    conn = duckdb.connect(str(database), read_only=True)
    try:
        out = {}
        for (table,) in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts' "
                                     "AND table_type = 'BASE TABLE' ORDER BY 1").fetchall():
            columns = [c for (c,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' AND table_name = ? "
                "ORDER BY ordinal_position", [table]).fetchall() if not c.startswith("_") and c not in skip]
            out[table] = (columns, conn.execute(f"SELECT {', '.join(columns)} FROM marts.{table} ORDER BY ALL").fetchall())
        return out
    finally:
        conn.close()


def query(settings, sql, params=None):
    conn = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return conn.execute(sql, params or []).fetchall()
    finally:
        conn.close()


def deliver(simulator, settings: Settings, payloads: list[dict], *, spacing_s: float = 0.0) -> list[dict]:
    """POST payloads to the real receiver as the simulated Drift sends them (its headers); the
    answers. `spacing_s` apart, so each event gets its own receive time."""
    receiver_settings = replace(settings, webhook_token=simulator.config.webhook_token)

    async def go() -> list[dict]:
        answers = []
        async with running_receiver(receiver_settings) as http:
            for payload in payloads:
                response = await http.post("/webhooks", json=payload,
                                           headers=simulator.config.webhook_headers())
                assert response.status_code == 200, response.text
                answers.append(response.json())
                await asyncio.sleep(spacing_s)
        return answers

    return asyncio.run(go())


# --- the webhook receiver, in process --------------------------------------------------------
# Driven through httpx.ASGITransport with the app's lifespan, as a server runs it; `client`
# uses the requesting module's `settings` fixture.

@pytest.fixture
def anyio_backend():
    return "asyncio"


@contextlib.asynccontextmanager
async def running_receiver(settings: Settings):
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
            yield http


@pytest.fixture
async def client(settings: Settings, anyio_backend):
    async with running_receiver(settings) as http:
        yield http


# -- a real PostgreSQL server for the Postgres path ----------------------------------------------
@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh database on the server; its URL."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


def _postgres_bin_dir() -> Path | None:
    """Debian's server binaries (initdb, pg_ctl), newest major version first."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0, reverse=True)
    if found:
        return Path(found[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL on 127.0.0.1 (free port, temp data dir, trust auth on loopback),
    stopped at the end of the session; skipped with the reason where it cannot run (failed
    under CI: tests/dependencies.py).

    initdb refuses to run as root, so as root the server runs as the `postgres` user (Debian's
    package creates it) or `nobody`, owning its data dir."""
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        unavailable("no PostgreSQL server binaries (Debian's postgresql package; `make postgres-deps` installs it as root)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install -e '.[postgres]')")
    run_as: list[str] = []
    owner = None
    if os.geteuid() == 0:
        for name in ("postgres", "nobody"):
            try:
                owner = pwd.getpwnam(name)
                break
            except KeyError:
                continue
        runuser = shutil.which("runuser")
        if owner is None or runuser is None:
            unavailable("running as root with no unprivileged user (postgres/nobody) or runuser to start PostgreSQL")
        run_as = [runuser, "-u", owner.pw_name, "--"]
    # Not under pytest's tmp_path: its root-owned 0700 parents would lock the server's user out.
    root = Path(tempfile.mkdtemp(prefix="drift-pg-"))
    data = root / "data"
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    user = "drift"

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*run_as, *args], capture_output=True, text=True, timeout=timeout, cwd=root)

    init = run(str(bin_dir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8",
               "--locale=C", "--no-sync")
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        # The server is installed but would not initialize: a failure, never a skip.
        pytest.fail(f"initdb failed: {(init.stderr or init.stdout).strip().splitlines()[-1:]}")
    # Durability is not what a test measures: no fsync, so the server is quick on a busy disk.
    options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} "
               "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    start = run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60",
                "-o", options, "start")
    if start.returncode != 0:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else start.stderr
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {log.strip().splitlines()[-1:]}")
    try:
        yield PostgresServer("127.0.0.1", port, user)
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def require_browser():
    """Fails the test (browser_marks adds it under CI) where Chromium or Playwright is missing."""
    from browser import missing_browser

    reason = missing_browser()
    if reason:
        unavailable(reason)
