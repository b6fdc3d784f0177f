"""Scheduled requests and leases on a real redis-server: promotion on the server clock, and the reaper."""

from __future__ import annotations

import threading

import redis

from helpers import KEYS, assert_gauge, req, run_in_threads, server_ms, true_ready, true_scheduled, wait_server_ms
from imunban.deadletter import DeadLetters
from imunban.keys import request_id
from imunban.schedule import PROMOTE_CHUNK, Scheduler
from imunban.settings import LingerPolicy
from imunban.store import Batch, Store


def claim_batch(store: Store, group: str) -> Batch:
    batch = store.claim(group)
    assert isinstance(batch, Batch)
    return batch


def expire_leases(r: redis.Redis, store: Store) -> None:
    """Wait until every lease ``store`` granted has passed its deadline on the server clock."""
    wait_server_ms(r, server_ms(r) + store.lease_ms + 1)


# -- promotion ---------------------------------------------------------------------------------


def test_bulk_100k_scheduled_are_all_promoted_once_due_and_none_early(
    r: redis.Redis, store: Store, sched: Scheduler
) -> None:
    """100,000 requests over 1,000 groups due ~2 s ahead are all promoted once due; a later one is not."""
    due = server_ms(r) + 2_000
    requests = [req(f"grp-{g}", *(f"user-{g}-{i}" for i in range(100)), at_ms=due + g % 7) for g in range(1_000)]
    result = store.enqueue(requests)
    # All are scheduled unless the enqueue itself outlasted the 2 s (then the late ones were due: ready).
    assert result.stored == 100_000 and result.replaced == 0
    early = sched.promote_all()
    if server_ms(r) < due:
        assert early == 0  # every promote above read the clock before `due`: nothing may move
    wait_server_ms(r, due + 7)
    far = server_ms(r) + 5_000
    store.enqueue([req("far", "late", at_ms=far)])
    moved = early + sched.promote_all(max_rounds=1_000)
    if server_ms(r) < far:
        assert moved == result.scheduled
        assert r.zrange(KEYS.sched_group("far"), 0, -1) == ["late"] and true_scheduled(r) == 1
    assert true_scheduled(r) <= 1
    assert true_ready(r) - r.zcard(KEYS.ready("far")) == 100_000
    assert_gauge(r)
    assert r.zcard(KEYS.groups) - r.zcard(KEYS.ready("far")) == 1_000


def test_promote_takes_at_most_one_chunk(r: redis.Redis, store: Store, sched: Scheduler) -> None:
    """promote moves at most `limit` per call, oldest first; promote_all loops until nothing due is left."""
    past = server_ms(r) - 60_000  # scheduled entries already due: written directly, independent of timing
    r.zadd(KEYS.sched_group("g"), {f"m{i}": past + i for i in range(PROMOTE_CHUNK + 10)})
    r.zadd(KEYS.schedidx, {"g": past})
    r.hset(KEYS.stats, "scheduled", PROMOTE_CHUNK + 10)
    assert sched.promote(limit=100) == 100
    assert r.zrange(KEYS.ready("g"), 0, -1) == [f"m{i}" for i in range(100)]
    assert sched.promote_all() == PROMOTE_CHUNK - 90
    assert sched.promote() == 0
    assert_gauge(r)


def test_promote_before_due_moves_nothing(r: redis.Redis, store: Store, sched: Scheduler) -> None:
    """A request due later on the server clock is never promoted early."""
    due = server_ms(r) + 5_000
    store.enqueue([req("g", "m", at_ms=due)])
    moved = sched.promote_all()
    if server_ms(r) < due:
        assert moved == 0
        assert r.zscore(KEYS.sched_group("g"), "m") == due


def test_promoted_request_keeps_due_score_and_priority(r: redis.Redis, store: Store, sched: Scheduler) -> None:
    """Promotion scores by due time (high ones below the band) and indexes the group for claiming."""
    due = server_ms(r) + 200
    assert store.enqueue([req("g", "n", at_ms=due), req("g", "h", at_ms=due, high=True)]).scheduled == 2
    wait_server_ms(r, due)
    assert sched.promote_all() == 2
    assert r.zscore(KEYS.ready("g"), "n") == due
    assert float(r.zscore(KEYS.ready("g"), "h") or 0) < 0
    assert r.zscore(KEYS.groups, "g") is not None
    batch = claim_batch(store, "g")
    assert [(i.member, i.high, i.due_ms) for i in batch.items] == [("h", True, due), ("n", False, due)]


def test_concurrent_promoters_move_each_request_once(r: redis.Redis, redis_url: str, store: Store) -> None:
    """Four promoters racing over the same due requests promote each exactly once."""
    due = server_ms(r) + 500
    result = store.enqueue([req(f"g{g}", *(f"m{i}" for i in range(500)), at_ms=due) for g in range(8)])
    wait_server_ms(r, due)
    moved: list[int] = []
    lock = threading.Lock()

    def promoter() -> None:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        count = Scheduler(client, KEYS, linger=LingerPolicy(0)).promote_all()
        with lock:
            moved.append(count)
        client.close()

    run_in_threads(promoter, 4)
    assert sum(moved) == result.scheduled  # (any enqueued after `due` passed went straight to ready)
    assert true_ready(r) == 4_000
    assert true_scheduled(r) == 0
    assert_gauge(r)


# -- reaping -----------------------------------------------------------------------------------


def test_expired_leases_return_via_sched_and_are_claimable_again(r: redis.Redis, sched: Scheduler) -> None:
    """An expired lease goes to sched at its original due, then promote makes it ready and claimable."""
    store = Store(r, KEYS, linger=LingerPolicy(0), lease_ms=1)
    due = server_ms(r) - 10
    store.enqueue([req("g", "a", "b", at_ms=due), req("g", "h", high=True)])
    first = claim_batch(store, "g")
    expire_leases(r, store)
    assert store.reap() == 3
    assert r.zcard(KEYS.inflight) == 0 and r.hlen(KEYS.leases) == 0
    assert r.zscore(KEYS.sched_group("g"), "a") == due
    assert r.hget(KEYS.high, request_id("g", "h")) == "1"
    assert int(r.hget(KEYS.stats, "reaped") or 0) == 3
    assert sched.promote_all() == 3
    again = claim_batch(store, "g")
    assert sorted(again.members) == sorted(first.members)
    assert again.members[0] == "h" and again.items[0].high
    assert again.token != first.token
    assert_gauge(r)


def test_reap_keeps_attempt_count(r: redis.Redis, sched: Scheduler) -> None:
    """A reaped request keeps the attempts it already had."""
    store = Store(r, KEYS, linger=LingerPolicy(0), lease_ms=1)
    store.enqueue([req("g", "m")])
    store.requeue(claim_batch(store, "g"), delay_ms=0, code=10002)
    claim_batch(store, "g")
    expire_leases(r, store)
    store.reap()
    sched.promote_all()
    assert claim_batch(store, "g").items[0].attempts == 1


def test_reap_keeps_a_newer_scheduled_instruction(r: redis.Redis, sched: Scheduler) -> None:
    """A request re-enqueued for later while leased keeps that later due time (its old lease was revoked)."""
    store = Store(r, KEYS, linger=LingerPolicy(0), lease_ms=1)
    store.enqueue([req("g", "m")])
    claim_batch(store, "g")
    later = server_ms(r) + 3_600_000
    store.enqueue([req("g", "m", at_ms=later)])
    expire_leases(r, store)
    assert store.reap() == 0
    assert r.zscore(KEYS.sched_group("g"), "m") == later
    assert r.zcard(KEYS.inflight) == 0


def test_reap_does_not_duplicate_a_newer_ready_instruction(r: redis.Redis, sched: Scheduler) -> None:
    """A request re-enqueued as ready while leased is not copied into sched (its old lease was revoked)."""
    store = Store(r, KEYS, linger=LingerPolicy(0), lease_ms=1)
    store.enqueue([req("g", "m")])
    claim_batch(store, "g")
    store.enqueue([req("g", "m")])
    expire_leases(r, store)
    assert store.reap() == 0
    assert true_scheduled(r) == 0
    assert r.zrange(KEYS.ready("g"), 0, -1) == ["m"]
    assert store.cancel("g", ["m"]) == 1
    assert sched.promote_all() == 0
    assert r.zcard(KEYS.ready("g")) == 0
    assert_gauge(r)


def test_reap_leaves_unexpired_leases_alone(r: redis.Redis, sched: Scheduler) -> None:
    """Leases whose deadline has not passed are untouched by the reaper."""
    long = Store(r, KEYS, linger=LingerPolicy(0), lease_ms=60_000)
    short = Store(r, KEYS, linger=LingerPolicy(0), lease_ms=1)
    long.enqueue([req("keep", "a", "b"), req("lose", "c")])
    kept = claim_batch(long, "keep")
    claim_batch(short, "lose")
    expire_leases(r, short)
    assert short.reap() == 1
    assert sorted(r.zrange(KEYS.inflight, 0, -1)) == [request_id("keep", "a"), request_id("keep", "b")]
    assert long.ack(kept, "delivered")[0] == 2


def test_reap_with_nothing_expired_is_zero(r: redis.Redis) -> None:
    """Reaping an empty inflight set does nothing."""
    assert Store(r, KEYS).reap() == 0


# -- the scheduled gauge and the schedule index -----------------------------------------------


def test_scheduled_gauge_and_index_stay_exact_through_every_operation(r: redis.Redis, sched: Scheduler) -> None:
    """After every kind of operation the `scheduled` gauge and schedidx match the sched:{group} sets exactly."""
    # The gauge is the sum of the sched:{group} sizes; schedidx holds each non-empty group at its earliest
    # due and no empty one; the operations are enqueue, cancel, promote, requeue, reap, replay and group_gone.
    store = Store(r, KEYS, linger=LingerPolicy(0), lease_ms=1)
    dead = DeadLetters(r, KEYS)
    steps = 0

    def check() -> None:
        nonlocal steps
        steps += 1
        assert_gauge(r)  # ready and scheduled gauges, and schedidx == min score of every non-empty sched set

    now = server_ms(r)
    soon, later = now + 300, now + 3_600_000
    store.enqueue([req(f"g{i}", *(f"m{j}" for j in range(25)), at_ms=later + i) for i in range(3)])
    check()
    assert true_scheduled(r) == 75 and r.zscore(KEYS.schedidx, "g1") == later + 1
    store.enqueue([req("g0", "m0", at_ms=soon), req("g1", "m1"), req("g2", "x", "y", at_ms=soon, high=True)])
    check()  # a re-schedule moves g0's head earlier; a ready re-enqueue takes m1 out of sched:g1
    assert r.zscore(KEYS.schedidx, "g0") == soon and r.zscore(KEYS.sched_group("g1"), "m1") is None
    assert store.cancel("g0", ["m0", "m5", "none"]) == 2
    check()  # cancelling g0's earliest member moves its index entry back to the next one
    assert r.zscore(KEYS.schedidx, "g0") == later
    assert store.cancel("g3", ["nothing"]) == 0
    check()
    store.enqueue([req("g3", "only", at_ms=later)])
    assert store.cancel("g3", ["only"]) == 1
    check()  # an emptied schedule leaves no index entry
    assert r.zscore(KEYS.schedidx, "g3") is None and r.exists(KEYS.sched_group("g3")) == 0
    wait_server_ms(r, soon)
    assert sched.promote_all() == 2
    check()
    assert r.zscore(KEYS.schedidx, "g2") == later + 2
    batch = store.claim("g2")
    assert isinstance(batch, Batch) and sorted(batch.members) == ["x", "y"]
    store.requeue(batch.subset(["x"]), delay_ms=60_000, code=10002)
    check()  # a delayed retry goes to sched:g2 and re-indexes g2
    assert r.zscore(KEYS.sched_group("g2"), "x") is not None
    expire_leases(r, store)
    assert store.reap() == 1
    check()  # the reaped lease goes back to sched:g2 at its original due (already past)
    assert r.zscore(KEYS.schedidx, "g2") == soon
    assert sched.promote_all() == 1
    check()
    ready = store.claim("g1")
    assert isinstance(ready, Batch)
    store.ack(ready, "dead", code=10004, info="bad")
    assert dead.replay().replayed == 1
    check()  # a replayed dead letter is scheduled due now
    assert sched.promote_all() == 1
    check()
    assert store.end_group("g1", code=10010, info="gone") == 25
    check()
    assert r.zscore(KEYS.schedidx, "g1") is None
    assert steps == 12
