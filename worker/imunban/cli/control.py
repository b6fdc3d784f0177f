"""``imunban pause``, ``resume`` and ``limit``: an operator stops, restarts or paces one app, audited."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys

from imunban.cli.common import open_app
from imunban.livelimit import describe, validate_rate
from imunban.pause import Actor, validate_reason
from imunban.state import span


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("pause", help="stop delivery of an app until `imunban resume` (its backlog stays; audited)")
    p.add_argument("--reason", required=True, help="why (shown in status, the console and the audit entry)")
    p.add_argument("--app", default=None, help="the app (IMUNBAN_APPS_FILE); may be left out with one app")
    p.set_defaults(handler=run_pause)

    r = sub.add_parser("resume", help="restart delivery of a paused app at once (audited)")
    r.add_argument("--app", default=None, help="the app (IMUNBAN_APPS_FILE); may be left out with one app")
    r.set_defaults(handler=run_resume)

    lim = sub.add_parser(
        "limit", help="show or set an app's rate limit at run time (every worker applies it within 1 s; audited)"
    )
    lim.add_argument("rate", nargs="?", default=None, metavar="RATE", help="calls/s, > 0 and <= 200; none: show it")
    lim.add_argument("--reset", action="store_true", help="revert to the configured rate_limit")
    lim.add_argument("--json", action="store_true", help="machine-readable output")
    lim.add_argument("--app", default=None, help="the app (IMUNBAN_APPS_FILE); may be left out with one app")
    lim.set_defaults(handler=run_limit)


def cli_actor() -> Actor:
    """The command line as the audit records it: role and way ``cli``, client the OS user at this host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container's uid without a passwd entry or USER variable
        user = f"uid {os.getuid()}"
    return Actor("cli", "cli", f"{user}@{socket.gethostname()}")


def run_pause(args: argparse.Namespace) -> int:
    reason = validate_reason(args.reason, "--reason")  # before Redis is touched
    engine = open_app(args.app)
    newly = engine.pause.pause(reason, cli_actor())
    if newly:
        print(f"paused delivery of app {engine.name}: nothing is sent until `imunban resume`; its requests stay queued")
    else:
        print(f"app {engine.name} was paused already; the reason is now: {reason}")
    return 0


def run_resume(args: argparse.Namespace) -> int:
    engine = open_app(args.app)
    ended = engine.pause.resume(cli_actor())
    if ended is None:
        print(f"app {engine.name} was not paused; nothing changed")
        return 0
    paused = span(ended.end_ms - ended.since_ms)
    print(f"resumed delivery of app {engine.name} after {paused} paused ({ended.reason})")
    return 0


def run_limit(args: argparse.Namespace) -> int:
    if args.reset and args.rate is not None:
        print("imunban: error: RATE: give a rate or --reset, not both", file=sys.stderr)
        return 2
    rate = None if args.rate is None else validate_rate(args.rate, "RATE")  # before Redis is touched
    engine = open_app(args.app)
    if args.reset:
        ended = engine.limit.reset(cli_actor())
        if ended is None:
            configured = engine.limit.configured_per_s
            print(f"app {engine.name} had no live limit; it runs at its configured {configured:g} calls/s")
        else:
            print(f"app {engine.name}: live limit {ended:g} calls/s removed; back to the configured "
                  f"{engine.limit.configured_per_s:g} calls/s within 1 s")  # fmt: skip
    elif rate is not None:
        before = engine.limit.set(rate, cli_actor())
        was = f"{before:g} (live)" if before is not None else f"{engine.limit.configured_per_s:g} (configured)"
        print(f"app {engine.name}: rate limit {rate:g} calls/s (was {was}); every worker applies it within 1 s")
    state = engine.limit.get().as_dict()
    if args.json:
        print(json.dumps({"app": engine.name, **state}))
    elif rate is None and not args.reset:
        print(f"app {engine.name}: {describe(state)}")
    return 0
