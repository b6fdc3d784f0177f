"""``imunban migrate``: move a store of the single-app layout under an app (workers do it at start too)."""

from __future__ import annotations

import argparse
import json

from imunban.cli.common import check_app, open_client
from imunban.keys import DEFAULT_APP
from imunban.migrate import has_legacy_keys, migrate_single_app_layout
from imunban.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    m = sub.add_parser(
        "migrate",
        help="move keys written before several apps under one app (workers do this at start; safe to repeat)",
    )
    m.add_argument("--app", default=None, help=f"the app they belong to (default {DEFAULT_APP!r})")
    m.add_argument("--check", action="store_true", help="only say whether there is anything to move (exit 1 if so)")
    m.add_argument("--json", action="store_true", help="machine-readable output")
    m.set_defaults(handler=run_migrate)


def run_migrate(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if args.app is not None or not args.check:
        # An app the deployment does not serve is refused, naming it (--check alone asks about the whole store).
        check_app(settings.apps(), args.app or DEFAULT_APP)
    client = open_client(settings)
    if args.check:
        pending = has_legacy_keys(client, settings.key_prefix)
        print(json.dumps({"pending": pending}) if args.json else ("keys to move" if pending else "nothing to move"))
        return 1 if pending else 0
    report = migrate_single_app_layout(client, settings.key_prefix, args.app or DEFAULT_APP)
    if args.json:
        print(json.dumps({"app": report.app, "renamed": report.renamed, "merged": report.merged}))
    elif report.moved:
        print(f"moved {report.moved} key(s) to app {report.app!r}: {report.renamed} renamed, {report.merged} merged")
    else:
        print("nothing to move: the store already uses the layout of several apps")
    return 0
