"""Order between producers: an instruction's optional version (SPEC §2, issue 10 defect 5) on a real Redis."""

from __future__ import annotations

import redis

from helpers import KEYS, assert_gauge, req, server_ms, wait_server_ms
from imunban.keys import request_id
from imunban.producer import Producer
from imunban.schedule import Scheduler
from imunban.settings import LingerPolicy, Settings
from imunban.store import Batch, Store
from imunban.validation import MAX_VERSION, UnbanRequest


def stat(r: redis.Redis, name: str) -> int:
    return int(r.hget(KEYS.stats, name) or 0)


def vreq(group: str, member: str, version: int | None, *, at_ms: int | None = None) -> UnbanRequest:
    return UnbanRequest(group, (member,), at_ms, "normal", version)


def due_of(r: redis.Redis, group: str, member: str) -> float | None:
    return r.zscore(KEYS.ready(group), member) or r.zscore(KEYS.sched_group(group), member)


def claim_batch(store: Store, group: str) -> Batch:
    batch = store.claim(group)
    assert isinstance(batch, Batch)
    return batch


def test_lower_version_enqueue_is_ignored_and_counted(r: redis.Redis, store: Store) -> None:
    """After version 5 is applied, version 4 changes nothing and counts one stale instruction."""
    t5, t4 = server_ms(r) + 5_000_000, server_ms(r) + 4_000_000
    store.enqueue([vreq("g", "m", 5, at_ms=t5)])
    result = store.enqueue([vreq("g", "m", 4, at_ms=t4)])
    assert (result.stored, result.stale) == (0, 1)
    assert due_of(r, "g", "m") == t5
    assert stat(r, "stale_instructions") == 1
    assert_gauge(r)


def test_higher_version_replaces_in_any_arrival_order(r: redis.Redis, store: Store) -> None:
    """Versions 3, 1, 7, 2 arriving in that order leave version 7's due time."""
    base = server_ms(r) + 1_000_000
    for v in (3, 1, 7, 2):
        store.enqueue([vreq("g", "m", v, at_ms=base + v)])
    assert due_of(r, "g", "m") == base + 7
    assert stat(r, "stale_instructions") == 2


def test_lower_version_enqueue_after_a_cancel_is_ignored(r: redis.Redis, store: Store) -> None:
    """A cancel with version 9 is remembered: a redelivered enqueue with version 8 does not resurrect it."""
    store.enqueue([vreq("g", "m", 8)])
    assert store.cancel("g", ["m"], version=9) == 1
    assert store.enqueue([vreq("g", "m", 8)]).stale == 1
    assert due_of(r, "g", "m") is None
    assert store.claim("g") is None


def test_cancel_of_a_request_never_seen_still_orders_later_instructions(r: redis.Redis, store: Store) -> None:
    """A cancel that arrives before its lower-versioned enqueue still wins."""
    assert store.cancel("g", ["m"], version=9) == 0
    assert store.enqueue([vreq("g", "m", 3)]).stale == 1
    assert store.enqueue([vreq("g", "m", 10)]).stored == 1


def test_lower_version_cancel_is_ignored(r: redis.Redis, store: Store) -> None:
    """A cancel with a lower version than the applied enqueue leaves the request pending and counts."""
    store.enqueue([vreq("g", "m", 5)])
    assert store.cancel("g", ["m"], version=4) == 0
    assert r.zscore(KEYS.ready("g"), "m") is not None
    assert stat(r, "stale_instructions") == 1


def test_equal_versions_apply_but_an_enqueue_never_overrides_an_equal_cancel(r: redis.Redis, store: Store) -> None:
    """Equal version: a re-sent enqueue applies, a cancel applies, but an enqueue after an equal cancel is ignored."""
    later = server_ms(r) + 3_600_000
    store.enqueue([vreq("g", "m", 5)])
    assert store.enqueue([vreq("g", "m", 5, at_ms=later)]).scheduled == 1
    assert due_of(r, "g", "m") == later
    assert store.cancel("g", ["m"], version=5) == 1
    assert store.enqueue([vreq("g", "m", 5)]).stale == 1
    assert due_of(r, "g", "m") is None


def test_unversioned_instruction_applies_and_keeps_the_stored_version(r: redis.Redis, store: Store) -> None:
    """Without a version arrival order decides, and the version applied before still orders later ones."""
    later = server_ms(r) + 3_600_000
    store.enqueue([vreq("g", "m", 5)])
    assert store.enqueue([vreq("g", "m", None, at_ms=later)]).stored == 1
    assert due_of(r, "g", "m") == later
    assert r.hget(KEYS.versions, request_id("g", "m")) == "5"
    assert store.enqueue([vreq("g", "m", 4)]).stale == 1
    assert due_of(r, "g", "m") == later


def test_versions_compare_exactly_across_int64(r: redis.Redis, store: Store) -> None:
    """Versions beyond 2**53 (equal as doubles) are compared exactly; 0 and the int64 maximum work."""
    store.enqueue([vreq("g", "m", MAX_VERSION - 1)])
    assert store.enqueue([vreq("g", "m", MAX_VERSION - 2)]).stale == 1
    assert store.enqueue([vreq("g", "m", MAX_VERSION)]).stale == 0
    assert store.enqueue([vreq("g", "z", 0)]).stored == 1
    assert store.enqueue([vreq("g", "z", 10)]).stale == 0
    assert store.enqueue([vreq("g", "z", 9)]).stale == 1


def test_higher_version_revokes_the_in_flight_copy_and_a_lower_one_does_not(r: redis.Redis, store: Store) -> None:
    """A stale instruction leaves the lease alone; a newer one revokes it."""
    store.enqueue([vreq("g", "m", 5)])
    claim_batch(store, "g")
    rid = request_id("g", "m")
    store.enqueue([vreq("g", "m", 4)])
    assert r.hget(KEYS.leases, rid) is not None
    store.enqueue([vreq("g", "m", 6)])
    assert r.hget(KEYS.leases, rid) is None and r.zscore(KEYS.inflight, rid) is None


def test_version_is_remembered_after_delivery_then_forgotten(r: redis.Redis, store: Store) -> None:
    """After the request ends its version still orders redelivered instructions, until the memory expires."""
    sched = Scheduler(r, KEYS, linger=LingerPolicy(0), version_memory_ms=200)
    store.enqueue([vreq("g", "m", 5)])
    store.ack(claim_batch(store, "g"), "delivered")
    assert sched.forget_versions() == 0
    assert store.enqueue([vreq("g", "m", 4)]).stale == 1
    wait_server_ms(r, server_ms(r) + 250)
    assert sched.forget_versions() == 1
    assert r.exists(KEYS.versions, KEYS.version_ends) == 0
    assert store.enqueue([vreq("g", "m", 4)]).stored == 1


def test_pending_and_in_flight_versions_are_never_forgotten(r: redis.Redis, store: Store) -> None:
    """Only ended requests are forgotten: a pending or leased request keeps its version however old."""
    sched = Scheduler(r, KEYS, linger=LingerPolicy(0), version_memory_ms=1)
    store.enqueue([vreq("g", "a", 5), vreq("g", "b", 5)])
    store.cancel("g", ["a"], version=6)
    store.enqueue([vreq("g", "a", 7)])  # a lives again
    claim_batch(store, "g")
    wait_server_ms(r, server_ms(r) + 5)
    assert sched.forget_versions() == 0
    assert r.hgetall(KEYS.versions) == {request_id("g", "a"): "7", request_id("g", "b"): "5"}


def test_group_gone_and_dead_end_a_versioned_request(r: redis.Redis, store: Store) -> None:
    """Requests ended as group_gone or dead start being forgotten; a replayed dead letter lives again."""
    sched = Scheduler(r, KEYS, linger=LingerPolicy(0), version_memory_ms=60_000)
    later = server_ms(r) + 3_600_000
    store.enqueue([vreq("gone", "m", 1, at_ms=later), vreq("d", "m", 2)])
    store.end_group("gone", code=10010, info="gone")
    store.ack(claim_batch(store, "d"), "dead", code=10004, info="bad")
    assert set(r.zrange(KEYS.version_ends, 0, -1)) == {request_id("gone", "m"), request_id("d", "m")}
    assert sched.forget_versions() == 0


def test_no_version_memory_without_versions(r: redis.Redis, store: Store) -> None:
    """Requests without a version add nothing per request: no versions hash, no ends set."""
    store.enqueue([req("g", *(f"u{i}" for i in range(50)))])
    batch = claim_batch(store, "g")
    store.cancel("g", ["u30"])
    store.ack(batch, "delivered")
    assert r.exists(KEYS.versions, KEYS.version_ends) == 0


def test_producer_passes_versions_on_every_call(r: redis.Redis) -> None:
    """Producer.enqueue/cancel/bulk take version; bulk orders one member's items by version, not position."""
    producer = Producer.on(r, Settings(key_prefix=KEYS.prefix, linger_ms=0))
    later = server_ms(r) + 3_600_000
    producer.bulk(
        [
            {"group_id": "g", "member": "m", "version": 2, "at": later / 1000},
            {"group_id": "g", "member": "m", "version": 1},
        ]
    )
    assert due_of(r, "g", "m") == later
    assert producer.enqueue("g", "m", version=1).stale == 1
    assert producer.cancel("g", "m", version=1) == 0
    assert producer.cancel("g", "m", version=3) == 1
