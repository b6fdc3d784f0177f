"""Store.reschedule on a real redis-server: the check "still pending?" and the move are one script."""

from __future__ import annotations

import redis

from helpers import KEYS, assert_gauge, req, server_ms
from imunban.keys import HIGH_BAND_MS, request_id
from imunban.store import Batch, RescheduleResult, Store
from imunban.validation import UnbanRequest

LATER_MS = 4_102_444_800_000  # 2100-01-01
LATER2_MS = 4_133_980_800_000


def test_a_scheduled_request_moves_and_keeps_its_priority(r: redis.Redis, store: Store) -> None:
    """Pending requests move to the new due time; a high one stays high; the gauges follow."""
    store.enqueue([req("g", "a", at_ms=LATER_MS), req("g", "h", at_ms=LATER_MS, high=True)])
    assert store.reschedule("g", ["a", "h"], LATER2_MS) == RescheduleResult(rescheduled=2)
    assert r.zscore(KEYS.sched_group("g"), "a") == LATER2_MS
    assert r.zscore(KEYS.sched_group("g"), "h") == LATER2_MS
    assert r.hget(KEYS.high, request_id("g", "h")) == "1" and not r.hexists(KEYS.high, request_id("g", "a"))
    assert r.zscore(KEYS.schedidx, "g") == LATER2_MS
    assert int(r.hget(KEYS.stats, "rescheduled") or 0) == 2
    assert_gauge(r)


def test_between_ready_and_scheduled_both_ways(r: redis.Redis, store: Store) -> None:
    """A ready request moved later is scheduled; a scheduled one moved to the past is ready (high: above the band)."""
    store.enqueue([req("g", "now"), req("g", "vip", at_ms=LATER_MS, high=True)])
    past = server_ms(r) - 1_000
    assert store.reschedule("g", ["now"], LATER_MS).rescheduled == 1
    assert store.reschedule("g", ["vip"], past).rescheduled == 1
    assert r.zscore(KEYS.sched_group("g"), "now") == LATER_MS and r.zscore(KEYS.ready("g"), "now") is None
    assert r.zscore(KEYS.ready("g"), "vip") == past - HIGH_BAND_MS
    assert r.zscore(KEYS.groups, "g") is not None
    assert_gauge(r)


def test_what_is_not_pending_is_left_alone(r: redis.Redis, store: Store) -> None:
    """Cancelled, delivered, in flight or never enqueued: nothing is scheduled, nothing is stored."""
    store.enqueue([req("g", "cancelled", "delivered", "leased", at_ms=None)])
    store.cancel("g", ["cancelled"])
    batch = store.claim("g", max_members=1)
    assert isinstance(batch, Batch) and batch.members == ["delivered"]
    store.ack(batch, "delivered")
    leased = store.claim("g", max_members=1)
    assert isinstance(leased, Batch) and leased.members == ["leased"]
    result = store.reschedule("g", ["cancelled", "delivered", "leased", "never"], LATER_MS)
    assert result == RescheduleResult(rescheduled=0)
    assert r.exists(KEYS.sched_group("g")) == 0 and r.zcard(KEYS.ready("g")) == 0
    assert r.zscore(KEYS.inflight, request_id("g", "leased")) is not None  # the copy in flight is not touched
    assert r.exists(KEYS.versions) == 0
    assert_gauge(r)


def test_a_version_orders_the_reschedule_like_any_instruction(r: redis.Redis, store: Store) -> None:
    """Lower than the version applied: ignored and counted; higher: applied and remembered for later instructions."""
    store.enqueue([UnbanRequest("g", ("m",), at_ms=LATER_MS, version=100)])
    assert store.reschedule("g", ["m"], LATER2_MS, version=50) == RescheduleResult(rescheduled=0, stale=1)
    assert r.zscore(KEYS.sched_group("g"), "m") == LATER_MS
    assert int(r.hget(KEYS.stats, "stale_instructions") or 0) == 1
    assert store.reschedule("g", ["m"], LATER2_MS, version=200) == RescheduleResult(rescheduled=1)
    assert r.hget(KEYS.versions, request_id("g", "m")) == "200"
    assert store.enqueue([UnbanRequest("g", ("m",), version=150)]).stale == 1  # older than the reschedule
    assert r.zscore(KEYS.sched_group("g"), "m") == LATER2_MS
    assert_gauge(r)
