"""A full Redis (``maxmemory`` with ``noeviction``) refuses intake up front and still drains its backlog.

Redis 6.2 (and 7 for a script without flags) checks ``maxmemory`` only at a script's first write, and
only when that command may grow memory; these tests run the real scripts on a private server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
import redis

from helpers import KEYS, fill_redis, req, server_ms, set_maxmemory, wait_server_ms
from imunban.deadletter import DeadLetters
from imunban.delivery import Deliverer
from imunban.errors import RedisFullError, TransportError
from imunban.hold import Hold
from imunban.limiter import RedisRateLimiter
from imunban.memory import MEMORY_MAX_AGE_S, MemoryGauge
from imunban.producer import Producer
from imunban.retry import RetryPolicy
from imunban.schedule import Scheduler
from imunban.settings import Durability, LingerPolicy, Settings
from imunban.store import MOVING_OVERSHOOT, Batch, EnqueueRefusedError, Store
from imunban.validation import UnbanRequest

#: What one script call may add after passing the check just under the limit: one enqueue chunk
#: (1,000 members) with its index entries. The tests assert Redis stays within limit + this.
MARGIN = 256 * 1024


def used(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def pending(r: redis.Redis) -> int:
    """Members stored in every ready and sched set (the truth the counts are checked against)."""
    keys = [*r.scan_iter(match=KEYS.ready("*")), *r.scan_iter(match=KEYS.sched_group("*"))]
    return sum(int(r.zcard(key)) for key in keys)


def many(groups: int, members: int, prefix: str = "m") -> list[UnbanRequest]:
    return [req(f"g{g}", *(f"{prefix}{g}-{i}" for i in range(members))) for g in range(groups)]


def test_enqueue_into_a_full_redis_is_refused_and_stores_nothing(fr: redis.Redis) -> None:
    """At maxmemory, enqueue raises RedisFullError saying Redis is full, stores nothing, evicts nothing."""
    store = Store(fr, KEYS, linger=LingerPolicy(0))
    store.enqueue([req("g0", "a", "b")])
    limit = fill_redis(fr)
    fillers = len(list(fr.scan_iter(match="filler:*")))
    with pytest.raises(EnqueueRefusedError, match=r"Redis is full \(") as caught:
        store.enqueue(many(20, 1_000))
    assert caught.value.result.stored == 0
    assert "0 requests were stored before the refusal" in str(caught.value)
    assert pending(fr) == 2
    assert len(list(fr.scan_iter(match="filler:*"))) == fillers
    assert used(fr) <= limit + MARGIN


def test_an_enqueue_that_fills_redis_reports_exactly_what_it_stored(fr: redis.Redis) -> None:
    """Redis fills up part way: the error's result equals what is stored, and Redis stays near its limit."""
    store = Store(fr, KEYS, linger=LingerPolicy(0))
    limit = set_maxmemory(fr, 2 * 1024 * 1024)
    with pytest.raises(EnqueueRefusedError) as caught:
        store.enqueue([*many(10, 10_000), req("late", "x", at_ms=2**41)])
    stored = caught.value.result
    assert 0 < stored.stored < 100_001
    assert stored.stored == pending(fr) == stored.ready + stored.scheduled
    assert used(fr) <= limit + MARGIN, (used(fr), limit)


def test_cancel_and_dead_replay_are_refused_when_full(fr: redis.Redis) -> None:
    """cancel and dead-letter replay write too: at maxmemory they are refused and change nothing."""
    store = Store(fr, KEYS, linger=LingerPolicy(0))
    store.enqueue([req("g", "a", "b")])
    batch = store.claim("g")
    assert isinstance(batch, Batch)
    store.ack(batch.subset(["a"]), "dead", code=10004, info="bad")
    dead = DeadLetters(fr, KEYS)
    fill_redis(fr)
    with pytest.raises(RedisFullError, match="Redis is full"):
        store.cancel("g", ["b"])
    with pytest.raises(RedisFullError, match="Redis is full"):
        dead.replay()
    assert dead.count() == 1
    assert fr.hget(KEYS.leases, "g\x1fb") is not None


def test_bulk_into_a_full_redis_raises_saying_how_many_were_stored(fr: redis.Redis) -> None:
    """Producer.bulk raises an error carrying the EnqueueResult stored before Redis filled up."""
    producer = Producer.on(fr, Settings(key_prefix=KEYS.prefix))
    limit = set_maxmemory(fr, 1024 * 1024)
    items = [{"group_id": f"g{i % 50}", "member": f"m{i}"} for i in range(60_000)]
    with pytest.raises(EnqueueRefusedError, match="requests were stored before the refusal") as caught:
        producer.bulk(items)
    assert caught.value.result.stored == pending(fr) > 0
    assert used(fr) <= limit + MARGIN


class FlakyApi:
    """Answers a transport error to the first call for each group in ``flaky``, success otherwise."""

    def __init__(self, *flaky: str) -> None:
        self.flaky = set(flaky)
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def unban(self, group_id: str, members: Sequence[str]) -> None:
        self.calls.append((group_id, tuple(members)))
        if group_id in self.flaky:
            self.flaky.discard(group_id)
            raise TransportError(0, "connection reset")

    def renew_sig(self) -> None:
        pass


def test_a_full_redis_still_promotes_delivers_retries_and_reaps(fr: redis.Redis) -> None:
    """Delivery frees memory, so it runs at maxmemory: promote, limiter, claim, requeue, ack and reap."""
    store = Store(fr, KEYS, linger=LingerPolicy(0))
    sched = Scheduler(fr, KEYS, linger=LingerPolicy(0))
    due = server_ms(fr) + 50
    store.enqueue([req("g1", "a", "b", at_ms=due), req("g2", "c", "d")])
    api = FlakyApi("g2")
    limiter = RedisRateLimiter(fr, KEYS, 1, 1e6, sleep=lambda s: None)
    policy = dataclasses.replace(RetryPolicy.from_settings(Settings()), backoff_base_ms=0, backoff_cap_ms=0)
    deliverer = Deliverer(store, limiter, api, Hold(fr, KEYS), policy=policy, rand=lambda: 0.0)
    limit = fill_redis(fr)
    wait_server_ms(fr, due)
    assert sched.promote() == 2
    deliverer.deliver_group("g1")
    deliverer.deliver_group("g2")  # the transport error requeues c and d, due at once
    deliverer.deliver_group("g2")
    assert api.calls == [("g1", ("a", "b")), ("g2", ("c", "d")), ("g2", ("c", "d"))]
    assert pending(fr) == 0
    assert int(fr.hget(KEYS.stats, "delivered") or 0) == 4
    assert used(fr) <= limit + MARGIN


def test_a_full_redis_still_reaps_an_expired_lease(fr: redis.Redis) -> None:
    """A crashed worker's lease comes back through reap at maxmemory; intake works again once there is room."""
    store = Store(fr, KEYS, linger=LingerPolicy(0), lease_ms=1)
    store.enqueue([req("g", "e")])
    assert isinstance(store.claim("g"), Batch)
    fill_redis(fr)
    wait_server_ms(fr, server_ms(fr) + 5)
    assert Store(fr, KEYS).reap() == 1
    assert pending(fr) == 1
    fr.delete(*fr.scan_iter(match="filler:*"))
    assert store.enqueue([req("g", "f")]).stored == 1


# -- the intake reserve (IMUNBAN_INTAKE_MEMORY_FRACTION) ------------------------------------------


def reserve_store(fr: redis.Redis, fraction: float, clock: list[float] | None = None) -> Store:
    ticks = clock if clock is not None else [0.0]
    gauge = MemoryGauge(fr, KEYS.stats, clock=lambda: ticks[0])
    return Store(fr, KEYS, linger=LingerPolicy(0), durability=Durability(intake_memory_fraction=fraction), memory=gauge)


def test_intake_stops_at_the_reserve_and_leaves_the_rest_to_delivery(fr: redis.Redis) -> None:
    """Above the intake fraction of maxmemory enqueue is refused (naming the setting) while Redis itself has room."""
    Store(fr, KEYS, linger=LingerPolicy(0)).enqueue([req("g", "a")])
    fr.config_set("maxmemory", int(used(fr) / 0.6))  # 60 % used: past the intake's half, far from maxmemory
    store = reserve_store(fr, 0.5)
    with pytest.raises(EnqueueRefusedError, match="IMUNBAN_INTAKE_MEMORY_FRACTION") as caught:
        store.enqueue([req("g", "b")])
    assert caught.value.result.stored == 0
    assert "Redis is full" in str(caught.value)
    assert pending(fr) == 1
    fr.set("plain-write", "x")  # Redis still takes writes: the reserve is delivery's and the broker's
    assert reserve_store(fr, 0.9).enqueue([req("g", "b")]).stored == 1  # 60 % is below 90 %


def test_a_request_moved_from_a_message_in_the_same_redis_passes_a_full_redis(fr: redis.Redis) -> None:
    """moving (a Celery message on a broker sharing the Redis): past the reserve and at maxmemory it is stored
    (storing and acknowledging it frees memory); only MOVING_OVERSHOOT past maxmemory refuses it."""
    Store(fr, KEYS, linger=LingerPolicy(0)).enqueue([req("g", "a")])
    fr.config_set("maxmemory", int(used(fr) / 0.6))
    with pytest.raises(EnqueueRefusedError):
        reserve_store(fr, 0.5).enqueue([req("g", "b")])
    assert reserve_store(fr, 0.5).enqueue([req("g", "b")], moving=True).stored == 1
    fr.config_set("maxmemory", used(fr) - 16 * 1024)  # just past maxmemory: every deny-oom write is refused
    with pytest.raises(EnqueueRefusedError, match=r"maxmemory reached"):
        reserve_store(fr, 1.0).enqueue([req("g", "c")])
    assert reserve_store(fr, 0.5).enqueue([req("g", "c")], moving=True).stored == 1
    fr.config_set("maxmemory", int(used(fr) / (1 + MOVING_OVERSHOOT) - 16 * 1024))
    with pytest.raises(EnqueueRefusedError, match=r"maxmemory reached"):
        reserve_store(fr, 0.5).enqueue([req("g", "d")], moving=True)
    assert pending(fr) == 3


def test_the_memory_reading_is_reused_for_a_while_and_a_bulk_reads_afresh(fr: redis.Redis) -> None:
    """One INFO per MEMORY_MAX_AGE_S for single enqueues (injected clock); a pipeline of several chunks reads anew."""
    clock = [0.0]
    store = reserve_store(fr, 0.5, clock)
    store.enqueue([req("g", "a")])  # reads INFO: far below the reserve
    fr.config_set("maxmemory", int(used(fr) / 0.6))
    assert store.enqueue([req("g", "b")]).stored == 1  # the reading is younger than its max age: reused
    clock[0] += MEMORY_MAX_AGE_S
    with pytest.raises(EnqueueRefusedError):
        store.enqueue([req("g", "c")])  # old enough: read again, past the reserve
    fr.config_set("maxmemory", 0)
    fresh = reserve_store(fr, 0.5, [0.0])
    fresh.enqueue([req("g", "d")])
    fr.config_set("maxmemory", int(used(fr) / 0.6))
    with pytest.raises(EnqueueRefusedError):
        fresh.enqueue(many(3, 1_000, prefix="bulk"))  # three chunks in one pipeline: read afresh first


def test_no_maxmemory_or_a_fraction_of_one_means_no_reserve(fr: redis.Redis) -> None:
    """Without maxmemory nothing is refused; with fraction 1 only Redis's own limit refuses."""
    assert reserve_store(fr, 0.01).enqueue([req("g", "a")]).stored == 1
    fr.config_set("maxmemory", int(used(fr) / 0.95))
    assert reserve_store(fr, 1.0).enqueue([req("g", "b")]).stored == 1
