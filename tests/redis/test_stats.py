"""Operator views on a real redis-server: ``status`` counts (SPEC §3) and ``trace`` of one request."""

from __future__ import annotations

import redis

from helpers import KEYS, req, server_ms, wait_server_ms
from imunban.hold import Hold
from imunban.stats import COUNTERS, status, trace
from imunban.store import Batch, Store


def claim(store: Store, group: str, **kwargs: int) -> Batch:
    batch = store.claim(group, **kwargs)  # type: ignore[arg-type]
    assert isinstance(batch, Batch)
    return batch


def test_status_of_an_empty_store(r: redis.Redis) -> None:
    """An empty deployment reports zeros, no hold, and every documented key."""
    s = status(r, KEYS)
    for key in ("queued", "scheduled", "in_flight", "delivered", "dead", "hold"):
        assert key in s
    assert (s["queued"], s["scheduled"], s["in_flight"], s["delivered"], s["dead"]) == (0, 0, 0, 0, 0)
    assert s["hold"] is None and s["next_due_ms"] is None
    assert set(s["counters"]) == set(COUNTERS)


def test_status_counts_each_state(r: redis.Redis, store: Store) -> None:
    """queued, scheduled, in_flight, delivered and dead each count their requests."""
    later = server_ms(r) + 3_600_000
    store.enqueue([req("q", "1", "2", "3"), req("f", "1", "2"), req("d", "1", "2"), req("x", "1")])
    store.enqueue([req("s", "1", "2", at_ms=later), req("s", "3", at_ms=later + 5)])
    claim(store, "f")
    store.ack(claim(store, "d"), "delivered")
    store.ack(claim(store, "x"), "dead", code=10004, info="bad")
    s = status(r, KEYS)
    assert (s["queued"], s["scheduled"], s["in_flight"], s["delivered"], s["dead"]) == (3, 3, 2, 2, 1)
    assert s["next_due_ms"] == later
    assert s["groups_waiting"] == 1
    assert s["counters"]["enqueued"] == 11
    assert s["server_time_ms"] > 0


def test_status_counts_overdue_scheduled_as_queued(r: redis.Redis, store: Store) -> None:
    """A scheduled request whose due time passed but is not promoted yet counts as queued."""
    store.enqueue([req("g", "m", at_ms=server_ms(r) + 2)])
    wait_server_ms(r, int(r.zrange(KEYS.schedidx, 0, 0, withscores=True)[0][1]))
    s = status(r, KEYS)
    assert (s["queued"], s["scheduled"]) == (1, 0)


def test_status_shows_the_hold(r: redis.Redis) -> None:
    """While held, status shows the hold's code, info and since."""
    Hold(r, KEYS).set(60020, "package expired")
    hold = status(r, KEYS)["hold"]
    assert hold["code"] == 60020 and hold["info"] == "package expired" and hold["since_ms"] > 0


def test_trace_follows_a_request_through_its_states(r: redis.Redis, store: Store) -> None:
    """trace reports not_pending, scheduled, ready, in_flight (with attempts) and dead in turn."""
    assert trace(r, KEYS, "g", "m")["state"] == "not_pending"
    later = server_ms(r) + 3_600_000
    store.enqueue([req("g", "m", at_ms=later, high=True)])
    t = trace(r, KEYS, "g", "m")
    assert (t["state"], t["due_ms"], t["priority"], t["attempts"]) == ("scheduled", later, "high", 0)
    due = server_ms(r) - 10
    store.enqueue([req("g", "m", at_ms=due, high=True)])
    t = trace(r, KEYS, "g", "m")
    assert (t["state"], t["due_ms"], t["priority"]) == ("ready", due, "high")
    store.requeue(claim(store, "g"), delay_ms=0, code=10002)
    batch = claim(store, "g")
    t = trace(r, KEYS, "g", "m")
    assert (t["state"], t["due_ms"], t["priority"]) == ("in_flight", due, "high")
    assert t["lease_deadline_ms"] == batch.claimed_at_ms + store.lease_ms
    assert (t["attempts"], t["last_code"]) == (1, 10002)
    store.ack(batch, "dead", code=70107, info="not imported")
    t = trace(r, KEYS, "g", "m")
    assert t["state"] == "dead"
    assert (t["dead"]["code"], t["dead"]["attempts"]) == (70107, 2)
    assert t["last_outcome"]["outcome"] == "dead"


def test_trace_after_delivery_shows_the_last_outcome(r: redis.Redis, store: Store) -> None:
    """A delivered request is not pending and its outcome entry is found in the stream."""
    store.enqueue([req("g", "m"), req("g", "other")])
    store.ack(claim(store, "g"), "delivered")
    t = trace(r, KEYS, "g", "m")
    assert t["state"] == "not_pending" and t["priority"] == "normal"
    assert t["last_outcome"]["member"] == "m" and t["last_outcome"]["outcome"] == "delivered"


def test_status_counts_overdue_of_several_groups_and_keeps_later_ones_scheduled(r: redis.Redis, store: Store) -> None:
    """Overdue scheduled requests of several groups count as queued; the rest of their groups stays scheduled."""
    now = server_ms(r)
    later = now + 3_600_000
    store.enqueue([req("a", "1", "2", at_ms=now + 2), req("a", "3", at_ms=later), req("b", "1", at_ms=now + 3)])
    store.enqueue([req("c", "1", at_ms=later + 1), req("r", "1")])
    wait_server_ms(r, now + 4)
    s = status(r, KEYS)
    assert (s["queued"], s["scheduled"]) == (4, 2)
    assert s["next_due_ms"] == now + 2
