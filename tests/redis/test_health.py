"""The facts an app's state is derived from, read from a real Redis, and the state added to status documents."""

from __future__ import annotations

import redis

from helpers import KEYS, req, server_ms
from imunban.health import add_app_state, add_states, check, facts, oldest_due_ms, redis_memory, thresholds
from imunban.heartbeat import Heartbeat
from imunban.keys import Keys
from imunban.limiter import RedisRateLimiter
from imunban.pause import Actor, Pause
from imunban.settings import Settings
from imunban.stats import status, status_of_apps
from imunban.store import Batch, Store


def test_facts_read_the_due_work_workers_claim_limiter_and_memory(r: redis.Redis, store: Store) -> None:
    """Due count and oldest due time, live worker ticks, the last claim, the limiter's use and memory are read."""
    store.enqueue([req("g", "a", "b"), req("h", "c")])
    assert isinstance(store.claim("h"), Batch)
    Heartbeat(r, KEYS, "w1:1").beat()
    limiter = RedisRateLimiter(r, KEYS, 1, 100.0, sleep=lambda s: None)
    for _ in range(20):
        limiter.acquire()
    found, pause, beats = facts(r, KEYS, status(r, KEYS))
    now = found.now_ms
    assert (found.due, found.in_flight, pause) == (2, 1, None)
    assert found.oldest_due_ms is not None and 0 <= now - found.oldest_due_ms < 10_000
    assert found.last_claim_ms is not None and 0 <= now - found.last_claim_ms < 10_000
    assert [b.worker for b in beats] == ["w1:1"] and found.workers_alive(10_000) == 1
    assert found.limiter_use is not None and found.limiter_use >= 1.0  # 20 reservations booked ahead
    assert found.memory_used_bytes is not None and found.memory_used_bytes > 0
    assert found.memory_max_bytes == 0  # the test server has no maxmemory


def test_memory_against_maxmemory_is_read(r: redis.Redis) -> None:
    """INFO memory's used memory (less what maxmemory does not count) and maxmemory."""
    r.config_set("maxmemory", 512 * 1024 * 1024)
    try:
        memory = redis_memory(r, KEYS)
    finally:
        r.config_set("maxmemory", 0)
    assert memory is not None and memory.max_bytes == 512 * 1024 * 1024
    assert 0 < memory.counted_bytes <= memory.used_bytes < memory.max_bytes


def test_an_overdue_schedule_counts_as_the_oldest_due(r: redis.Redis, store: Store) -> None:
    """With no pump to promote, a scheduled request already due is the oldest due (no worker: it is stalled)."""
    due = server_ms(r) - 60_000
    store.enqueue([req("g", "a", at_ms=server_ms(r) + 3_600_000)])
    r.zadd(KEYS.sched_group("late"), {"x": due})
    r.zadd(KEYS.schedidx, {"late": due})
    assert oldest_due_ms(r, KEYS, server_ms(r)) == due


def test_a_status_document_gets_the_state_pause_and_workers(r: redis.Redis, store: Store) -> None:
    """add_app_state adds state (reason, level, figures), pause and workers; no worker with work due is stalled."""
    store.enqueue([req("g", "a")])
    Pause(r, KEYS).pause("deploy", Actor("cli", "cli", "u@h"))
    snapshot = status(r, KEYS)
    state = add_app_state(r, KEYS, snapshot)
    assert state.state == "paused" and snapshot["state"]["state"] == "paused"
    assert snapshot["pause"]["reason"] == "deploy" and snapshot["pause"]["by"] == "cli u@h"
    assert snapshot["workers"] == []
    Pause(r, KEYS).resume(Actor("cli", "cli", "u@h"))
    snapshot = status(r, KEYS)
    assert add_app_state(r, KEYS, snapshot).state == "stalled"
    assert snapshot["state"]["reason"].startswith("no live worker (none has ticked within the last hour) while 1 ")


def test_the_totals_show_the_worst_app_and_name_it(r: redis.Redis) -> None:
    """Two apps, one stalled and one idle: the totals' state is stalled, its reason names the app; check exits 2."""
    a, b = Keys("t", "a"), Keys("t", "b")
    Store(r, a).enqueue([req("g", "x")])
    Heartbeat(r, b, "w:1").beat()
    Heartbeat(r, b, "w:1").retire()
    totals = status_of_apps(r, [a, b])
    states = add_states(r, [a, b], totals, thresholds(Settings()))
    assert (states["a"].state, states["b"].state) == ("stalled", "idle")
    assert totals["state"]["state"] == "stalled" and totals["state"]["app"] == "a"
    assert totals["state"]["reason"].startswith("app a: no live worker")
    assert totals["apps"]["b"]["state"]["state"] == "idle" and totals["workers"] == []
    level, line = check(states)
    assert level == 2 and line.startswith("CRITICAL stalled (app a): no live worker")


def test_thresholds_come_from_the_settings_and_the_check_option() -> None:
    """IMUNBAN_STALL_AFTER_S and --lag-s set the thresholds."""
    limits = thresholds(Settings.from_env({"IMUNBAN_STALL_AFTER_S": "5"}), lag_s=2.5)
    assert (limits.stall_after_ms, limits.lag_ms) == (5_000, 2_500)
