"""`python -m drift_simulator [--port 8700] [--seed 7] ...`: the simulator in the foreground."""

from __future__ import annotations

import argparse

from .server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m drift_simulator",
                                     description="Run the bundled Drift API simulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8700, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--conversations-per-day", type=int, default=300)
    parser.add_argument("--rate-limit-per-minute", type=int, default=600)
    args = parser.parse_args(argv)
    try:
        serve(host=args.host, port=args.port, seed=args.seed, days=args.days,
              conversations_per_day=args.conversations_per_day, rate_limit_per_minute=args.rate_limit_per_minute)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
