"""``imunban bench``: the benchmark and chaos suite against the local simulator (targets: docs/semantics.md)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from imunban.bench.config import SCENARIOS, BenchConfig
from imunban.settings import Settings


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _scenarios(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(SCENARIOS)}; got {text!r}")
    return names


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "bench",
        help="benchmark and chaos suite against the local simulator",
        description=(
            "Runs, one at a time: backlog drain (with worker CPU per call over each worker's process tree), "
            "the naive one-task-per-member design, latency p50/p99/p99.9 at 10/50/100 % load from Celery, "
            "Python and scheduled requests, scattered expiries against the oldest-first bound, idle worker "
            "CPU, the drain beside a CPU hog, bulk enqueue against apply_async, N scheduled requests, a chaos "
            "run, the full-Redis drill and the Sentinel failover drill; against the simulator enforcing 200 calls "
            "per sliding second with 30 ms latency. Prints a table with each target (see BENCHMARKS.md) and "
            "writes results.json, results.md and a drain plot into --out. --profile instead records a py-spy "
            "profile of one worker during a drain and prints its top entries."
        ),
    )
    p.add_argument("--quick", action="store_true", help="smaller loads and shorter windows (under ~2 minutes)")
    p.add_argument("--out", type=Path, default=Path("bench-results"), help="output folder (default ./bench-results)")
    p.add_argument("--plot", type=Path, default=None, help="drain plot PNG (default OUT/bench-drain.png)")
    p.add_argument("--scheduled", type=_positive_int, default=None,
                   help="scheduled requests in the scale scenario (default 1,000,000; --quick 100,000)")  # fmt: skip
    p.add_argument("--skip-naive", action="store_true", help="do not run the naive baseline")
    p.add_argument("--only", type=_scenarios, default=None, help=f"comma-separated subset of {','.join(SCENARIOS)}")
    p.add_argument("--workers", type=_positive_int, default=2, help="imunban (and naive) worker processes (2)")
    p.add_argument("--concurrency", type=_positive_int, default=8, help="threads per worker process (8)")
    p.add_argument("--rate-limit", type=float, default=None,
                   help="calls/s for the deployment (default IMUNBAN_RATE_LIMIT, else 190)")  # fmt: skip
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, Redis data)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any target is missed")
    p.add_argument("--profile", type=float, nargs="?", const=10.0, default=None, metavar="SECONDS",
                   help="only profile worker 0 with py-spy for SECONDS (10) of a drain; top to OUT")  # fmt: skip
    p.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    rate = args.rate_limit if args.rate_limit is not None else Settings.from_env().single_app.rate_limit_per_s
    if not 0 < rate <= 200:
        raise SystemExit("imunban: error: --rate-limit must be in (0, 200]")
    scenarios = args.only or SCENARIOS
    if args.skip_naive:
        scenarios = tuple(s for s in scenarios if s != "naive")
    changes: dict[str, Any] = {
        "workers": args.workers,
        "concurrency": args.concurrency,
        "rate_limit": rate,
        "scenarios": scenarios,
    }
    if args.scheduled is not None:
        changes["scheduled"] = args.scheduled
        changes["scale_slice"] = max(1, min(50_000, args.scheduled // 5))
    if args.quick:
        return BenchConfig.quick_config(**changes)
    return BenchConfig(**changes)


def run(args: argparse.Namespace) -> int:
    from imunban.bench.run import run_bench

    cfg = config_from_args(args)
    if args.profile is not None:
        from imunban.bench.profile import run_profile

        return run_profile(cfg, args.out, args.profile)
    command = "imunban " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else "imunban bench"
    results = run_bench(cfg, args.out, plot_path=args.plot, command=command, keep_work_dir=args.keep)
    return 1 if args.strict and results["misses"] else 0
