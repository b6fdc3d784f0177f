"""Operator views on a real redis-server: ``status`` counts (SPEC §3); the trace of a request is in test_trace.py."""

from __future__ import annotations

import redis

from helpers import KEYS, req, server_ms, wait_server_ms
from imunban.hold import Hold
from imunban.stats import COUNTERS, status
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
    # Far enough ahead that a loaded machine still stores it as scheduled (2 ms ahead once arrived due already).
    due_ms = server_ms(r) + 250
    store.enqueue([req("g", "m", at_ms=due_ms)])
    assert status(r, KEYS)["scheduled"] == 1
    wait_server_ms(r, due_ms)
    s = status(r, KEYS)
    assert (s["queued"], s["scheduled"]) == (1, 0)


def test_status_shows_the_hold(r: redis.Redis) -> None:
    """While held, status shows the hold's code, info and since."""
    Hold(r, KEYS).set(60020, "package expired")
    hold = status(r, KEYS)["hold"]
    assert hold["code"] == 60020 and hold["info"] == "package expired" and hold["since_ms"] > 0


def test_status_counts_overdue_of_several_groups_and_keeps_later_ones_scheduled(r: redis.Redis, store: Store) -> None:
    """Overdue scheduled requests of several groups count as queued; the rest of their groups stays scheduled."""
    now = server_ms(r)
    later = now + 3_600_000
    # Far enough ahead that a loaded machine still stores them as scheduled (2 ms ahead arrived due already).
    store.enqueue([req("a", "1", "2", at_ms=now + 250), req("a", "3", at_ms=later), req("b", "1", at_ms=now + 251)])
    store.enqueue([req("c", "1", at_ms=later + 1), req("r", "1")])
    assert status(r, KEYS)["scheduled"] == 5
    wait_server_ms(r, now + 252)
    s = status(r, KEYS)
    assert (s["queued"], s["scheduled"]) == (4, 2)
    assert s["next_due_ms"] == now + 250
