"""``imunban status``: the operator's view (dead letters: imunban.cli.dead; trace: imunban.cli.trace)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from imunban import runbook
from imunban.cli.common import bounded_float, fmt_ms, fmt_relative, open_app, open_deployment, out_console, print_json
from imunban.health import add_app_state, add_states, check, thresholds
from imunban.livelimit import add_limit, add_limits, describe
from imunban.settings import Settings
from imunban.state import fmt_bytes, span
from imunban.stats import status, status_of_apps


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser(
        "status",
        help="the state of each app and why, queue depths, outcomes, workers, the hold",
        description="The state of the deployment: with several apps one row per app (--app NAME for one app's "
        "detail), with one app its detail. --explain says what every column and row means.",
    )
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--explain", action="store_true", help="what every counter means (reads nothing), then exit")
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


def _app_option(
    parser: argparse.ArgumentParser, text: str = "the app (IMUNBAN_APPS_FILE); may be left out with one app"
) -> None:
    parser.add_argument("--app", default=None, help=text)


# -- status -----------------------------------------------------------------------------------


def run_status(args: argparse.Namespace) -> int:
    if args.explain:
        print(explain())
        return 0
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
        print_json(snapshot)
        return level
    console = out_console()
    apps = snapshot.get("apps") or {}
    if len(apps) > 1:
        console.print(apps_table(snapshot))
        state = snapshot.get("state") or {}
        if state:
            style = LEVEL_STYLE[int(state["level"])]
            console.print(Text(f"{state['state'].upper()}: {state['reason']}", style=style))
        console.print("imunban status --app NAME: one app in detail; --explain: what each column means")
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


#: What each column of the apps table and each row of an app's detail means (``imunban status --explain``).
LEGEND = {
    "state": "delivering, idle, held, paused, stalled or full, with its reason (exit code of --check: 0 ok, "
    "1 degraded or paused, 2 stalled, held or full)",
    "backlog": "requests not ended yet: due now + scheduled + in flight",
    "due (queued)": "requests due now, waiting for a worker to claim them",
    "scheduled": "requests due later (--at/--in); they become due by themselves",
    "in flight": "requests claimed by a worker whose API call is under way (a lease; reclaimed if the worker dies)",
    "oldest due": "how long the oldest request due now has waited (--lag-s: when it counts as degraded)",
    "dead": "dead letters: requests that ended dead (imunban dead list)",
    "hold/pause": "HOLD: an app-wide API error (its ErrorCode) stopped delivery, probed until it clears; "
    "PAUSE: an operator stopped delivery (imunban resume)",
    "limit use": "share of the app's rate limit (IMUNBAN_RATE_LIMIT) the workers used lately",
    "groups waiting": "groups with requests due now",
    "workers alive": "workers that ticked recently (the last tick's age)",
    "last claim": "how long ago a worker last claimed a batch",
    "Redis memory": "used memory against maxmemory; intake is refused near it (IMUNBAN_INTAKE_MEMORY_FRACTION)",
    "totals": "outcomes counted since the store began (delivered, dead, group_gone, retries, ...)",
}


def explain() -> str:
    """The legend of ``imunban status``, one line per counter."""
    width = max(map(len, LEGEND))
    return "\n".join(f"{name:<{width}}  {text}" for name, text in LEGEND.items())


def apps_table(snapshot: dict[str, Any]) -> Table:
    """One compact row per app (state, backlog, due, oldest due, dead, hold/pause, limit use), then the totals."""
    apps: dict[str, Any] = snapshot.get("apps") or {}
    table = Table(title=f"imunban status: {len(apps)} apps", title_justify="left")
    table.add_column("app")
    table.add_column("state")
    for name in ("backlog", "due", "oldest due", "dead"):
        table.add_column(name, justify="right")
    table.add_column("hold/pause")
    table.add_column("limit use", justify="right")
    for name, of_app in apps.items():
        state = of_app.get("state") or {}
        level = int(state.get("level") or 0)
        lag, use = state.get("oldest_due_age_ms"), state.get("limiter_use")
        table.add_row(
            escape(name),
            Text(str(state.get("state", "-")), style=LEVEL_STYLE[level]),
            f"{of_app['queued'] + of_app['scheduled'] + of_app['in_flight']:,}",
            f"{of_app['queued']:,}",
            "-" if lag is None else span(lag),
            f"{of_app['dead']:,}",
            _hold_or_pause(of_app),
            "-" if use is None else f"{round(use * 100)} %",
        )
    table.add_section()
    table.add_row(
        "all",
        "",
        f"{snapshot['queued'] + snapshot['scheduled'] + snapshot['in_flight']:,}",
        f"{snapshot['queued']:,}",
        "",
        f"{snapshot['dead']:,}",
        "",
        "",
    )
    return table


def _hold_or_pause(of_app: dict[str, Any]) -> Text:
    hold, pause = of_app.get("hold"), of_app.get("pause")
    if hold:
        return Text(f"HOLD {hold['code']}", style="bold red")
    if pause:
        return Text("PAUSED", style="bold yellow")
    return Text("-")


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
        table.add_row("  what to do", escape(runbook.hint(runbook.for_code(int(hold["code"])))))
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
