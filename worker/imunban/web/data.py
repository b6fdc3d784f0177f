"""What the console's pages show, read from Redis without O(N) work over the store.

Counts come from gauges and ZCARD; lists are pages of a sorted set by rank (ZRANGE with offsets,
O(log N + page)); filters over dead letters scan a bounded window per request in one read-only
script (:data:`DEAD_SCAN_BUDGET` entries) and hand back where to continue.
"""

from __future__ import annotations

from typing import Any, cast

from imunban.connection import server_time_ms, translated
from imunban.deadletter import SCAN_BUDGET
from imunban.deadletter import DeadFilter as DeadFilter  # the console's pages and actions name it data.DeadFilter
from imunban.deployment import Deployment
from imunban.health import add_app_state, add_states, thresholds
from imunban.keys import HIGH_BAND_MS, request_id
from imunban.livelimit import add_limit, add_limits
from imunban.runbook import for_code, for_state
from imunban.scripts import register
from imunban.stats import status, status_of_apps
from imunban.throughput import KEEP_MINUTES
from imunban.trace import member_search, summary, trace
from imunban.web.common import fmt_ms
from imunban.web.context import AppContext

#: Dead letters looked at per filtered page (one script call; keeps a page fast with 100,000 of them).
DEAD_SCAN_BUDGET = SCAN_BUDGET
#: Waiting groups whose ready heads are read to find the oldest due request.
LAG_GROUPS = 32
PAGE_MAX = 500
#: The states shown in the banner under the header (a hold has its own banner), with their titles.
BANNERS = {"paused": "DELIVERY PAUSED", "stalled": "DELIVERY STALLED", "full": "REDIS FULL: INTAKE REFUSED"}

Pairs = list[tuple[str, float]]
Entries = list[tuple[str, dict[str, str]]]


def _script(ctx: AppContext, name: str) -> Any:
    return register(ctx.client, name, package="imunban.web")


def app_status(ctx: AppContext) -> dict[str, Any]:
    """One app's status document with its state (what ``imunban status --app NAME --json`` prints)."""
    snapshot = status(ctx.client, ctx.keys)
    add_app_state(ctx.client, ctx.keys, snapshot, thresholds(ctx.settings))
    add_limit(ctx.engine.limit, snapshot)
    return snapshot


def all_status(deployment: Deployment) -> dict[str, Any]:
    """The totals with every app's document and state (what ``imunban status --json`` prints)."""
    keys = [app.keys for app in deployment]
    totals = status_of_apps(deployment.client, keys)
    add_states(deployment.client, keys, totals, thresholds(deployment.settings))
    add_limits(deployment, totals)
    return totals


def banner(state: dict[str, Any] | None) -> dict[str, str] | None:
    """The banner of a state that needs one (paused, stalled, full): its kind, title and text; else None."""
    if not state or state["state"] not in BANNERS:
        return None
    entry = for_state(state["state"])
    return {
        "kind": state["state"],
        "title": BANNERS[state["state"]],
        "text": " · ".join([state["reason"], *state["notes"]]),
        "hint": entry.action if entry else "",
        "anchor": entry.anchor if entry else "",
    }


def hint_of_code(code: int) -> dict[str, str]:
    """The runbook's entry for an ErrorCode as the pages show it: anchor, title, what to do."""
    entry = for_code(code)
    return {"anchor": entry.anchor, "title": entry.title, "action": entry.action}


def memory_card(ctx: AppContext, state: dict[str, Any]) -> dict[str, Any]:
    """Redis memory used against maxmemory, and where intake is refused (IMUNBAN_INTAKE_MEMORY_FRACTION of it)."""
    memory = state.get("memory") or {}
    max_bytes = int(memory.get("max_bytes") or 0)
    fraction = ctx.settings.intake_memory_fraction
    return {
        **memory,
        "intake_fraction": fraction,
        "intake_bytes": int(max_bytes * fraction) if max_bytes else None,
    }


def throughput(ctx: AppContext) -> dict[str, Any]:
    """The per-minute history of the last 24 h (imunban.throughput) with the calls/s limit: the charts' data."""
    now = server_time_ms(ctx.client, ctx.keys.stats)
    return {
        "app": ctx.name,
        "server_time_ms": now,
        "minutes": KEEP_MINUTES,
        "limit_per_s": ctx.rate_limit_per_s,
        **ctx.sampler.history(now),
    }


def overview(ctx: AppContext) -> dict[str, Any]:
    """The overview: the status document with the app's state, rates, the oldest due lag, limiter use, workers."""
    snapshot = status(ctx.client, ctx.keys)
    now = int(snapshot["server_time_ms"])
    # The state's reads give the oldest due request and the workers too (imunban.health).
    state = add_app_state(ctx.client, ctx.keys, snapshot, thresholds(ctx.settings))
    limit_state = add_limit(ctx.engine.limit, snapshot)
    ctx.sampler.maybe_sample()
    rates = ctx.sampler.latest()
    limit = limit_state.effective_per_s  # the live limit when an operator set one
    calls = rates["calls_per_s"]
    lag = state.oldest_due_age_ms
    return {
        "app": ctx.name,
        "status": snapshot,
        "state": snapshot["state"],
        "banner": banner(snapshot["state"]),
        "rates": {
            **rates,
            "limit_per_s": limit,
            "limiter_use": None if calls is None else round(calls / limit, 3),
        },
        "series": ctx.sampler.series(),
        "oldest_due_ms": None if lag is None else now - lag,
        "oldest_due_lag_ms": lag,
        "limiter_ahead_ms": limiter_ahead_ms(ctx, now),
        "workers": snapshot["workers"],
        "memory": memory_card(ctx, snapshot["state"]),
        "hold_hint": hint_of_code(int(snapshot["hold"]["code"])) if snapshot.get("hold") else None,
    }


def limiter_ahead_ms(ctx: AppContext, now: int) -> int | None:
    """How far ahead of now the shared limiter's schedule runs (0: it has calls to spare)."""
    key = ctx.limiter_key
    if key is None:
        return None
    with translated("overview"):
        raw = ctx.client.get(key)
    if raw is None:
        return 0
    return max(0, int(int(raw) / 1000) - now)


# -- trace --------------------------------------------------------------------------------------


def member_trace(ctx: AppContext, group_id: str, member: str) -> dict[str, Any]:
    """The trace of one request (imunban.trace: its record and live state, O(1) whatever the traffic since),
    its ``summary`` with the console's times."""
    found = trace(ctx.client, ctx.keys, group_id, member, kept_s=ctx.settings.trace_ttl_s)
    found["summary"] = summary(found, fmt_ms)
    return found


def member_requests(ctx: AppContext, member: str) -> dict[str, Any]:
    """The member's requests in every group that have a trace record, newest first (one shard read)."""
    found = member_search(ctx.client, ctx.keys, member, kept_s=ctx.settings.trace_ttl_s)
    for doc in found["requests"]:
        doc["summary"] = summary(doc, fmt_ms)
    return found


# -- scheduled ----------------------------------------------------------------------------------


def scheduled_groups(ctx: AppContext, offset: int, limit: int) -> dict[str, Any]:
    """Groups with scheduled requests, earliest due first, with how many each has (a page)."""
    k = ctx.keys
    limit = min(max(1, limit), PAGE_MAX)
    with translated("scheduled"):
        pipe = ctx.client.pipeline(transaction=False)
        pipe.zcard(k.schedidx)
        pipe.zrange(k.schedidx, offset, offset + limit - 1, withscores=True)
        total, page = pipe.execute()
        pipe = ctx.client.pipeline(transaction=False)
        for group, _ in page:
            pipe.zcard(k.sched_group(group))
            pipe.zcard(k.ready(group))
        counts = pipe.execute()
    rows = [
        {"group_id": group, "next_due_ms": int(due), "scheduled": int(counts[2 * i]), "ready": int(counts[2 * i + 1])}
        for i, (group, due) in enumerate(page)
    ]
    return {"total_groups": int(total), "offset": offset, "limit": limit, "groups": rows}


def group_page(ctx: AppContext, group_id: str, offset: int, limit: int) -> dict[str, Any]:
    """One group's pending requests, earliest due first: ready ones, then scheduled ones (a page)."""
    k = ctx.keys
    limit = min(max(1, limit), PAGE_MAX)
    with translated("scheduled"):
        pipe = ctx.client.pipeline(transaction=False)
        pipe.zcard(k.ready(group_id))
        pipe.zcard(k.sched_group(group_id))
        ready_n, sched_n = (int(x) for x in pipe.execute())
        items: list[dict[str, Any]] = []
        if offset < ready_n:
            ready = cast(Pairs, ctx.client.zrange(k.ready(group_id), offset, offset + limit - 1, withscores=True))
            for member, score in ready:
                s = int(score)
                items.append({"member": member, "due_ms": s + HIGH_BAND_MS if s < 0 else s, "state": "ready"})
        rest = limit - len(items)
        start = max(0, offset - ready_n)
        if rest > 0:
            sched = cast(Pairs, ctx.client.zrange(k.sched_group(group_id), start, start + rest - 1, withscores=True))
            for member, score in sched:
                items.append({"member": member, "due_ms": int(score), "state": "scheduled"})
        if items:
            highs = ctx.client.hmget(k.high, [request_id(group_id, i["member"]) for i in items])
            for item, high in zip(items, highs, strict=True):
                item["priority"] = "high" if high else "normal"
    return {
        "group_id": group_id,
        "ready": ready_n,
        "scheduled": sched_n,
        "offset": offset,
        "limit": limit,
        "items": items,
    }


# -- dead letters -------------------------------------------------------------------------------


def dead_page(
    ctx: AppContext, flt: DeadFilter, cursor: int, limit: int, budget: int = DEAD_SCAN_BUDGET
) -> dict[str, Any]:
    """Dead letters, newest first, matching ``flt``, from rank ``cursor``; ``next_cursor`` None at the end."""
    limit = min(max(1, limit), PAGE_MAX)
    with translated("dead letters"):
        total = int(ctx.client.zcard(ctx.keys.dead))
    page = ctx.dead.scan(flt, cursor, limit, budget=budget)
    return {
        "total": total,
        "filter": flt.as_dict(),
        "cursor": cursor,
        "next_cursor": page.next_rank,
        "looked_at": page.looked_at,
        "items": [letter.as_dict() for letter in page.letters],
    }


def dead_matching(ctx: AppContext, flt: DeadFilter) -> list[tuple[str, str]]:
    """Every dead letter matching ``flt`` (for "replay/purge all that match": a POST, never a page)."""
    return [(letter.group_id, letter.member) for letter in ctx.dead.matching(flt)]


# -- holds and outcomes -------------------------------------------------------------------------


def holds(ctx: AppContext) -> dict[str, Any]:
    now = server_time_ms(ctx.client, ctx.keys.stats)
    current, paused = ctx.hold.get(), ctx.pause.get()
    history = [vars(record) for record in reversed(ctx.hold.history())]  # code 0: an ended pause
    return {
        "server_time_ms": now,
        "hold": current.as_dict() if current else None,
        "pause": paused.as_dict() if paused else None,
        "limit": ctx.engine.limit.get().as_dict(),
        "history": history,
    }


def outcomes(ctx: AppContext, after: str | None, limit: int) -> dict[str, Any]:
    """The newest ``limit`` entries of the outcome stream, or those after the id ``after`` (oldest first)."""
    limit = min(max(1, limit), PAGE_MAX)
    with translated("outcomes"):
        if after:
            raw = cast(Entries, ctx.client.xrange(ctx.keys.outcomes, min=f"({after}", max="+", count=limit))
        else:
            raw = list(reversed(cast(Entries, ctx.client.xrevrange(ctx.keys.outcomes, count=limit))))
        length = int(ctx.client.xlen(ctx.keys.outcomes))
    entries = [{"id": entry_id, **fields} for entry_id, fields in raw]
    return {"length": length, "entries": entries, "last_id": entries[-1]["id"] if entries else after}
