"""``imunban simulate``: run the local API simulator with the worker's own IMUNBAN_* credentials."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from imunban.cli.common import bounded_float, bounded_int
from imunban.settings import Settings
from imunban.sim.config import SimConfig

if TYPE_CHECKING:  # the simulator itself loads in run(), for this command only
    from imunban.sim.multi import MultiSimulator
    from imunban.sim.server import Simulator

_rate = bounded_float(0.0, 1.0, what="a fraction")
_non_negative = bounded_float(0.0, 1e6)
_positive_int = bounded_int(1)
_port = bounded_int(0, 65535, what="a port number (0 = any free port)")
_code = bounded_int(0, what="an ErrorCode")
T = TypeVar("T")


def _group_value(parse: Callable[[str], T]) -> Callable[[str], tuple[str, T]]:
    """``GROUP=VALUE`` -> (group, parsed value); the group id is everything before the last ``=``."""

    def parse_pair(text: str) -> tuple[str, T]:
        group, sep, value = text.rpartition("=")
        if not sep or not group:
            raise argparse.ArgumentTypeError(f"expected GROUP=VALUE, got {text!r}")
        return group, parse(value)

    return parse_pair


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="run the local unban_group_member API simulator",
        description=(
            "Serve a local fake of v4/group_open_http_svc/unban_group_member that checks UserSigs with "
            "IMUNBAN_SDKAPPID / IMUNBAN_IDENTIFIER / IMUNBAN_SECRET_KEY, enforces the 200 calls/s limit, "
            "and injects faults. Point the worker at it with IMUNBAN_BASE_URL. "
            "GET /_stats returns counters; POST /_admin/config changes faults; POST /_admin/reset clears."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8080, help="port (default 8080; 0 = any free port)")
    faults = parser.add_argument_group("faults")
    faults.add_argument("--latency-ms", type=_non_negative, default=0.0, help="fixed delay per call")
    faults.add_argument("--latency-jitter-ms", type=_non_negative, default=0.0, help="extra uniform random delay")
    faults.add_argument("--http-502-rate", type=_rate, default=0.0, help="fraction of calls answered HTTP 502")
    faults.add_argument(
        "--hang-rate",
        type=_rate,
        default=0.0,
        help="fraction of calls answered only after --hang-s (they still apply)",
    )
    faults.add_argument("--hang-s", type=_non_negative, default=6.0, help="how long a hung call takes (default 6)")
    faults.add_argument("--error-10002-rate", type=_rate, default=0.0, help="fraction of calls answered 10002")
    faults.add_argument(
        "--rate-limit",
        type=_positive_int,
        default=200,
        help="calls per sliding second before 60007 (default 200)",
    )
    faults.add_argument(
        "--global-error",
        type=int,
        metavar="CODE",
        help="answer CODE to every call (e.g. 10007); switch it at run time with POST /_admin/config",
    )
    faults.add_argument(
        "--group-error",
        type=_group_value(_code),
        action="append",
        default=[],
        metavar="GROUP=CODE",
        help="answer CODE to every call for GROUP (repeatable), e.g. an unknown code forever",
    )
    faults.add_argument(
        "--group-delay-ms",
        type=_group_value(_non_negative),
        action="append",
        default=[],
        metavar="GROUP=MS",
        help="extra delay per call for GROUP (repeatable)",
    )
    faults.add_argument(
        "--poison", action="append", default=[], metavar="MEMBER", help="a batch holding MEMBER answers 10004"
    )
    faults.add_argument("--unknown-groups-gone", action="store_true", help="answer 10010 (group gone) for every group")
    faults.add_argument("--seed", type=int, help="seed the fault RNG for reproducible runs")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # The simulator loads here, for this command only.
    from imunban.sim.multi import MultiSimulator
    from imunban.sim.server import Simulator, SimulatorServer

    settings = Settings.from_env()
    apps = settings.apps()  # with IMUNBAN_APPS_FILE: every app, each with its own key, admin and limit
    config = SimConfig(
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        http_502_rate=args.http_502_rate,
        hang_rate=args.hang_rate,
        hang_s=args.hang_s,
        error_10002_rate=args.error_10002_rate,
        rate_limit=args.rate_limit,
        global_error=args.global_error,
        group_errors=dict(args.group_error),
        group_delay_ms=dict(args.group_delay_ms),
        poison_members=frozenset(args.poison),
        unknown_groups_gone=args.unknown_groups_gone,
        seed=args.seed,
    )
    endpoint: Simulator | MultiSimulator
    if settings.apps_file is None:
        endpoint = simulator = Simulator(settings.single_app, config)
        serves = f"sdkappid {simulator.sdkappid}, admin {simulator.admin!r}"
    else:
        endpoint = multi = MultiSimulator.for_apps(apps, config)
        simulator = next(iter(multi.simulators.values()))
        serves = ", ".join(f"app {a.name!r}: sdkappid {a.sdkappid}, admin {a.identifier!r}" for a in apps)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    server = SimulatorServer(endpoint, args.host, args.port)
    try:
        server.start()
    except OSError as exc:  # port in use, address not available, permission denied
        print(f"imunban simulate: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with server:
            print(
                f"imunban simulate: listening on {server.url} ({serves}); stats at {server.url}/_stats",
                flush=True,
            )
            # A timed wait so the signal handler gets to run promptly on every platform.
            while not stop.wait(0.5):
                pass
            snap = simulator.snapshot() if settings.apps_file is None else _totals(endpoint)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(
        f"imunban simulate: stopped after {snap['calls']} calls, {snap['calls_ok']} ok, "
        f"{snap['members_unbanned']} members unbanned",
        file=sys.stderr,
        flush=True,
    )
    return 0


def _totals(endpoint: Simulator | MultiSimulator) -> dict[str, int]:
    """The counters the exit line prints, summed over the apps of a multi-app simulator."""
    apps = endpoint.snapshot()["apps"].values()
    return {name: sum(int(a[name]) for a in apps) for name in ("calls", "calls_ok", "members_unbanned")}
