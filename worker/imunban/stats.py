"""Read-only views for operators: ``status`` counts (and the records the trace of a request reads: imunban.trace)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import redis

from imunban.connection import server_time_ms, translated
from imunban.hold import Hold
from imunban.keys import Keys
from imunban.orphans import orphaned_apps

#: Counters kept in each app's stats hash, reported by ``status``.
COUNTERS = (
    "enqueued", "deduplicated", "cancelled", "promoted", "delivered", "dead", "group_gone", "retried",
    "rate_limited", "reaped", "stale_acks", "stale_requeues", "replayed", "calls", "revoked", "internal_errors",
    "stale_instructions", "replay_skipped", "rescheduled",
)  # fmt: skip
#: Counters of the deployment (``Keys.deployment_stats``), reported with the totals.
DEPLOYMENT_COUNTERS = ("rejected_messages",)


#: Most due groups whose overdue scheduled requests ``status`` counts (the pump keeps this near zero).
OVERDUE_GROUPS = 10_000


def status(client: redis.Redis, keys: Keys) -> dict[str, Any]:
    """Counts for ``imunban status``: queued (due now), scheduled (later), in flight, outcomes, hold."""
    now_ms = server_time_ms(client, keys.stats)
    with translated("status"):
        # Groups with a scheduled request already due but not promoted yet (usually none: the pump
        # promotes every tick). Their overdue requests count as queued, not scheduled.
        due_groups = cast(
            list[str], client.zrange(keys.schedidx, "-inf", now_ms, byscore=True, offset=0, num=OVERDUE_GROUPS)
        )
        # Not MULTI: at maxmemory Redis refuses every command queued inside MULTI, reads too, and status is
        # what an operator reads then. The counts are gauges, each exact when read, in one round trip.
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(keys.stats)
        pipe.zcard(keys.inflight)
        pipe.zcard(keys.dead)
        pipe.zcard(keys.groups)
        pipe.zrange(keys.schedidx, 0, 0, withscores=True)
        for group in due_groups:
            pipe.zcount(keys.sched_group(group), "-inf", now_ms)
        stats, inflight, dead, groups, next_due, *overdue_counts = pipe.execute()
    hold = Hold(client, keys).get()
    counters = {name: int(stats.get(name, 0)) for name in COUNTERS}
    overdue = sum(int(c) for c in overdue_counts)
    return {
        "queued": int(stats.get("ready", 0)) + overdue,
        "scheduled": max(0, int(stats.get("scheduled", 0)) - overdue),
        "in_flight": int(inflight),
        "delivered": counters["delivered"],
        "dead": int(dead),
        "group_gone": counters["group_gone"],
        "groups_waiting": int(groups),
        "next_due_ms": int(next_due[0][1]) if next_due else None,
        "hold": hold.as_dict() if hold else None,
        "counters": counters,
        "server_time_ms": now_ms,
    }


class Lease(NamedTuple):
    token: str
    due_ms: int
    high: bool


class Meta(NamedTuple):
    attempts: int
    first_failure_ms: int
    last_code: int
    due_ms: int


def parse_lease(raw: str | None) -> Lease | None:
    """A lease record "token|due_ms|high" (claim.lua writes it; _lib.lua's parse_lease reads it)."""
    if not raw:
        return None
    token, due, high = raw.split("|")
    return Lease(token, int(due), high == "1")


def parse_meta(raw: str | None) -> Meta | None:
    """A meta record "attempts|first_failure_ms|last_code|due_ms" (requeue.lua writes it; _lib.lua's parse_meta)."""
    if not raw:
        return None
    attempts, first_failure_ms, last_code, due = raw.split("|")
    return Meta(int(attempts), int(first_failure_ms), int(last_code), int(due))


#: Fields of a status snapshot that add up across apps.
SUMMED = ("queued", "scheduled", "in_flight", "delivered", "dead", "group_gone", "groups_waiting")


def status_of_apps(client: redis.Redis, keys: Sequence[Keys]) -> dict[str, Any]:
    """The totals over the apps of ``keys`` (shaped as one app's :func:`status`), each app's own under ``apps``.

    ``hold`` of the totals is None when no app is held, else the first held app's hold with its
    ``app``; ``next_due_ms`` is the earliest of all; the deployment's own counters (rejected messages)
    are added to the totals' counters.
    """
    per_app = {app_keys.app: status(client, app_keys) for app_keys in keys}
    snapshots = list(per_app.values())
    totals: dict[str, Any] = {key: sum(int(s[key]) for s in snapshots) for key in SUMMED}
    due = [s["next_due_ms"] for s in snapshots if s["next_due_ms"] is not None]
    held = [{**s["hold"], "app": name} for name, s in per_app.items() if s["hold"]]
    totals["next_due_ms"] = min(due) if due else None
    totals["hold"] = held[0] if held else None
    totals["counters"] = {name: sum(int(s["counters"][name]) for s in snapshots) for name in COUNTERS}
    if keys:
        with translated("status"):
            deployment = cast(dict[str, str], client.hgetall(keys[0].deployment_stats))
        totals["counters"].update({name: int(deployment.get(name, 0)) for name in DEPLOYMENT_COUNTERS})
    totals["server_time_ms"] = max(int(s["server_time_ms"]) for s in snapshots)
    totals["apps"] = per_app
    if keys:
        # Apps that ran here once and still hold requests, but that this deployment does not serve.
        totals["orphaned_apps"] = orphaned_apps(client, keys[0].prefix, per_app)
    return totals
