"""A faithful, seeded fake of the Drift API, used by the demo (`demo.py`), the benchmarks and the
tests. Its own distribution (`pyproject.toml` beside this file, installed by `make install`):
the pipeline neither imports nor ships it, and runs against Drift without it.

`DriftWorld` holds the data and a virtual clock, `Simulator` serves it as an ASGI app (with
faults, stats, rate limits and OAuth), `MultiOrgSimulator` puts several
workspaces behind one host, `SimulatorServer` runs either on a loopback port, and
`serve` runs it in the foreground (`python -m drift_simulator --help`).
"""

from .app import FAULT_KINDS, FaultInjector, LeakyBucket, SimulatedConnectionReset, Simulator, SimulatorStats
from .orgs import MultiOrgSimulator
from .server import SimulatorServer, serve
from .world import DriftWorld, SimulatorConfig

__all__ = [
    "FAULT_KINDS", "DriftWorld", "FaultInjector", "LeakyBucket", "MultiOrgSimulator", "SimulatedConnectionReset",
    "Simulator", "SimulatorConfig", "SimulatorServer", "SimulatorStats", "serve",
]
