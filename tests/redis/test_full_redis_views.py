"""On a full Redis (maxmemory, noeviction) operators still see and act: status, trace, purge, holds, dispatch.

Redis refuses every command queued inside MULTI once it is over ``maxmemory`` (even reads), and any
command that may grow memory outside a script that has already written; these run the real code
against a private server that is filled up first.
"""

from __future__ import annotations

import redis

from helpers import KEYS, overfill_redis, req, wait_server_ms
from imunban.deadletter import DeadLetters
from imunban.hold import Hold
from imunban.pump import Pump
from imunban.schedule import Scheduler
from imunban.settings import LingerPolicy
from imunban.stats import status
from imunban.store import Batch, Store
from imunban.trace import trace


def backlog_with_a_dead_letter(fr: redis.Redis) -> Store:
    """g: a (ready), b (in flight); s: c (scheduled later); d dead with 10004."""
    store = Store(fr, KEYS, linger=LingerPolicy(0))
    store.enqueue([req("g", "d")])
    batch = store.claim("g")
    assert isinstance(batch, Batch)
    store.ack(batch, "dead", code=10004, info="bad member")
    store.enqueue([req("g", "b")])
    assert isinstance(store.claim("g"), Batch)
    store.enqueue([req("g", "a"), req("s", "c", at_ms=2**41)])
    return store


def test_status_answers_on_a_full_redis(fr: redis.Redis) -> None:
    """`imunban status` at maxmemory: the same counts as before Redis filled up, no 'Redis is full'."""
    backlog_with_a_dead_letter(fr)
    Hold(fr, KEYS).set(70009, "wrong key")
    before = status(fr, KEYS)
    overfill_redis(fr)
    after = status(fr, KEYS)
    assert {k: v for k, v in after.items() if k != "server_time_ms"} == {
        k: v for k, v in before.items() if k != "server_time_ms"
    }
    assert (after["queued"], after["scheduled"], after["in_flight"], after["dead"]) == (1, 1, 1, 1)
    assert after["hold"]["code"] == 70009


def test_trace_answers_on_a_full_redis(fr: redis.Redis) -> None:
    """`imunban trace` at maxmemory: ready, in flight, scheduled and dead requests are found."""
    backlog_with_a_dead_letter(fr)
    overfill_redis(fr)
    states = {member: trace(fr, KEYS, group, member)["state"] for group, member in (("g", "a"), ("g", "b"), ("s", "c"))}
    assert states == {"a": "ready", "b": "in_flight", "c": "scheduled"}
    dead = trace(fr, KEYS, "g", "d")
    assert dead["state"] == "dead" and dead["dead"]["code"] == 10004
    assert dead["last_outcome"]["outcome"] == "dead"


def test_dead_purge_works_on_a_full_redis_and_frees_memory(fr: redis.Redis) -> None:
    """`imunban dead purge` at maxmemory deletes every dead letter (it frees memory) and says how many."""
    backlog_with_a_dead_letter(fr)
    dead = DeadLetters(fr, KEYS)
    overfill_redis(fr)
    assert dead.purge() == 1
    assert dead.count() == 0 and not fr.exists(KEYS.dead_info)


def test_a_hold_is_set_probed_and_released_on_a_full_redis(fr: redis.Redis) -> None:
    """A configuration error while Redis is full still holds delivery, is shown, probed and lifted."""
    backlog_with_a_dead_letter(fr)
    hold = Hold(fr, KEYS, probe_base_ms=1)
    overfill_redis(fr)
    hold.set(70009, "wrong key")
    assert status(fr, KEYS)["hold"]["code"] == 70009
    state = hold.get()
    assert state is not None
    wait_server_ms(fr, state.next_probe_ms)  # the first probe is due 1 ms after the hold began
    assert hold.try_probe() == "g"
    assert hold.release()
    assert hold.get() is None
    assert [record.code for record in hold.history()] == [70009]


def test_dispatch_markers_work_on_a_full_redis(fr: redis.Redis) -> None:
    """The pump dispatches, a running task refreshes its marker and finishes it, all at maxmemory."""
    store = Store(fr, KEYS, linger=LingerPolicy(0))
    store.enqueue([req("g", *(f"m{i}" for i in range(30)))])
    submitted: list[tuple[str, int, bool]] = []
    pump = Pump(
        fr,
        KEYS,
        store,
        Scheduler(fr, KEYS, linger=LingerPolicy(0)),
        Hold(fr, KEYS),
        lambda app, group, slot, probe: submitted.append((group, slot, probe)),
    )
    overfill_redis(fr)
    assert pump.dispatch() == 2
    assert {slot for _, slot, _ in submitted} == {0, 1}
    assert pump.touch("g", 0)
    pump.finish("g", 0)
    assert not pump.touch("g", 0)


def test_expired_replies_are_forgotten_when_delivery_stops(fr: redis.Redis) -> None:
    """Replies kept for replayed calls are forgotten by the pump's maintenance once expired, with no call to do it."""
    store = Store(fr, KEYS, linger=LingerPolicy(0))
    store.enqueue([req("g", "a", "b")])
    batch = store.claim("g")
    assert isinstance(batch, Batch)
    store.ack(batch, "delivered")  # the claim and the ack each keep a reply for a replay
    assert fr.hlen(KEYS.replies) == 2
    fr.zadd(KEYS.reply_expiry, {call: 1 for call in fr.hkeys(KEYS.replies)})  # long expired
    fr.hset(KEYS.replies, "fresh", "n1\x1f")
    fr.zadd(KEYS.reply_expiry, {"fresh": 2**50})
    overfill_redis(fr)
    assert Scheduler(fr, KEYS).forget_replies() == 2
    assert fr.hkeys(KEYS.replies) == ["fresh"] and fr.zrange(KEYS.reply_expiry, 0, -1) == ["fresh"]
