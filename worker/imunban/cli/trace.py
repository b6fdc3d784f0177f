"""``imunban trace GROUP_ID MEMBER`` and ``imunban trace --member M``: what became of a request (imunban.trace)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.markup import escape
from rich.table import Table

from imunban.cli.common import fmt_relative, open_app, out_console
from imunban.connection import server_time_ms
from imunban.errors import ValidationError
from imunban.settings import Settings
from imunban.trace import MEMBER_MAX, member_search, outcome_text, summary, superseded_text, trace
from imunban.validation import validate_group_id, validate_member


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    t = sub.add_parser(
        "trace",
        help="what became of a request: pending, in flight, delivered, dead, cancelled, superseded or never seen",
        description="Answers from the request's trace record (kept IMUNBAN_TRACE_TTL_S, whatever the traffic "
        "since) and its live state. With --member, the member's requests in every group that have a record.",
    )
    t.add_argument("group_id", nargs="?", metavar="GROUP_ID")
    t.add_argument("member", nargs="?", metavar="MEMBER")
    t.add_argument("--member", dest="only_member", metavar="M", help="find member M in every group instead")
    t.add_argument("--json", action="store_true", help="machine-readable output")
    t.add_argument("--app", default=None, help="the app (IMUNBAN_APPS_FILE); may be left out with one app")
    t.set_defaults(handler=run_trace)


def run_trace(args: argparse.Namespace) -> int:
    if args.only_member is not None:
        if args.group_id is not None:
            raise ValidationError("--member", "give either GROUP_ID MEMBER or --member M, not both")
        return _run_member(args, validate_member(args.only_member, "--member"))
    if args.group_id is None or args.member is None:
        raise ValidationError("MEMBER" if args.group_id else "GROUP_ID", "give GROUP_ID MEMBER, or --member M")
    group_id = validate_group_id(args.group_id)
    member = validate_member(args.member)
    settings = Settings.from_env()
    engine = open_app(args.app, settings)
    client = engine.store.client
    info = trace(client, engine.keys, group_id, member, kept_s=settings.trace_ttl_s)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    now = server_time_ms(client, engine.keys.stats)
    console = out_console(highlight=False)
    # The answer first, on lines of their own (never wrapped into a table cell); then what the state needs.
    console.print(f"[bold]trace {escape(group_id)} {escape(member)}: {info['state']}[/]")
    console.print(escape(summary(info, lambda ms: fmt_relative(ms, now))))
    if table := details_table(info, now):
        console.print(table)
    return 0


def details_table(info: dict[str, Any], now: int) -> Table | None:
    """What the state needs beside the answer (each number once), or None when there is nothing more to say."""

    def when(ms: int | None) -> str:
        return fmt_relative(ms, now)

    table = Table(show_header=False)
    table.add_column("field")
    table.add_column("value")
    if info["state"] in ("ready", "scheduled", "in_flight"):
        table.add_row("priority", str(info["priority"]))
        if info.get("original_due_ms") and info["original_due_ms"] != info.get("due_ms"):
            table.add_row("first due", when(info["original_due_ms"]))
        table.add_row("attempts", str(info["attempts"]))
        if info.get("last_code"):
            first = when(info["first_failure_ms"])
            table.add_row("last error", f"ErrorCode {info['last_code']} (first failure {first})")
        if last := info.get("last_outcome"):
            table.add_row("earlier outcome", escape(outcome_text(last, when)))
    if note := info.get("superseded"):
        table.add_row("superseded", escape(superseded_text(note, when)))
    if "version" in info:
        table.add_row("version", f"{info['version']}{' (by a cancel)' if info.get('version_by_cancel') else ''}")
    return table if table.row_count else None


def _run_member(args: argparse.Namespace, member: str) -> int:
    settings = Settings.from_env()
    engine = open_app(args.app, settings)
    client = engine.store.client
    found = member_search(client, engine.keys, member, limit=MEMBER_MAX, kept_s=settings.trace_ttl_s)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    now = server_time_ms(client, engine.keys.stats)
    console = out_console(highlight=False)
    if not found["requests"]:
        console.print(
            f"member {escape(member)}: no request ended in any group in the last {settings.trace_ttl_s:,} s "
            "(a request still pending that never ended is found by GROUP_ID MEMBER)"
        )
        return 0
    more = f", the newest {found['shown']} shown" if found["shown"] < found["found"] else ""
    console.print(f"[bold]trace --member {escape(member)}: {found['found']} group(s){more}[/]")
    for doc in found["requests"]:
        # One line each, never wrapped into table cells: "GROUP  state: what became of it".
        text = summary(doc, lambda ms: fmt_relative(ms, now))
        console.print(f"{escape(doc['group_id'])}  {doc['state']}: {escape(text)}")
    return 0
