"""The pump on a real Redis: dispatch markers give each slot one task; lost tasks are re-dispatched."""

from __future__ import annotations

import time

import redis

from imunban.hold import Hold
from imunban.keys import Keys
from imunban.pump import BUSY_MAX_S, MIN_TICK_S, Pump, PumpConfig
from imunban.schedule import Scheduler
from imunban.settings import LingerPolicy
from imunban.store import Store
from imunban.validation import build_request


def make_pump(r: redis.Redis, **config: int) -> tuple[Pump, list[tuple[str, int, bool]], Store]:
    keys = Keys("t")
    store = Store(r, keys, linger=LingerPolicy(0))
    submitted: list[tuple[str, int, bool]] = []
    pump = Pump(
        r, keys, store, Scheduler(r, keys, linger=LingerPolicy(0)), Hold(r, keys),
        lambda a, g, s, p: submitted.append((g, s, p)), PumpConfig(**config),
    )  # fmt: skip
    return pump, submitted, store


def test_dispatch_marks_one_task_per_slot(r: redis.Redis) -> None:
    """A claimable group gets ceil(ready/20) slots (capped); a second tick adds no duplicate."""
    pump, submitted, store = make_pump(r, slots_per_group=4)
    store.enqueue([build_request("big", [f"u{i}" for i in range(200)]), build_request("small", ["a"])])
    pump.tick()
    assert sorted(submitted) == sorted([("big", s, False) for s in range(4)] + [("small", 0, False)])
    pump.tick()
    assert len(submitted) == 5


def test_finished_slot_can_be_dispatched_again(r: redis.Redis) -> None:
    """After a task finishes its slot, the group is dispatched again if it still has work."""
    pump, submitted, store = make_pump(r)
    store.enqueue([build_request("g", ["a"])])
    pump.tick()
    pump.finish("g", 0)
    pump.tick()
    assert submitted == [("g", 0, False), ("g", 0, False)]


def test_lost_task_is_redispatched_after_marker_ttl(r: redis.Redis) -> None:
    """A task whose message was lost never refreshes its marker; after the ttl the slot is sent again."""
    pump, submitted, store = make_pump(r, marker_ttl_ms=200)
    store.enqueue([build_request("g", ["a"])])
    pump.tick()
    pump.tick()
    assert len(submitted) == 1
    time.sleep(0.25)
    pump.tick()
    assert len(submitted) == 2


def test_touch_keeps_marker_alive(r: redis.Redis) -> None:
    """A running task that touches its marker is not duplicated even past the original ttl."""
    pump, submitted, store = make_pump(r, marker_ttl_ms=200)
    store.enqueue([build_request("g", ["a"])])
    pump.tick()
    for _ in range(3):
        time.sleep(0.1)
        assert pump.touch("g", 0)
        pump.tick()
    assert len(submitted) == 1


def test_marker_cap_bounds_outstanding_tasks(r: redis.Redis) -> None:
    """No more markers than max_markers are alive at once, whatever the number of groups."""
    pump, submitted, store = make_pump(r, max_markers=10)
    store.enqueue([build_request(f"g{i}", ["a"]) for i in range(50)])
    pump.tick()
    pump.tick()
    assert len(submitted) == 10


def test_hold_blocks_dispatch_and_sends_one_probe(r: redis.Redis) -> None:
    """While held, ticks dispatch nothing but one probe task per probe turn."""
    pump, submitted, store = make_pump(r)
    store.enqueue([build_request("g", ["a"])])
    Hold(r, Keys("t")).set(60006, "SDKAppID invalid")
    r.hset(Keys("t").hold, "next_probe_ms", 0)  # probe turn due now
    pump.tick()
    pump.tick()
    assert submitted == [("g", -1, True)]


def test_tick_promotes_due_and_reaps_expired(r: redis.Redis) -> None:
    """A tick moves due scheduled requests to ready and returns expired leases."""
    pump, submitted, store = make_pump(r)
    short = Store(r, Keys("t"), linger=LingerPolicy(0), lease_ms=1)
    store.enqueue([build_request("g", ["a"], at=time.time() + 0.05)])
    store.enqueue([build_request("h", ["b"])])
    assert short.claim("h") is not None
    time.sleep(0.1)
    pump.tick()  # reap (first tick), promote
    pump.tick()
    assert {g for g, _, _ in submitted} == {"g", "h"}


def test_reap_every_tick_reaps_on_every_tick(r: redis.Redis) -> None:
    """With reap_every=1 each tick reaps: an expired lease is returned by the very next tick."""
    pump, _, store = make_pump(r, reap_every=1)
    short = Store(r, Keys("t"), linger=LingerPolicy(0), lease_ms=1)
    for tick in range(3):
        store.enqueue([build_request(f"g{tick}", ["m"])])
        assert short.claim(f"g{tick}") is not None
        time.sleep(0.01)
        pump.tick()
        assert int(r.hget(Keys("t").stats, "reaped") or 0) == tick + 1


def test_finish_wakes_a_waiting_pump(r: redis.Redis) -> None:
    """A task that finishes its slot wakes a pump at once: a busy pump does not poll for freed slots."""
    pump, submitted, store = make_pump(r)
    store.enqueue([build_request("g", ["a", "b"])])
    pump.tick()
    r.delete(Keys("t").wake)
    pump.finish("g", 0)
    assert r.llen(Keys("t").wake) == 1
    assert pump.wait(30.0) == 0.0  # woken, not timed out
    pump.tick()
    assert submitted == [("g", 0, False), ("g", 0, False)]


def test_busy_pump_sleeps_until_the_next_claimable_group(r: redis.Redis) -> None:
    """With every claimable slot taken the pump sleeps until the next group's claimable time, at most BUSY_MAX_S."""
    pump, _, store = make_pump(r, slots_per_group=1)
    store.enqueue([build_request("now", [f"u{i}" for i in range(50)])])
    pump.tick()
    assert pump.next_tick_s == BUSY_MAX_S  # nothing else will become due: finishing tasks wake it
    store.enqueue([build_request("later", ["a"])])
    seconds, micros = r.time()
    r.zadd(Keys("t").groups, {"later": seconds * 1000 + micros // 1000 + 200})  # as a lingering group is indexed
    pump.tick()
    assert MIN_TICK_S <= pump.next_tick_s <= 0.2


def test_a_short_wait_is_ended_by_the_pumps_own_alarm(r: redis.Redis) -> None:
    """A wait until a due time ends by the pump's alarm token, not by Redis's coarse BLPOP timeout.

    Redis serves a BLPOP timeout only at its next cron tick (hz 10: up to 100 ms late), which made
    scheduled requests late by up to that much; the pump's own timer pushes a token at the due time.
    """
    pump, _, _ = make_pump(r)
    assert pump.wait(0.03) == 0.0  # woken (by the alarm), not timed out
    assert r.exists(Keys("t").pump_alarm(pump.pump_id)) == 0  # the token was consumed


def test_an_idle_wait_sets_no_alarm(r: redis.Redis) -> None:
    """With nothing due (the idle cap), no alarm thread is started: the wait simply times out."""
    pump, _, _ = make_pump(r)
    assert pump.alarm_due(1.0) is False and pump.alarm_due(0.2) is True
