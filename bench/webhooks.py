"""Benchmark of the webhook receiver: durable events per second, latency, and events lost.

    .venv/bin/python bench/webhooks.py [--events 5000] [--concurrency 32] [--json]
                                       [--client-processes 1] [--client httpx|raw]
    .venv/bin/python bench/webhooks.py --soak [--minutes 10] [--rate 20]   (bench/soak.py)

Starts `webhooks serve` (the real `serve()`: uvicorn, group-commit inbox writer, fsync) in a
subprocess on a free loopback port with a throwaway `$DRIFT_PIPELINE_HOME`, POSTs N distinct
`new_message` events from an async httpx client with bounded concurrency, then counts the lines
on disk. Every 200 means "on disk", so the lines are counted before the server is stopped.
Targets: >= 1,000 events/s, p99 < 50 ms, lost = 0 (exit status 1 when one is missed).

The httpx client costs more CPU per request than the receiver (about 1.2-1.8 ms against
0.45-0.65 ms on a 2-vCPU VM), and both share the machine: `--client-processes` spreads the
client, `--client raw` (a minimal HTTP/1.1 client) shows the receiver's own limit, and the
receiver-side latency and CPU per event come from the receiver's own log and /proc.

`measure_receiver()` is the reusable part: it returns a dict, so a freshness benchmark
(POST to serving copy) can be added beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent

# httpcore 1.0.9 runs `import sniffio` on every request and anyio 4.x no longer installs it:
# each failed import scans sys.path (about 1 ms per request here), which made the *client* the
# bottleneck. A None entry makes that import fail at once; httpcore then assumes asyncio.
sys.modules.setdefault("sniffio", None)
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from drift_pipeline.webhooks.inbox_files import iter_inbox_files, read_inbox_file  # noqa: E402

TARGET_EVENTS_PER_SECOND = 1000
TARGET_P99_MS = 50.0

_SERVER_CODE = """
import sys
from drift_pipeline.settings import Settings
from drift_pipeline.webhooks.receiver import serve
serve(Settings.from_env(), host="127.0.0.1", port=int(sys.argv[1]))
"""


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_receiver(home: Path, token: str, port: int, log_path: Path) -> subprocess.Popen:
    """`serve()` in a subprocess (its own interpreter, so the client does not share its GIL)."""
    env = {**os.environ, "DRIFT_PIPELINE_HOME": str(home), "DRIFT_WEBHOOK_TOKEN": token,
           "PYTHONPATH": str(ROOT)}
    with open(log_path, "ab") as log_file:
        return subprocess.Popen([sys.executable, "-c", _SERVER_CODE, str(port)], env=env,
                                cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)


def wait_until_healthy(base_url: str, process: subprocess.Popen, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"receiver exited early with status {process.returncode}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"receiver not healthy after {timeout_s:.0f}s")


def stop_receiver(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # uvicorn shuts down gracefully, writer drains
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def event_bodies(count: int, token: str, org_id: int = 7) -> list[bytes]:
    """`count` distinct new_message events (a run nonce keeps reruns distinct too)."""
    nonce = secrets.randbits(40)
    base_ms = int(time.time() * 1000)
    return [json.dumps({
        "type": "new_message",
        "token": token,
        "orgId": org_id,
        "data": {
            "id": nonce * 1_000_000 + index,
            "orgId": org_id,
            "conversationId": 1_000 + index % 500,
            "body": f"<p>bench message {index}</p>",
            "type": "chat",
            "createdAt": base_ms + index,
            "author": {"type": "contact", "id": 10 + index % 50, "bot": False},
        },
    }).encode() for index in range(count)]


class RawHttpClient:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams (`--client raw`).

    Only for measuring the receiver when httpx's own CPU cost per request (about 1.2-1.8 ms
    on a small VM) is what limits the bench rather than the receiver.
    """

    def __init__(self, base_url: str) -> None:
        url = httpx.URL(base_url)
        self.host, self.port = url.host, url.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        self._writer.write(head.encode("ascii") + body)
        raw_head = await self._reader.readuntil(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(int(line.split(":", 1)[1]) for line in lines[1:]
                      if line.lower().startswith("content-length:"))
        return status, await self._reader.readexactly(length)

    async def aclose(self) -> None:
        if self._writer is not None:
            self._writer.close()


async def post_all(base_url: str, bodies: list[bytes], concurrency: int,
                   client_kind: str = "httpx") -> dict:
    """POST every body with at most `concurrency` in flight; latencies in ms and statuses.

    One keep-alive connection per worker (for httpx, one client each: its shared pool scans
    every idle connection on each request, which at 32 connections costs more CPU than the
    receiver spends per request).
    """
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    pending = iter(bodies)
    headers = {"content-type": "application/json"}
    if client_kind == "raw":
        clients = [RawHttpClient(base_url) for _ in range(concurrency)]
    else:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        clients = [httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30)
                   for _ in range(concurrency)]

    async def post(client, body: bytes) -> str:
        if isinstance(client, RawHttpClient):
            status_code, content = await client.request("POST", "/webhooks", body)
        else:
            response = await client.post("/webhooks", content=body, headers=headers)
            status_code, content = response.status_code, response.content
        return json.loads(content)["status"] if status_code == 200 else str(status_code)

    async def worker(client) -> None:
        for body in pending:
            started = time.perf_counter()
            try:
                key = await post(client, body)
            except (httpx.HTTPError, OSError, asyncio.IncompleteReadError) as exc:
                key = type(exc).__name__
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[key] = statuses.get(key, 0) + 1

    async def warm(client) -> None:
        if isinstance(client, RawHttpClient):
            await client.request("GET", "/healthz")
        else:
            await client.get("/healthz")

    try:
        # Open the connections first so connection setup is not billed to the first events.
        await asyncio.gather(*(warm(client) for client in clients))
        started = time.monotonic()
        await asyncio.gather(*(worker(client) for client in clients))
        finished = time.monotonic()
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    return {"latencies_ms": latencies, "statuses": statuses, "started": started,
            "finished": finished}


def _client_process(args: tuple) -> dict:
    base_url, bodies, concurrency, client_kind = args
    return asyncio.run(post_all(base_url, bodies, concurrency, client_kind))


def post_from_processes(base_url: str, bodies: list[bytes], concurrency: int,
                        processes: int, client_kind: str) -> dict:
    """`post_all` split over `processes` client processes (the client needs more CPU per
    request than the receiver); merged, with elapsed from the first start to the last end."""
    if processes <= 1:
        runs = [_client_process((base_url, bodies, concurrency, client_kind))]
    else:
        shares = [max(1, concurrency // processes + (i < concurrency % processes))
                  for i in range(processes)]
        jobs = [(base_url, bodies[i::processes], shares[i], client_kind)
                for i in range(processes)]
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            runs = pool.map(_client_process, jobs)
    statuses: dict[str, int] = {}
    for run in runs:
        for key, count in run["statuses"].items():
            statuses[key] = statuses.get(key, 0) + count
    return {
        "latencies_ms": [value for run in runs for value in run["latencies_ms"]],
        "statuses": statuses,
        "elapsed_s": max(run["finished"] for run in runs) - min(run["started"] for run in runs),
    }


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return statistics.quantiles(ordered, n=1000, method="inclusive")[int(fraction * 1000) - 1] \
        if len(ordered) > 1 else ordered[0]


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_stored(inbox_dir: Path) -> tuple[int, int, int]:
    """(lines, distinct event ids, files) in the inbox."""
    files = iter_inbox_files(inbox_dir)
    ids = [record["event_id"] for path in files for record in read_inbox_file(path)]
    return len(ids), len(set(ids)), len(files)


_LOG_LINE = re.compile(r"POST /webhooks (\d{3}) .* ([0-9.]+)ms$")


def receiver_side_latencies(log_path: Path) -> list[float]:
    """Per-request times the receiver logged (read to 200, durable write included), in ms."""
    latencies = []
    for line in log_path.read_text(errors="replace").splitlines():
        match = _LOG_LINE.search(line)
        if match and match.group(1) == "200":
            latencies.append(float(match.group(2)))
    return latencies


def measure_receiver(events: int = 5000, concurrency: int = 32, home: Path | None = None,
                     client_processes: int = 1, client_kind: str = "httpx") -> dict:
    """Run the receiver in a subprocess, POST `events` events, and report what happened.

    Returns events_per_second (accepted / wall time), p50_ms, p99_ms, sent, accepted,
    lines_on_disk, lost (= sent - lines on disk), files (fsync batches) and statuses.
    """
    with tempfile.TemporaryDirectory(prefix="drift-bench-webhooks-") as scratch:
        home = Path(home) if home else Path(scratch) / "home"
        home.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(24)
        port = free_loopback_port()
        base_url = f"http://127.0.0.1:{port}"
        process = start_receiver(home, token, port, Path(scratch) / "receiver.log")
        try:
            wait_until_healthy(base_url, process)
            bodies = event_bodies(events, token)
            cpu_before = process_cpu_seconds(process.pid)
            run = post_from_processes(base_url, bodies, concurrency, client_processes,
                                      client_kind)
            cpu_after = process_cpu_seconds(process.pid)
            lines, distinct, files = count_stored(home / "inbox")
        finally:
            stop_receiver(process)
        server_latencies = receiver_side_latencies(Path(scratch) / "receiver.log")
    accepted = run["statuses"].get("accepted", 0)
    latencies = run["latencies_ms"]
    return {
        "sent": events,
        "concurrency": concurrency,
        "client": client_kind,
        "client_processes": client_processes,
        "accepted": accepted,
        "statuses": run["statuses"],
        "elapsed_s": round(run["elapsed_s"], 3),
        "events_per_second": round(accepted / run["elapsed_s"], 1),
        "p50_ms": round(_percentile(latencies, 0.50), 2),
        "p99_ms": round(_percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2),
        # The receiver's own time per request: what Drift waits for, minus the network and
        # the bench client's queueing (this client costs more CPU per request than the server).
        "receiver_p50_ms": round(_percentile(server_latencies, 0.50), 2),
        "receiver_p99_ms": round(_percentile(server_latencies, 0.99), 2),
        # CPU the receiver spent per event: independent of what else runs on the machine.
        "receiver_cpu_ms_per_event": (round((cpu_after - cpu_before) * 1000 / events, 3)
                                      if cpu_before is not None and cpu_after is not None
                                      else None),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "lines_on_disk": lines,
        "distinct_ids_on_disk": distinct,
        "files": files,
        "events_per_file": round(lines / files, 1) if files else 0,
        "lost": events - lines,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--client-processes", type=int, default=1,
                        help="split the client over this many processes (default 1)")
    parser.add_argument("--client", choices=("httpx", "raw"), default="httpx",
                        help="httpx (default) or a minimal raw HTTP/1.1 client that costs "
                             "less CPU, to see the receiver's own limit")
    parser.add_argument("--json", action="store_true", help="print the result dict as JSON")
    parser.add_argument("--soak", action="store_true",
                        help="instead: the soak (bench/soak.py): mixed events with duplicates and "
                             "out-of-order delivery while the inbox is applied and a sync runs")
    parser.add_argument("--minutes", type=float, default=10.0, help="--soak: how long (default 10)")
    parser.add_argument("--rate", type=float, default=20.0, help="--soak: events per second (default 20)")
    args = parser.parse_args(argv)
    if args.soak:
        from soak import print_soak, soak

        result = soak(args.minutes, args.rate)
        if args.json:
            print(json.dumps(result))
        else:
            print_soak(result)
        return 0 if (result["lost"] == 0 and result["responses_429"] == 0
                     and result["marts_equal_clean_resync"]) else 1
    if args.events < 1 or args.concurrency < 1 or args.client_processes < 1:
        parser.error("--events, --concurrency and --client-processes must be at least 1")

    result = measure_receiver(args.events, args.concurrency,
                              client_processes=args.client_processes, client_kind=args.client)
    met = {
        "throughput": result["events_per_second"] >= TARGET_EVENTS_PER_SECOND,
        "p99": result["p99_ms"] < TARGET_P99_MS,
        "lost": result["lost"] == 0,
    }
    if args.json:
        print(json.dumps({**result, "targets_met": met}))
    else:
        print(f"sent {result['sent']} events, concurrency {result['concurrency']}, "
              f"{result['client']} client in {result['client_processes']} process(es): "
              f"{result['events_per_second']:.0f} events/s accepted "
              f"(target >= {TARGET_EVENTS_PER_SECOND}) "
              f"{'OK' if met['throughput'] else 'MISSED'}")
        print(f"latency p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms "
              f"(target < {TARGET_P99_MS:.0f}) {'OK' if met['p99'] else 'MISSED'}, "
              f"max {result['max_ms']:.1f} ms")
        print(f"lost {result['lost']} (sent - lines on disk; lines {result['lines_on_disk']}, "
              f"distinct ids {result['distinct_ids_on_disk']}) "
              f"{'OK' if met['lost'] else 'MISSED'}")
        print(f"receiver-side p50 {result['receiver_p50_ms']:.1f} ms, "
              f"p99 {result['receiver_p99_ms']:.1f} ms, "
              f"CPU {result['receiver_cpu_ms_per_event']} ms/event; "
              f"machine load {result['load_average_1m']} on {result['cpus']} CPUs "
              f"(client and server share them)")
        print(f"{result['files']} inbox files, {result['events_per_file']} events per fsync; "
              f"statuses {result['statuses']}")
    return 0 if all(met.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
