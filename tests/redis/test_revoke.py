"""A cancel or a newer instruction revokes the in-flight copy of a request (SPEC §2, issue 10 defect 4)."""

from __future__ import annotations

import redis

from helpers import KEYS, assert_gauge, req, server_ms, true_scheduled, wait_server_ms
from imunban.keys import request_id
from imunban.schedule import Scheduler
from imunban.settings import LingerPolicy
from imunban.store import Batch, Store


def stat(r: redis.Redis, name: str) -> int:
    return int(r.hget(KEYS.stats, name) or 0)


def claim_batch(store: Store, group: str) -> Batch:
    batch = store.claim(group)
    assert isinstance(batch, Batch)
    return batch


def nothing_pending(r: redis.Redis, group: str) -> bool:
    return r.zcard(KEYS.ready(group)) == 0 and r.zcard(KEYS.sched_group(group)) == 0


def test_cancel_revokes_the_lease_of_an_in_flight_copy(r: redis.Redis, store: Store) -> None:
    """cancel removes the in-flight copy's lease and deadline (the contract the pre-call check reads)."""
    store.enqueue([req("g", "m", "n")])
    claim_batch(store, "g")
    assert store.cancel("g", ["m"]) == 1
    assert r.hget(KEYS.leases, request_id("g", "m")) is None
    assert r.zscore(KEYS.inflight, request_id("g", "m")) is None
    assert r.hget(KEYS.leases, request_id("g", "n")) is not None
    assert stat(r, "cancelled") == 1


def test_cancel_while_leased_then_requeue_leaves_nothing_pending(r: redis.Redis, store: Store) -> None:
    """A copy cancelled in flight is not given back by a retry, a rate-limit answer or a hold."""
    store.enqueue([req("g", "m")])
    batch = claim_batch(store, "g")
    store.cancel("g", ["m"])
    assert store.requeue(batch, delay_ms=0, code=10002) == 0
    assert store.requeue(batch, delay_ms=5_000, code=10002) == 0
    assert nothing_pending(r, "g")
    assert r.hget(KEYS.meta, request_id("g", "m")) is None
    assert_gauge(r)


def test_cancel_while_leased_then_reap_leaves_nothing_pending(r: redis.Redis) -> None:
    """A copy cancelled in flight whose worker then dies is not returned by the reaper."""
    store = Store(r, KEYS, linger=LingerPolicy(0), lease_ms=1_000)
    sched = Scheduler(r, KEYS, linger=LingerPolicy(0))
    store.enqueue([req("g", "m")])
    claim_batch(store, "g")
    store.cancel("g", ["m"])
    wait_server_ms(r, server_ms(r) + 1_050)
    store.reap()
    sched.promote_all()
    assert nothing_pending(r, "g")
    assert store.claim("g") is None
    assert_gauge(r)


def test_newer_enqueue_while_leased_then_requeue_keeps_only_the_newer(r: redis.Redis, store: Store) -> None:
    """A newer instruction revokes the in-flight copy: after requeue only the newer one is pending, at its time."""
    store.enqueue([req("g", "m")])
    batch = claim_batch(store, "g")
    later = server_ms(r) + 3_600_000
    store.enqueue([req("g", "m", at_ms=later)])
    assert r.hget(KEYS.leases, request_id("g", "m")) is None
    assert store.requeue(batch, delay_ms=0, code=10002) == 0
    assert r.zrange(KEYS.sched_group("g"), 0, -1, withscores=True) == [("m", later)]
    assert r.zcard(KEYS.ready("g")) == 0 and true_scheduled(r) == 1
    assert_gauge(r)


def test_ack_of_a_revoked_copy_records_nothing(r: redis.Redis, store: Store) -> None:
    """The answer for a revoked copy ends nothing: no outcome, no delivered count; it counts as a stale ack."""
    store.enqueue([req("g", "m")])
    batch = claim_batch(store, "g")
    store.cancel("g", ["m"])
    assert store.ack(batch, "delivered")[0] == 0
    assert r.xlen(KEYS.outcomes) == 0
    assert stat(r, "delivered") == 0 and stat(r, "stale_acks") == 1
