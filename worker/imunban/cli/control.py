"""``imunban pause`` and ``imunban resume``: an operator stops and restarts delivery of one app, audited."""

from __future__ import annotations

import argparse
import getpass
import os
import socket

from imunban.cli.common import open_app
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
