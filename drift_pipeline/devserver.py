"""`make dev`: the Dagster UI (`dagster dev` on workspace.yaml), against the simulator by default.

- `DRIFT_API_BASE_URL` unset: starts the bundled Drift simulator as a child process on a free
  loopback port (14 days, 60 conversations a day) and points the pipeline at it.
- `DRIFT_API_BASE_URL` set: uses that workspace; no simulator.
- `DRIFT_WEBHOOK_TOKEN` set: also starts the webhook receiver (`drift-pipeline webhooks serve`).

State lives in `$DRIFT_PIPELINE_HOME` (default ./data), the Dagster instance in its `dagster/`
folder (unless DAGSTER_HOME is set). `DAGSTER_PORT` picks the UI port (default 3000).
`dagster dev` runs in its own process group (it ignores SIGTERM otherwise). SIGINT/SIGTERM sent
to this process are forwarded to it; whatever is left of its group after 15 s (or a second
signal) is killed, and the simulator and receiver are stopped on exit.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from drift_pipeline.settings import Settings

PROJECT_DIR = Path(__file__).resolve().parent.parent
SIMULATOR_ARGS = ["--days", "14", "--conversations-per-day", "60", "--rate-limit-per-minute", "6000"]
STOP_GRACE_SECONDS = 15


def _say(message: str) -> None:
    print(f"[devserver] {message}", flush=True)


def _pump(stream, prefix: str) -> None:
    """Forward a child's remaining output (so its pipe never fills)."""
    for line in stream:
        sys.stdout.write(f"{prefix}{line}")
        sys.stdout.flush()


def start_simulator() -> tuple[subprocess.Popen, str]:
    """The bundled simulator on a free loopback port; returns the process and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "drift_simulator", "--port", "0", *SIMULATOR_ARGS],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    first = proc.stdout.readline()
    match = re.search(r"(http://127\.0\.0\.1:\d+)", first)
    if not match:
        _stop(proc, "simulator")
        raise SystemExit(f"the Drift simulator did not start: {first.strip() or 'no output'}")
    threading.Thread(target=_pump, args=(proc.stdout, "[simulator] "), daemon=True).start()
    return proc, match.group(1)


def start_webhook_receiver(env: dict[str, str]) -> subprocess.Popen | None:
    """`drift-pipeline webhooks serve` when the receiver exists (it needs DRIFT_WEBHOOK_TOKEN)."""
    try:
        from drift_pipeline.webhooks import receiver
    except ImportError:
        return None
    if not hasattr(receiver, "serve"):
        return None
    return subprocess.Popen([sys.executable, "-m", "drift_pipeline.cli", "webhooks", "serve"],
                            env=env, start_new_session=True)


def _dagster_command(port: str) -> list[str]:
    exe = Path(sys.executable).parent / "dagster"
    dagster = str(exe) if exe.exists() else (shutil.which("dagster") or "dagster")
    return [dagster, "dev", "-w", str(PROJECT_DIR / "workspace.yaml"), "-h", "127.0.0.1", "-p", port]


def _stop(proc: subprocess.Popen | None, name: str) -> None:
    """SIGTERM the child (it stops its own children), wait a little, then kill its whole group."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        _say(f"{name} did not stop in {STOP_GRACE_SECONDS} s: killing it")
    _kill_group(proc)


def _kill_group(proc: subprocess.Popen, wait: bool = True) -> None:
    """SIGKILL whatever is left in the child's process group (it leads its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if wait:
        proc.wait()


def main() -> int:
    # The process's edge: the environment is read here, once; the children get theirs.
    env = dict(os.environ)
    env.setdefault("DRIFT_PIPELINE_HOME", str(Path("data").resolve()))
    port = env.get("DAGSTER_PORT") or "3000"
    children: list[tuple[subprocess.Popen, str]] = []
    dagster: subprocess.Popen | None = None
    stop_requested: list[float] = []

    def forward(signum, _frame):
        # To the `dagster dev` leader only: it stops its webserver, daemon and code servers in
        # order. A second signal, or 15 s without exiting, kills its whole process group.
        if dagster is None:
            raise KeyboardInterrupt
        if stop_requested:
            _kill_group(dagster, wait=False)
        elif dagster.poll() is None:
            stop_requested.append(time.monotonic())
            dagster.send_signal(signum)

    # Handlers (not SIG_IGN) before any child starts: exec resets handled signals to their
    # defaults, whereas an inherited SIG_IGN for SIGINT (a shell's `cmd &`) makes `dagster dev`
    # ignore SIGTERM too.
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        if not env.get("DRIFT_API_BASE_URL"):
            simulator, base_url = start_simulator()
            children.append((simulator, "simulator"))
            env.update(DRIFT_API_BASE_URL=base_url, DRIFT_ACCESS_TOKEN="sim-static-token")
            _say(f"Drift simulator on {base_url} (pid {simulator.pid})")
        else:
            _say(f"Drift API: {env['DRIFT_API_BASE_URL']} (no simulator)")

        settings = Settings.from_env(env)
        settings.ensure_dirs()
        from drift_pipeline.instance import dagster_environment, ensure_dagster_home

        dagster_home = ensure_dagster_home(settings)
        env.update(dagster_environment(settings))
        from drift_pipeline.dbt_project import ensure_manifest

        ensure_manifest()

        if settings.webhook_token:
            receiver = start_webhook_receiver(env)
            if receiver is not None:
                children.append((receiver, "webhook receiver"))
                _say(f"webhook receiver (pid {receiver.pid}) on http://127.0.0.1:8787/webhooks")

        dagster = subprocess.Popen(_dagster_command(port), cwd=PROJECT_DIR, env=env, start_new_session=True)
        _say(f"DRIFT_PIPELINE_HOME={settings.home}  DAGSTER_HOME={dagster_home}")
        _say(f"dagster dev (pid {dagster.pid}, process group {dagster.pid}) starting; "
             f"the UI will be at http://127.0.0.1:{port} in about 30 s. Ctrl+C stops everything.")
        while True:
            try:
                rc = dagster.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if stop_requested and time.monotonic() - stop_requested[0] > STOP_GRACE_SECONDS:
                    _say(f"dagster dev did not stop in {STOP_GRACE_SECONDS} s: killing its process group")
                    _kill_group(dagster)
        _kill_group(dagster)  # stragglers of a finished dagster dev (code servers, run workers)
        return 0 if stop_requested else rc
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop(dagster, "dagster dev")
        for proc, name in reversed(children):
            _stop(proc, name)


if __name__ == "__main__":
    sys.exit(main())
