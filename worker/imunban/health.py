"""Read what an app's state is derived from, and add the state to a ``status`` document.

The reads are few and cheap (two pipelines and one ``INFO memory``, all read-only: they work on a
full Redis) so ``imunban status``, the console's every page and a metrics scrape can afford them.
The decision itself is :func:`imunban.state.derive`, a pure function.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from imunban.connection import translated
from imunban.heartbeat import WorkerBeat, workers
from imunban.keys import Keys
from imunban.pause import PauseState
from imunban.settings import Settings
from imunban.state import AppState, Facts, HoldFacts, PauseFacts, Thresholds, check_line, derive, worst

# The one reading of each, shared with the metrics.
from imunban.vitals import PACE_FIELDS, RedisMemory, oldest_due_ms, pace_share
from imunban.vitals import redis_memory as read_memory

#: Stats fields of the limiter's pace (``pace_count`` in lua/_lib.lua) and the last claim (claim.lua).
STATS_FIELDS = ("last_claim_ms", *PACE_FIELDS)


def thresholds(settings: Settings, *, lag_s: float | None = None) -> Thresholds:
    """The thresholds of ``settings`` (IMUNBAN_STALL_AFTER_S), with ``imunban status --check --lag-s``."""
    lag = Thresholds().lag_ms if lag_s is None else int(lag_s * 1000)
    return Thresholds(stall_after_ms=settings.stall_after_s * 1000, lag_ms=lag)


def redis_memory(client: redis.Redis, keys: Keys) -> RedisMemory | None:
    """INFO memory of the node holding the app (:func:`imunban.vitals.redis_memory`), None if unreadable:
    the state goes without it. ``counted_bytes`` against ``max_bytes`` is what ``full`` means (Redis refuses a
    write when used memory, less what it does not count for eviction, is over maxmemory)."""
    try:
        return read_memory(client, keys.stats)
    except redis.exceptions.RedisError:  # Redis blinked: the state goes without it
        return None


def facts(
    client: redis.Redis, keys: Keys, snapshot: dict[str, Any]
) -> tuple[Facts, PauseState | None, list[WorkerBeat]]:
    """The facts of one app whose :func:`imunban.stats.status` document is ``snapshot``; its pause; the workers."""
    now = int(snapshot["server_time_ms"])
    with translated("state"):
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(keys.pause)
        pipe.hmget(keys.stats, list(STATS_FIELDS))
        pause_raw, stats = pipe.execute()
    beats = workers(client, keys, now)
    pause = PauseState.from_hash(pause_raw)
    last_claim, *pace = stats
    use = pace_share(pace, now)
    hold = snapshot.get("hold")
    memory = redis_memory(client, keys)
    found = Facts(
        now_ms=now,
        due=int(snapshot["queued"]),
        in_flight=int(snapshot["in_flight"]),
        scheduled=int(snapshot["scheduled"]),
        oldest_due_ms=oldest_due_ms(client, keys, now),
        last_claim_ms=int(last_claim) if last_claim else None,
        worker_ticks_ms=tuple(w.last_tick_ms for w in beats),
        hold=None
        if not hold
        else HoldFacts(int(hold["code"]), str(hold["info"]), int(hold["since_ms"]), int(hold["next_probe_ms"])),
        pause=None if pause is None else PauseFacts(pause.reason, pause.since_ms, pause.by),
        memory_used_bytes=None if memory is None else memory.counted_bytes,
        memory_max_bytes=0 if memory is None else memory.max_bytes,
        limiter_use=use,
    )
    return found, pause, beats


def add_app_state(
    client: redis.Redis, keys: Keys, snapshot: dict[str, Any], limits: Thresholds | None = None
) -> AppState:
    """Add ``state`` (the state, its reason and figures) and ``pause`` to one app's status document."""
    found, pause, beats = facts(client, keys, snapshot)
    state = derive(found, limits or Thresholds())
    snapshot["state"] = state.as_dict()
    snapshot["pause"] = None if pause is None else pause.as_dict()
    snapshot["workers"] = [w.as_dict() for w in beats]
    return state


def add_states(
    client: redis.Redis, keys: Sequence[Keys], totals: dict[str, Any], limits: Thresholds | None = None
) -> dict[str, AppState]:
    """Add each app's state to its document under ``totals["apps"]``, and the worst of them to the totals.

    The totals' ``state`` is the worst app's (its reason names the app when there are several),
    with ``level`` the highest and ``app`` the app it is about; ``workers`` are the deployment's.
    """
    states = {k.app: add_app_state(client, k, totals["apps"][k.app], limits) for k in keys}
    if not states:
        return states
    name, bad = worst(states)
    several = len(states) > 1
    totals["state"] = {
        **bad.as_dict(),
        "reason": f"app {name}: {bad.reason}" if several else bad.reason,
        "app": name,
        "apps_not_ok": sorted(n for n, s in states.items() if s.level > 0),
    }
    paused = [{**s["pause"], "app": n} for n, s in totals["apps"].items() if s.get("pause")]
    totals["pause"] = paused[0] if paused else None
    totals["workers"] = totals["apps"][keys[0].app]["workers"]
    return states


def check(states: dict[str, AppState]) -> tuple[int, str]:
    """``imunban status --check``: the exit status (0 ok, 1 degraded, 2 stalled/held/full) and its one line."""
    name, bad = worst(states)
    others = sum(1 for n, s in states.items() if n != name and s.level > 0)
    return bad.level, check_line(bad, name if len(states) > 1 else None, others)
