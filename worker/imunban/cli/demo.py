"""``imunban demo``: the whole pipeline on this machine (embedded Redis, simulator, two workers)."""

from __future__ import annotations

import argparse

from imunban.cli.common import bounded_float, bounded_int

_workers = bounded_int(1, 16)
_seconds = bounded_float(0.0, 3_600.0, low_open=True, what="a number of seconds")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline locally: embedded Redis, API simulator, two workers, a live view",
        description=(
            "Start the API simulator (30 ms latency, 1% HTTP 502, 1% ErrorCode 10002, one poison member) and "
            "imunban worker processes on the embedded Redis (or IMUNBAN_REDIS_URL), in a logical database of "
            "their own; enqueue a burst of 6,000 unbans across 300 groups and 4,000 expiries due over the next "
            "15 s; show the drain live, then a summary. Exit 0 only if every request but the poison one was "
            "delivered and the poison one dead-lettered with 10004. Everything started is stopped at the end, "
            "also on Ctrl-C (exit 130)."
        ),
    )
    p.add_argument("--workers", type=_workers, default=2, help="worker processes (default 2)")
    p.add_argument("--timeout", type=_seconds, default=50.0, help="give up after this many seconds (default 50)")
    p.add_argument("--seed", type=int, default=None, help="seed the workload and the simulator's faults")
    p.add_argument("--plain", action="store_true", help="plain progress lines instead of the live view")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from imunban.demo.run import run_demo  # rich, the simulator and the cluster load only when needed

    return run_demo(workers=args.workers, timeout_s=args.timeout, seed=args.seed, plain=args.plain)
