"""``imunban status`` and ``imunban dead list|replay|purge``: the operator's view (``imunban trace``: cli/trace.py)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from imunban.cli.common import bounded_float, fmt_ms, fmt_relative, open_app, open_deployment
from imunban.deadletter import DeadLetters, ReplayResult
from imunban.errors import StoreError, ValidationError
from imunban.health import add_app_state, add_states, check, thresholds
from imunban.livelimit import add_limit, add_limits, describe
from imunban.settings import Settings
from imunban.state import fmt_bytes, span
from imunban.stats import status, status_of_apps
from imunban.validation import validate_group_id, validate_members


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("status", help="the state of each app and why, queue depths, outcomes, workers, the hold")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument(
        "--check",
        action="store_true",
        help="print one line and exit 0 (delivering, idle), 1 (degraded, paused) or 2 (stalled, held, full): "
        "for cron, compose healthchecks and Nagios-style checks",
    )
    s.add_argument(
        "--lag-s",
        type=bounded_float(0, 10**9, low_open=True, what="seconds"),
        default=None,
        help="with --check: the oldest due request waiting longer than this is degraded (default 60)",
    )
    _app_option(s, "only this app (default: one section per app, and the totals)")
    s.set_defaults(handler=run_status)

    d = sub.add_parser("dead", help="dead letters: list, replay, purge")
    dsub = d.add_subparsers(dest="dead_action", metavar="ACTION", required=True)
    dl = dsub.add_parser("list", help="dead letters, oldest first")
    dl.add_argument("--json", action="store_true", help="machine-readable output")
    dl.add_argument("--limit", type=_positive, default=100, help="at most this many (default 100)")
    dl.add_argument("--offset", type=_non_negative, default=0, help="skip this many first")
    _app_option(dl)
    dl.set_defaults(handler=run_dead_list)
    dr = dsub.add_parser("replay", help="schedule dead letters again, due now, with a fresh attempt budget")
    dr.add_argument("--all", action="store_true", help="replay every dead letter")
    dr.add_argument("group_id", nargs="?", metavar="GROUP_ID")
    dr.add_argument("members", nargs="*", metavar="MEMBER")
    _app_option(dr)
    dr.set_defaults(handler=run_dead_replay)
    dp = dsub.add_parser("purge", help="delete every dead letter (requires --yes)")
    dp.add_argument("--yes", action="store_true", help="really delete them")
    _app_option(dp)
    dp.set_defaults(handler=run_dead_purge)


def _app_option(
    parser: argparse.ArgumentParser, text: str = "the app (IMUNBAN_APPS_FILE); may be left out with one app"
) -> None:
    parser.add_argument("--app", default=None, help=text)


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


# -- status -----------------------------------------------------------------------------------


def run_status(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    limits = thresholds(settings, lag_s=args.lag_s)
    if args.app is not None:
        engine = open_app(args.app, settings)
        snapshot = status(engine.store.client, engine.keys)
        states = {engine.name: add_app_state(engine.store.client, engine.keys, snapshot, limits)}
        add_limit(engine.limit, snapshot)
    else:
        deployment = open_deployment(settings)
        snapshot = status_of_apps(deployment.client, [app.keys for app in deployment])
        states = add_states(deployment.client, [app.keys for app in deployment], snapshot, limits)
        add_limits(deployment, snapshot)
    level = 0
    if args.check:
        level, line = check(states)
        if not args.json:
            print(line)
            return level
    if args.json:
        _print_json(snapshot)
        return level
    console = Console(soft_wrap=True)
    apps = snapshot.get("apps") or {}
    if len(apps) > 1:
        for name, of_app in apps.items():
            console.print(status_table(of_app, f"imunban status: app {name}"))
        console.print(status_table(snapshot, f"imunban status: all {len(apps)} apps"))
    else:
        console.print(status_table(snapshot))
    for name, counts in (snapshot.get("orphaned_apps") or {}).items():
        waiting = ", ".join(f"{state.replace('_', ' ')} {n:,}" for state, n in counts.items() if n)
        console.print(
            f"[bold red]app {name!r} is not served by this deployment but still holds requests ({waiting})[/]: "
            "removed or renamed in the apps file? Nothing delivers them until it is served again.",
            markup=True,
            highlight=False,
        )
    return 0


def status_table(snapshot: dict[str, Any], title: str = "imunban status") -> Table:
    """The ``status`` snapshot as a two-column table (the hold in red when there is one)."""
    now = int(snapshot["server_time_ms"])
    table = Table(title=title, show_header=True, title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("[bold]state now[/]", "")
    if snapshot.get("state"):
        state_rows(table, snapshot)
    pause = snapshot.get("pause")
    if pause:
        app = f" (app {pause['app']})" if pause.get("app") else ""
        table.add_row("[bold yellow]PAUSED[/]", f"[bold yellow]{escape(pause['reason'])}[/]{app}")
        table.add_row("  paused by", f"{escape(pause['by'])}, {fmt_relative(int(pause['since_ms']), now)}")
    if snapshot.get("rate_limit"):
        table.add_row("rate limit", escape(describe(snapshot["rate_limit"])))
    hold = snapshot["hold"]
    if hold:
        since = fmt_relative(int(hold["since_ms"]), now)
        app = f" (app {hold['app']})" if hold.get("app") else ""
        table.add_row("[bold red]HOLD[/]", f"[bold red]ErrorCode {hold['code']}[/]: {hold['info']}{app}")
        table.add_row("  held since", since)
        table.add_row("  next probe", fmt_relative(int(hold.get("next_probe_ms") or 0) or None, now))
    else:
        table.add_row("hold", "none")
    for label, key in (
        ("queued (due now)", "queued"),
        ("scheduled (due later)", "scheduled"),
        ("in flight", "in_flight"),
        ("dead letters", "dead"),
        ("groups waiting", "groups_waiting"),
    ):
        table.add_row(label, f"{snapshot[key]:,}")
    table.add_row("next scheduled", fmt_relative(snapshot["next_due_ms"], now))
    table.add_section()
    # Outcomes ever recorded (delivered, dead, group_gone, ...): counters, unlike the gauges above.
    table.add_row("[bold]totals since the store began[/]", "")
    for name, value in snapshot["counters"].items():
        table.add_row(name, f"{value:,}")
    table.add_row("[dim]server time[/]", f"[dim]{fmt_ms(now)}[/]")
    return table


#: The colour of a state's level: ok, degraded, critical.
LEVEL_STYLE = ("bold green", "bold yellow", "bold red")
#: Workers listed one per line (the most recent first); the rest are counted.
WORKERS_SHOWN = 10


def state_rows(table: Table, snapshot: dict[str, Any]) -> None:
    """The state with its reason, its notes, and what it was derived from: workers, lag, claims, limiter, memory."""
    state = snapshot["state"]
    style = LEVEL_STYLE[int(state["level"])]
    # The reason reads as a sentence: left-aligned, unlike the figures of the value column.
    table.add_row(f"[{style}]{state['state'].upper()}[/]", Text(state["reason"], style=style, justify="left"))
    for note in state["notes"]:
        table.add_row("  also", Text(note, style="yellow", justify="left"))
    tick = state["last_tick_age_ms"]
    last = "none ticked within the last hour" if tick is None else f"last tick {span(tick)} ago"
    table.add_row("workers alive", f"{state['workers_alive']} ({last})")
    known = snapshot.get("workers") or []
    for worker in known[:WORKERS_SHOWN]:
        table.add_row(f"  {escape(worker['worker'])}", f"{'alive' if worker['alive'] else 'silent'}, "
                      f"last tick {span(worker['age_ms'])} ago")  # fmt: skip
    if len(known) > WORKERS_SHOWN:
        table.add_row("  ...", f"and {len(known) - WORKERS_SHOWN} more (imunban status --json lists them all)")
    lag = state["oldest_due_age_ms"]
    table.add_row("oldest due", "-" if lag is None else f"{span(lag)} ago")
    claim = state["last_claim_age_ms"]
    table.add_row("last claim", "none recorded" if claim is None else f"{span(claim)} ago")
    use = state["limiter_use"]
    table.add_row("limiter use", "-" if use is None else f"{round(use * 100)} % of the rate limit")
    memory = state["memory"]
    if memory["used_bytes"] is None:
        table.add_row("Redis memory", "unknown (INFO memory not allowed)")
    elif not memory["max_bytes"]:
        table.add_row("Redis memory", f"{fmt_bytes(memory['used_bytes'])} (no maxmemory set)")
    else:
        used, most = fmt_bytes(memory["used_bytes"]), fmt_bytes(memory["max_bytes"])
        table.add_row("Redis memory", f"{used} of {most} maxmemory ({round(memory['ratio'] * 100)} %)")


# -- dead letters -----------------------------------------------------------------------------


def run_dead_list(args: argparse.Namespace) -> int:
    dead = open_app(args.app).dead
    letters = dead.list(offset=args.offset, limit=args.limit)
    if args.json:
        _print_json([letter.as_dict() for letter in letters])
        return 0
    total = dead.count()
    if not letters:
        print(f"no dead letters{' at this offset' if total else ''} ({total:,} in all)")
        return 0
    table = Table(title=f"dead letters: {total:,} (showing {len(letters)} from {args.offset})", title_justify="left")
    for column in ("group", "member", "code", "info", "attempts", "dead since"):
        table.add_column(column)
    for letter in letters:
        table.add_row(
            letter.group_id, letter.member, str(letter.code), letter.info, str(letter.attempts), fmt_ms(letter.at_ms)
        )
    Console(soft_wrap=True).print(table)
    return 0


def run_dead_replay(args: argparse.Namespace) -> int:
    if args.all == (args.group_id is not None):
        raise ValidationError("replay", "give either --all or GROUP_ID MEMBER [MEMBER ...]")
    if args.all:
        result = _replay_all(open_app(args.app).dead)
        if not result.matched:
            print("no dead letters to replay")
            return 0
    else:
        if not args.members:
            raise ValidationError("MEMBER", "give at least one MEMBER after GROUP_ID")
        group_id = validate_group_id(args.group_id)
        members = validate_members(args.members)
        result = open_app(args.app).dead.replay([(group_id, m) for m in members])
        if not result.matched:
            # Nothing of what was named is a dead letter: a typo, or replayed or purged already.
            given = f"{len(members)} request{'s' if len(members) != 1 else ''} given"
            print(
                f"imunban: no dead letter matched: none of the {given} is a dead letter; nothing replayed",
                file=sys.stderr,
            )
            return 1
    line = f"replayed {result.replayed} dead letter{'s' if result.replayed != 1 else ''} (due now)"
    if result.not_dead:
        line += f"; {result.not_dead} of those given {'was' if result.not_dead == 1 else 'were'} not a dead letter"
    print(line)
    if result.skipped:
        print(result.skipped_text())
    return 0


def _replay_all(dead: DeadLetters) -> ReplayResult:
    """Every dead letter, round by round; a Redis error part way says what the rounds before it did."""
    total = ReplayResult()
    try:
        for step in dead.replay_rounds():
            total += step
    except StoreError as exc:
        done = f"{total.replayed} dead letter{'s' if total.replayed != 1 else ''} replayed ({total.skipped} skipped)"
        raise StoreError(f"{exc}; stopped part way: {done} before the error") from exc
    return total


def run_dead_purge(args: argparse.Namespace) -> int:
    dead = open_app(args.app).dead
    if not args.yes:
        raise ValidationError("--yes", f"purge deletes all {dead.count():,} dead letters for good; add --yes to do it")
    purged = dead.purge()
    print(f"purged {purged} dead letter{'s' if purged != 1 else ''}")
    return 0
