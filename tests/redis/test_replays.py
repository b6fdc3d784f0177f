"""Replayed script calls are harmless: redis-py's Retry re-sends a script whose first send may have run."""

from __future__ import annotations

from typing import Any

import redis
from redis.commands.core import Script

from helpers import KEYS, req
from imunban.hold import Hold
from imunban.keys import request_id
from imunban.pump import Pump, PumpConfig
from imunban.schedule import Scheduler
from imunban.settings import LingerPolicy
from imunban.stats import parse_meta
from imunban.store import Batch, Store


def stat(r: redis.Redis, name: str) -> int:
    return int(r.hget(KEYS.stats, name) or 0)


class Replayed:
    """Runs a script twice with the same KEYS and ARGV, as a retry after a lost reply does; returns the second reply."""

    def __init__(self, script: Script) -> None:
        self.script = script

    def __call__(self, keys: list[Any], args: list[Any], client: Any = None) -> Any:
        self.script(keys=keys, args=args, client=client)
        return self.script(keys=keys, args=args, client=client)


def claim_batch(store: Store, group: str) -> Batch:
    batch = store.claim(group)
    assert isinstance(batch, Batch)
    return batch


def test_replayed_claim_returns_the_same_batch_and_leases_no_other(r: redis.Redis, store: Store) -> None:
    """A claim sent twice with one token leases one batch of 20 and returns it; the other 5 stay ready."""
    store.enqueue([req("g", *(f"u{i:02}" for i in range(25)))])
    store._claim = Replayed(store._claim)  # type: ignore[method-assign]
    batch = claim_batch(store, "g")
    assert batch.members == [f"u{i:02}" for i in range(20)]
    assert r.zcard(KEYS.inflight) == 20
    assert r.zcard(KEYS.ready("g")) == 5
    assert {r.hget(KEYS.leases, request_id("g", m)).split("|")[0] for m in batch.members} == {batch.token}  # type: ignore[union-attr]


def test_replayed_ack_counts_once_and_no_stale_ack(r: redis.Redis, store: Store) -> None:
    """An ack sent twice reports its members acked and counts no stale acknowledgement."""
    store.enqueue([req("g", "a", "b")])
    batch = claim_batch(store, "g")
    store._ack = Replayed(store._ack)  # type: ignore[method-assign]
    acked, latencies = store.ack(batch, "delivered")
    assert acked == 2 and len(latencies) == 2
    assert stat(r, "delivered") == 2 and stat(r, "stale_acks") == 0
    assert r.xlen(KEYS.outcomes) == 2


def test_replayed_requeue_counts_once_and_no_stale_ack(r: redis.Redis, store: Store) -> None:
    """A requeue sent twice gives the batch back once, spends one attempt and counts no stale acknowledgement."""
    store.enqueue([req("g", "a")])
    batch = claim_batch(store, "g")
    store._requeue = Replayed(store._requeue)  # type: ignore[method-assign]
    assert store.requeue(batch, delay_ms=0, code=10002) == 1
    assert stat(r, "retried") == 1 and stat(r, "stale_acks") == 0
    meta = parse_meta(r.hget(KEYS.meta, request_id("g", "a")))
    assert meta is not None and meta.attempts == 1


def test_two_acks_of_one_token_are_not_mistaken_for_a_replay(r: redis.Redis, store: Store) -> None:
    """Bisection acks halves of one batch in separate calls: both take effect."""
    store.enqueue([req("g", "a", "b")])
    batch = claim_batch(store, "g")
    assert store.ack(batch.subset(["a"]), "delivered")[0] == 1
    assert store.ack(batch.subset(["b"]), "dead", code=10004, info="bad")[0] == 1
    assert stat(r, "delivered") == 1 and stat(r, "dead") == 1


def test_replayed_dispatch_still_submits_its_slots(r: redis.Redis) -> None:
    """A dispatch sent twice hands out the slots the first send marked: no wake-up waits for the marker ttl."""
    store = Store(r, KEYS, linger=LingerPolicy(0))
    submitted: list[tuple[str, int, bool]] = []
    pump = Pump(
        r, KEYS, store, Scheduler(r, KEYS, linger=LingerPolicy(0)), Hold(r, KEYS),
        lambda a, g, s, p: submitted.append((g, s, p)), PumpConfig(),
    )  # fmt: skip
    store.enqueue([req("g", "a")])
    pump._dispatch = Replayed(pump._dispatch)  # type: ignore[method-assign]
    assert pump.dispatch() == 1
    assert submitted == [("g", 0, False)]
