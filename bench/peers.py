"""Side by side with the peers: Airbyte's Drift connector, dlt's `rest_api` and drift-pipeline.

    .venv/bin/python bench/peers.py [--workdir bench/results/peers-work] [--out bench/results/peers.json]
                                    [--tools drift-pipeline,dlt,airbyte] [--airbyte-python PATH]

Each tool gets a fresh copy of the bundled simulator (same seed: 7 days x 100 conversations
ending at noon UTC, 600 requests/min, Drift's current shapes, `links.next` on the simulator's own
loopback URL so every tool can follow it), backfills the 7 days, then the simulator advances 2 simulated hours
(new conversations, replies, closes: the same changes for every tool) and the tool runs its
incremental re-sync. The simulator counts every call (by route, 429s included); completeness is
what the tool loaded against what the simulator holds for the window.

The peers run in their own virtualenvs under `<workdir>/venvs/` (their pins conflict with ours;
nothing of theirs enters the project's dependencies), built on first use and reused while their
stamp matches: `airbyte-source-drift` 0.3.17 (airbyte-cdk 0.90 does not start on Python 3.11,
so its venv uses a Python 3.10 when one is found) and `dlt` 1.31. drift-pipeline runs in this
process through its real code path (`DriftClient` + `ConversationSync`, raw tables only).

Runs by hand, not in `make test`. Every figure is measured in this run; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import partial
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drift_pipeline.drift.client import DriftClient  # noqa: E402
from drift_simulator import Simulator, SimulatorConfig, SimulatorServer  # noqa: E402
from drift_pipeline.ingest.sync import ConversationSync  # noqa: E402
from drift_pipeline.settings import Settings  # noqa: E402
from drift_pipeline.warehouse.connection import open_warehouse  # noqa: E402

SEED, DAYS, PER_DAY, RATE_LIMIT = 7, 7, 100, 600
ADVANCE_MINUTES = 120
# Noon UTC: the 2 hours after it are busy (17 new conversations, replies, closes), as an hourly
# run's are in the afternoon; after midnight they are nearly empty and a re-sync proves little.
END = datetime(2026, 11, 15, 12, tzinfo=timezone.utc)
WINDOW_START = END - timedelta(days=DAYS)
TOOLS = ("drift-pipeline", "dlt", "airbyte")
AIRBYTE_REQUIREMENT = "airbyte-source-drift==0.3.17"
DLT_REQUIREMENT = "dlt[duckdb]==1.31.0"
PEER_TIMEOUT_SECONDS = 420  # one peer step; the whole bench stays under 10 minutes when all goes well


class PeerError(RuntimeError):
    """A peer could not be installed, started or run; the message says which and why."""


# ---------------------------------------------------------------------- the simulator and its truth
def new_simulator() -> Simulator:
    """The same seeded workspace for every tool."""
    return Simulator(SimulatorConfig(seed=SEED, days=DAYS, conversations_per_day=PER_DAY, end=END,
                                     rate_limit_per_minute=RATE_LIMIT))


def start_simulator() -> tuple[Simulator, SimulatorServer]:
    """A fresh simulator on a free loopback port, its `links.next` on that port."""
    simulator = new_simulator()
    server = SimulatorServer(simulator).start()
    # Drift's links name Drift's host; here the "Drift host" is the simulator, so a peer that
    # follows links as given (dlt's json_link) reaches it. Our client re-bases either way.
    simulator.config.link_host = server.base_url
    return simulator, server


@dataclass
class Truth:
    """What the simulator holds for the window: what a complete tool has loaded."""

    updated_at: dict[int, int]  # conversation id -> updatedAt (ms)
    message_ids: set[int]
    edit_ids: set[int]  # messages of type "edit" (edits and deletes of earlier messages)
    long_threads: dict[int, set[int]]  # conversations with more than 50 messages -> their message ids

    def expected(self) -> dict:
        return {"conversations": len(self.updated_at), "messages": len(self.message_ids),
                "edits_deletes": len(self.edit_ids), "threads_over_50": len(self.long_threads)}


def world_truth(simulator: Simulator) -> Truth:
    """The simulator's conversations updated since the window start, with their messages."""
    start_ms = int(WINDOW_START.timestamp() * 1000)
    world = simulator.world
    with world.lock:
        conversations = {cid: c["updatedAt"] for cid, c in world.conversations.items()
                         if c["updatedAt"] >= start_ms}
        threads = {cid: world.messages.get(cid, []) for cid in conversations}
        return Truth(
            updated_at=conversations,
            message_ids={m["id"] for thread in threads.values() for m in thread},
            edit_ids={m["id"] for thread in threads.values() for m in thread if m["type"] == "edit"},
            long_threads={cid: {m["id"] for m in thread} for cid, thread in threads.items() if len(thread) > 50},
        )


@dataclass
class Loaded:
    """What a tool holds after a step, in comparable terms."""

    updated_at: dict[int, int]  # conversation id -> updatedAt (ms) as stored
    message_ids: set[int]
    rows: dict[str, int] = field(default_factory=dict)  # rows per entity (table or stream)


def completeness(truth: Truth, loaded: Loaded) -> dict:
    """Loaded against expected: conversations, messages, edits/deletes, long threads, freshness."""
    held = set(loaded.updated_at)
    return {
        "conversations": len(held & set(truth.updated_at)),
        "messages": len(loaded.message_ids & truth.message_ids),
        "edits_deletes": len(loaded.message_ids & truth.edit_ids),
        "threads_over_50": sum(1 for ids in truth.long_threads.values() if ids <= loaded.message_ids),
        # Stored at the conversation's latest updatedAt: the re-sync picked up its change.
        "conversations_current": sum(1 for cid, ms in truth.updated_at.items()
                                     if loaded.updated_at.get(cid) == ms),
    }


def measure(simulator: Simulator, step) -> tuple[dict, Loaded]:
    """Runs one step (a callable returning `Loaded`) and what the simulator counted meanwhile."""
    simulator.stats.reset()
    # Each step starts with the rate-limit bucket empty, as a run scheduled hours after the last
    # one does; otherwise a step would pay for the previous step's burst.
    simulator.set_rate_limit(RATE_LIMIT)
    started = time.monotonic()
    loaded = step()
    seconds = time.monotonic() - started
    stats = simulator.stats.snapshot()
    return {"calls": stats["requests_total"], "http_429": stats["responses_429"], "seconds": round(seconds, 1),
            "by_route": stats["by_route"]}, loaded


class Tool(ABC):
    """One tool under test. `prepare` runs before the counted steps (versions, `check`, ...);
    `errors` lists what the tool reported failing while it still finished."""

    name = ""
    errors: list[str] = []

    def prepare(self, base_url: str) -> dict:
        return {}

    @abstractmethod
    def backfill(self, base_url: str) -> Loaded:
        """Loads the 7-day window from the simulator at `base_url`."""

    @abstractmethod
    def resync(self, base_url: str) -> Loaded:
        """The tool's incremental run after the simulator moved on."""

    def more_steps(self) -> dict:
        """Further steps measured after the re-sync, nothing changed meanwhile: name -> step."""
        return {}


def step_result(simulator: Simulator, step, base_url: str) -> dict:
    """One measured step: calls, seconds, completeness against the simulator, rows loaded."""
    counted, loaded = measure(simulator, partial(step, base_url))
    return {**counted, **completeness(world_truth(simulator), loaded), "rows": loaded.rows}


def run_tool(tool: Tool) -> dict:
    """Backfill, advance the simulator 2 simulated hours, re-sync: on one fresh simulator."""
    simulator, server = start_simulator()
    try:
        result: dict = {"setup": tool.prepare(server.base_url)}
        setup_stats = simulator.stats.snapshot()
        if setup_stats["requests_total"]:
            result["setup"]["calls"] = setup_stats["by_route"]
        result["backfill"] = step_result(simulator, tool.backfill, server.base_url)
        simulator.world.advance(ADVANCE_MINUTES)
        result["resync"] = step_result(simulator, tool.resync, server.base_url)
        for name, step in tool.more_steps().items():
            result[name] = step_result(simulator, step, server.base_url)
        return result
    finally:
        server.stop()


def expected_counts() -> dict:
    """What a complete tool holds after each step (the same seeded world and changes for all),
    and what the 2 simulated hours changed."""
    simulator = new_simulator()
    before = world_truth(simulator)
    simulator.world.advance(ADVANCE_MINUTES)
    after = world_truth(simulator)
    changes = {"new_conversations": len(after.updated_at.keys() - before.updated_at.keys()),
               "changed_conversations": sum(1 for cid, ms in before.updated_at.items()
                                            if after.updated_at.get(cid) != ms),
               "new_messages": len(after.message_ids - before.message_ids)}
    return {"backfill": before.expected(), "resync": {**after.expected(), **changes}}


# ---------------------------------------------------------------------- drift-pipeline
class DriftPipeline(Tool):
    """Our real path: DriftClient + ConversationSync into raw tables (no dbt), like `sync --no-dbt`.

    The re-sync is the scheduled run's window: the same 7-day start, its end moved to now; it
    stops listing at what the backfill left exact. The weekly heal run (`sync --full-window`)
    walks the whole window again: measured after the re-sync as `heal`."""

    name = "drift-pipeline"

    def __init__(self, home: Path):
        self.home = home

    def backfill(self, base_url: str) -> Loaded:
        return self._sync(base_url, END)

    def resync(self, base_url: str) -> Loaded:
        return self._sync(base_url, END + timedelta(minutes=ADVANCE_MINUTES))

    def more_steps(self) -> dict:
        return {"heal": lambda url: self._sync(url, END + timedelta(minutes=ADVANCE_MINUTES), full_window=True)}

    def _sync(self, base_url: str, window_end: datetime, *, full_window: bool = False) -> Loaded:
        settings = Settings.from_env({"DRIFT_PIPELINE_HOME": str(self.home), "DRIFT_API_BASE_URL": base_url,
                                      "DRIFT_ACCESS_TOKEN": SimulatorConfig().static_access_token})
        settings.ensure_dirs()

        async def go() -> None:
            async with DriftClient.from_settings(settings) as client:
                with open_warehouse(settings) as conn:
                    sync = ConversationSync(client, conn, salt="bench", overlap=timedelta(hours=1),
                                            full_window=full_window)
                    await sync.run(WINDOW_START.replace(tzinfo=None), window_end.replace(tzinfo=None))

        asyncio.run(go())
        return self._loaded(settings.warehouse_path)

    @staticmethod
    def _loaded(warehouse: Path) -> Loaded:
        conn = duckdb.connect(str(warehouse), read_only=True)
        try:
            updated = dict(conn.execute(
                "SELECT conversation_id, epoch_ms(updated_at) FROM raw.conversations").fetchall())
            messages = {r[0] for r in conn.execute("SELECT message_id FROM raw.messages").fetchall()}
            tables = ("conversations", "messages", "participants", "contacts", "users", "status_events")
            rows = {table: conn.execute(f"SELECT count(*) FROM raw.{table}").fetchall()[0][0] for table in tables}
        finally:
            conn.close()
        return Loaded(updated, messages, rows)


# ---------------------------------------------------------------------- peer virtualenvs and processes
def python_310() -> str | None:
    """A Python 3.10 interpreter (airbyte-cdk 0.90 does not start on 3.11), or None."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = [str(c) for c in sorted((pyenv_root / "versions").glob("3.10.*/bin/python3.10"), reverse=True)]
    if shutil.which("python3.10"):
        candidates.append(shutil.which("python3.10"))
    for candidate in candidates:
        if subprocess.run([candidate, "-c", "import venv"], capture_output=True).returncode == 0:
            return candidate
    return None


def ensure_venv(path: Path, requirement: str, python: str) -> Path:
    """A virtualenv at `path` with `requirement` installed by `python`; reused while its stamp matches."""
    stamp = path / ".bench-stamp"
    wanted = f"{requirement} {python}"
    if stamp.exists() and stamp.read_text() == wanted:
        return path
    shutil.rmtree(path, ignore_errors=True)
    print(f"  installing {requirement} into {path} with {python} (first run only: a few minutes)", flush=True)
    for command in ([python, "-m", "venv", str(path)],
                    [str(path / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", requirement]):
        try:
            done = subprocess.run(command, capture_output=True, text=True)
        except OSError as exc:
            raise PeerError(f"could not run {command[0]}: {exc.strerror}") from exc
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise PeerError(f"could not install {requirement} with {python}: {last}")
    stamp.write_text(wanted)
    return path


class PeerProcess:
    """Runs a peer's commands: its own venv's Python, no telemetry, bounded in time, stderr to a log."""

    def __init__(self, venv: Path, run_dir: Path, log_name: str, **env: str):
        self.python = str(venv / "bin" / "python")
        self.run_dir = run_dir
        self.log = run_dir / log_name
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        self.env.update(RUNTIME__DLTHUB_TELEMETRY="false", DLT_DATA_DIR=str(run_dir / "dlt-data"), **env)

    def run(self, *args: str) -> subprocess.CompletedProcess:
        try:
            with self.log.open("a") as err:
                return subprocess.run([self.python, *args], stdout=subprocess.PIPE, stderr=err, text=True,
                                      env=self.env, cwd=self.run_dir, timeout=PEER_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired as exc:
            raise PeerError(f"{self.python} {args[0]} did not finish within {PEER_TIMEOUT_SECONDS} s; "
                            f"see {self.log}") from exc


# ---------------------------------------------------------------------- dlt
class Dlt(Tool):
    """dlt's `rest_api` source (bench/peer_dlt.py) in its own venv; its state persists between steps,
    so the second run is dlt's own incremental re-sync."""

    name = "dlt"

    def __init__(self, venv: Path, run_dir: Path):
        self.process = PeerProcess(venv, run_dir, "dlt.log")
        self.run_dir = run_dir

    def prepare(self, base_url: str) -> dict:
        answer = self.process.run("-c", "import dlt, sys; print(dlt.__version__, sys.version.split()[0])")
        version, _, python = answer.stdout.strip().partition(" ")
        return {"version": version, "python": python}

    def backfill(self, base_url: str) -> Loaded:
        return self._run(base_url)

    def resync(self, base_url: str) -> Loaded:
        return self._run(base_url)

    def _run(self, base_url: str) -> Loaded:
        out = self.run_dir / "dlt-loaded.json"
        done = self.process.run(
            str(ROOT / "bench" / "peer_dlt.py"), "--base-url", base_url,
            "--token", SimulatorConfig().static_access_token,
            "--initial-value", str(int(WINDOW_START.timestamp() * 1000)),
            "--pipelines-dir", str(self.run_dir / "dlt-pipelines"), "--duckdb", str(self.run_dir / "dlt.duckdb"),
            "--out", str(out))
        if done.returncode != 0:
            raise PeerError(f"dlt failed (exit {done.returncode}); see {self.process.log}")
        held = json.loads(out.read_text())
        return Loaded({int(k): v for k, v in held["conversations"].items()}, set(held["message_ids"]),
                      held["rows"])


# ---------------------------------------------------------------------- Airbyte
def airbyte_connector(venv: Path, run_dir: Path, base_url: str) -> Path:
    """A copy of the installed `source_drift` package whose manifest points at `base_url`; the
    folder to put first on PYTHONPATH.

    The connector loads `manifest.yaml` from its own package, so the copy is the connector as
    shipped with only `url_base` changed."""
    installed = next(venv.glob("lib/python3*/site-packages/source_drift"), None)
    if installed is None:
        raise PeerError(f"source_drift is not installed in {venv}")
    folder = run_dir / "airbyte-connector"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(installed, folder / "source_drift", ignore=shutil.ignore_patterns("__pycache__"))
    manifest = folder / "source_drift" / "manifest.yaml"
    text = manifest.read_text()
    if "url_base: https://driftapi.com" not in text:
        raise PeerError(f"{manifest} no longer has `url_base: https://driftapi.com`: update the bench")
    manifest.write_text(text.replace("url_base: https://driftapi.com", f"url_base: {base_url}"))
    return folder


def protocol_messages(stdout: str) -> list[dict]:
    """The Airbyte protocol messages (one JSON object a line) in a connector's output."""
    messages = []
    for line in stdout.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict):
            messages.append(message)
    return messages


def stream_errors(messages: list[dict]) -> list[str]:
    """The failed requests the connector reported (one per failed stream)."""
    return sorted({m["trace"]["error"].get("internal_message") or m["trace"]["error"].get("message", "")
                   for m in messages if m.get("type") == "TRACE" and m["trace"].get("type") == "ERROR"
                   and (m["trace"]["error"].get("internal_message") or "").startswith("Request to")})


class Airbyte(Tool):
    """Airbyte's Drift connector, run as its CLI (`spec`, `check`, `discover`, `read`) on a copy
    whose manifest points at the simulator; it has full-refresh streams only, so the re-sync is
    another full read."""

    name = "airbyte"

    def __init__(self, venv: Path, run_dir: Path, python: str):
        self.venv, self.run_dir, self.python = venv, run_dir, python
        self.config = run_dir / "airbyte-config.json"
        self.catalog = run_dir / "airbyte-catalog.json"
        self.process: PeerProcess | None = None

    def command(self, *args: str) -> list[dict]:
        assert self.process is not None, "prepare() first"
        return protocol_messages(self.process.run("-c", "from source_drift.run import run; run()", *args).stdout)

    def prepare(self, base_url: str) -> dict:
        connector = airbyte_connector(self.venv, self.run_dir, base_url)
        self.process = PeerProcess(self.venv, self.run_dir, "airbyte.log", PYTHONPATH=str(connector))
        # What a user configures for an access token; `email` is the spec's own default.
        self.config.write_text(json.dumps({"credentials": {"credentials": "access_token",
                                                           "access_token": SimulatorConfig().static_access_token},
                                           "email": "test@test.com"}))
        if not any(m.get("type") == "SPEC" for m in self.command("spec")):
            last = (self.process.log.read_text().strip().splitlines() or ["no output"])[-1]
            raise PeerError(f"Airbyte's connector does not start on {self.python} ({last[:160]}); "
                            f"see {self.process.log}")
        status = next((m["connectionStatus"] for m in self.command("check", "--config", str(self.config))
                       if m.get("type") == "CONNECTION_STATUS"), {"status": "no answer"})
        streams = next((m["catalog"]["streams"] for m in self.command("discover", "--config", str(self.config))
                        if m.get("type") == "CATALOG"), [])
        self.catalog.write_text(json.dumps({"streams": [
            {"stream": s, "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"} for s in streams]}))
        return {"python": self.python, "check": status.get("status"), "check_message": status.get("message"),
                "streams": [s["name"] for s in streams]}

    def backfill(self, base_url: str) -> Loaded:
        return self._read()

    def resync(self, base_url: str) -> Loaded:
        return self._read()

    def _read(self) -> Loaded:
        messages = self.command("read", "--config", str(self.config), "--catalog", str(self.catalog))
        records = [m["record"] for m in messages if m.get("type") == "RECORD"]
        rows: dict[str, int] = {}
        for record in records:
            rows[record["stream"]] = rows.get(record["stream"], 0) + 1
        self.errors = stream_errors(messages)
        rows["failed_streams"] = len(self.errors)
        conversations = [r["data"] for r in records if r["stream"] == "conversations"]
        return Loaded({c["id"]: c.get("updatedAt") for c in conversations},
                      {r["data"]["id"] for r in records if r["stream"] == "messages"}, rows)


# ---------------------------------------------------------------------- the table
COLUMNS = (("calls", "calls"), ("http_429", "429s"), ("seconds", "seconds"), ("conversations", "conversations"),
           ("messages", "messages"), ("edits_deletes", "edits/deletes"), ("threads_over_50", ">50-msg threads"),
           ("conversations_current", "at latest updatedAt"))
STEPS = {"backfill": "backfill", "resync": "resync", "heal": "resync"}  # step -> its expected counts
FRACTIONS = {"conversations": "conversations", "messages": "messages", "edits_deletes": "edits_deletes",
             "threads_over_50": "threads_over_50", "conversations_current": "conversations"}


def table(report: dict) -> str:
    """The side-by-side table, one row per tool and step; a tool that failed gets its reason."""
    rows = [["tool, step"] + [title for _, title in COLUMNS]]
    failures = []
    for tool, result in report["tools"].items():
        if "error" in result:
            failures.append(f"{tool}: failed: {result['error']}")
            continue
        for step in [s for s in result if s in STEPS]:
            row, expected = result[step], report["expected"][STEPS[step]]
            rows.append([f"{tool}, {step}"] + [
                f"{row[key]:,}/{expected[FRACTIONS[key]]:,}" if key in FRACTIONS else f"{row[key]:,}"
                for key, _ in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join([row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])])
             for row in rows]
    return "\n".join(lines + failures)


def summary(report: dict) -> list[str]:
    """What changed in the 2 hours, Airbyte's `check`, and the peers' calls against ours."""
    changes = report["expected"]["resync"]
    lines = [f"the {ADVANCE_MINUTES // 60} simulated hours: {changes['new_conversations']} new conversations, "
             f"{changes['changed_conversations']} changed, {changes['new_messages']} new messages"]
    airbyte = report["tools"].get("airbyte", {})
    if "setup" in airbyte:
        lines.append(f"airbyte check: {airbyte['setup']['check']} ({airbyte['setup']['check_message']})")
    ours = report["tools"].get("drift-pipeline", {})
    for peer, result in report["tools"].items():
        if peer == "drift-pipeline" or "backfill" not in result or "backfill" not in ours:
            continue
        ratios = ", ".join(f"{step} {result[step]['calls'] / max(ours[step]['calls'], 1):.2f}x"
                           for step in ("backfill", "resync"))
        lines.append(f"{peer} calls / ours: {ratios}")
    return lines


# ---------------------------------------------------------------------- main
def build_tool(name: str, workdir: Path, run_dir: Path, airbyte_python: str | None) -> Tool:
    """The tool by name, its venv built or reused (raises PeerError when it cannot be)."""
    if name == "drift-pipeline":
        return DriftPipeline(run_dir / "drift-pipeline-home")
    if name == "dlt":
        return Dlt(ensure_venv(workdir / "venvs" / "dlt", DLT_REQUIREMENT, sys.executable), run_dir)
    # Without a Python < 3.11 the connector is installed on ours and fails to start: reported so.
    python = airbyte_python or python_310() or sys.executable
    return Airbyte(ensure_venv(workdir / "venvs" / "airbyte", AIRBYTE_REQUIREMENT, python), run_dir, python)


def bench(tools: list[str], workdir: Path, airbyte_python: str | None = None) -> dict:
    """Runs every tool in turn; a tool that fails is reported with its one-line reason."""
    run_dir = workdir / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    report: dict = {"expected": expected_counts(), "tools": {},
                    "setup": {"seed": SEED, "days": DAYS, "conversations_per_day": PER_DAY,
                              "rate_limit_per_minute": RATE_LIMIT, "advance_minutes": ADVANCE_MINUTES}}
    for name in tools:
        print(f"{name}: ...", flush=True)
        tool_dir = run_dir / name
        tool_dir.mkdir(parents=True)
        try:
            tool = build_tool(name, workdir, tool_dir, airbyte_python)
            report["tools"][name] = run_tool(tool)
            if tool.errors:
                report["tools"][name]["errors"] = tool.errors
        except PeerError as exc:
            report["tools"][name] = {"error": str(exc)}
        print(f"{name}: done", flush=True)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "results" / "peers-work",
                        help="venvs (kept) and this run's state (replaced)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "peers.json")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated subset of {', '.join(TOOLS)}")
    parser.add_argument("--airbyte-python", help="interpreter for Airbyte's venv (default: a Python 3.10 "
                        "from pyenv or PATH, else ours)")
    args = parser.parse_args()
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown:
        parser.error(f"unknown tool {unknown[0]!r}; expected some of {', '.join(TOOLS)}")
    started = time.monotonic()
    report = bench(tools, args.workdir.resolve(), args.airbyte_python)
    report["total_seconds"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print("\n".join(summary(report)))
    print(f"written to {args.out} ({report['total_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
