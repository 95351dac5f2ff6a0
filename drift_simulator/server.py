"""Running the simulator over real HTTP: `SimulatorServer` (tests, benchmarks) and `serve` (CLI)."""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .app import RESET_EXTENSION, Simulator
from .orgs import MultiOrgSimulator
from .world import SimulatorConfig


class _ResettableH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus a scope extension the app calls to drop the connection.

    Raising from an ASGI app makes uvicorn answer 500; a "reset" fault needs the client to see
    no HTTP answer at all, so the app aborts the transport (with SO_LINGER 0: a TCP RST).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inner = self.app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                scope["extensions"] = {**(scope.get("extensions") or {}), RESET_EXTENSION: self._reset}
            await inner(scope, receive, send)

        self.app = app

    def _reset(self) -> None:
        if self.cycle is not None:
            self.cycle.disconnected = True  # so uvicorn does not try to send a 500 afterwards
        sock = self.transport.get_extra_info("socket")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except (OSError, AttributeError):
            pass
        self.transport.abort()


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _uvicorn_server(simulator: Simulator | MultiOrgSimulator) -> uvicorn.Server:
    config = uvicorn.Config(simulator.app, http=_ResettableH11Protocol, lifespan="off", log_level="warning",
                            access_log=False, timeout_graceful_shutdown=2,
                            date_header=False)  # the app states the world's clock in `Date`
    return uvicorn.Server(config)


class SimulatorServer:
    """Runs a `Simulator` (or a `MultiOrgSimulator`) under uvicorn in a daemon thread on loopback; port 0 picks a free port.

        with SimulatorServer(Simulator(config)) as server:
            httpx.get(server.base_url + "/users/list", headers=...)
    """

    def __init__(self, simulator: Simulator | MultiOrgSimulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self.host = host
        self.port = port
        self.base_url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "SimulatorServer":
        if self._thread is not None:
            return self
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        self.base_url = f"http://{self.host}:{self.port}"
        self._server = _uvicorn_server(self.simulator)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=f"drift-simulator-{self.port}", daemon=True)
        self._thread.start()
        ready = threading.Event()
        while not ready.wait(0.01):
            if self._server.started:
                ready.set()
            elif not self._thread.is_alive():
                raise RuntimeError(f"the Drift simulator failed to start on {self.base_url}")
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> "SimulatorServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(host: str = "127.0.0.1", port: int = 8700, seed: int = 7, days: int = 14,
          conversations_per_day: int = 300, rate_limit_per_minute: int = 600) -> None:
    """Runs the simulator in the foreground until interrupted (Ctrl+C / SIGTERM)."""
    config = SimulatorConfig(seed=seed, days=days, conversations_per_day=conversations_per_day,
                             rate_limit_per_minute=rate_limit_per_minute)
    simulator = Simulator(config)
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    print(f"Drift simulator on http://{host}:{bound_port} (static token: {config.static_access_token}, "
          f"org {config.org_id}, {len(simulator.world.conversations)} conversations)", flush=True)
    _uvicorn_server(simulator).run(sockets=[sock])
