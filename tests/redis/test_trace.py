"""The trace of a request on a real redis-server: each script that ends a request writes its record (imunban.trace).

"Was this member unbanned?" is answered from the record and the live state, whatever the traffic since:
the record is kept IMUNBAN_TRACE_TTL_S in the member's trace shard, never read from the outcome stream.
"""

from __future__ import annotations

import itertools

import pytest
import redis

from helpers import KEYS, fill_redis, req, server_ms, wait_server_ms
from imunban.keys import SEP, request_id, trace_shard_of
from imunban.settings import DEFAULT_TRACE_TTL_S, LingerPolicy
from imunban.store import Batch, Store
from imunban.trace import Record, Superseded, member_search, parse_record, trace
from imunban.validation import UnbanRequest

TTL_MS = DEFAULT_TRACE_TTL_S * 1000


def claim(store: Store, group: str) -> Batch:
    batch = store.claim(group)
    assert isinstance(batch, Batch)
    return batch


def record(r: redis.Redis, group: str, member: str) -> Record:
    raw = r.hget(KEYS.trace_of(member), request_id(group, member))
    assert raw is not None, f"no trace record of {group}/{member}"
    return parse_record(raw)


def assert_kept(r: redis.Redis, member: str, ttl_ms: int = TTL_MS) -> None:
    """The member's shard expires one TTL after its newest record (PEXPIRE on every write)."""
    assert 0 < r.pttl(KEYS.trace_of(member)) <= ttl_ms


def same_shard(member: str, count: int) -> list[str]:
    """``count`` other member ids whose records share ``member``'s shard."""
    shard = trace_shard_of(member)
    return list(itertools.islice((m for i in itertools.count() if trace_shard_of(m := f"o{i}") == shard), count))


# -- each script that ends a request writes its record -------------------------------------------


@pytest.mark.parametrize(("outcome", "code", "info"), [("delivered", 0, ""), ("dead", 10004, "bad member")])
def test_ack_writes_the_record_with_its_ttl(r: redis.Redis, store: Store, outcome: str, code: int, info: str) -> None:
    """ack.lua records delivered or dead with when, attempts, ErrorCode and info, and the shard expires a TTL later."""
    store.enqueue([req("g", "m")])
    store.requeue(claim(store, "g"), delay_ms=0, code=10002)
    store.ack(claim(store, "g"), outcome, code=code, info=info)
    rec = record(r, "g", "m")
    assert (rec.outcome, rec.attempts, rec.code, rec.info, rec.version, rec.superseded) == (
        outcome, 2, code, info, None, None,
    )  # fmt: skip
    assert rec.at_ms is not None and abs(rec.at_ms - server_ms(r)) < 60_000
    assert_kept(r, "m")


def test_group_gone_writes_every_pending_members_record(r: redis.Redis, store: Store) -> None:
    """The leased batch (ack) and every pending member, even one due months ahead (group_gone.lua), say group_gone."""
    far = server_ms(r) + 90 * 86_400_000
    store.enqueue([req("g", "leased"), req("g", "later", at_ms=far)])
    batch = claim(store, "g")
    store.enqueue([req("g", "ready")])
    store.ack(batch, "group_gone", code=10010, info="group not found")
    assert store.end_group("g", code=10010, info="group not found") == 2
    for member in ("leased", "later", "ready"):
        rec = record(r, "g", member)
        assert (rec.outcome, rec.code, rec.info) == ("group_gone", 10010, "group not found"), member
        assert trace(r, KEYS, "g", member)["state"] == "group_gone"
        assert_kept(r, member)


def test_cancel_writes_cancelled_for_pending_in_flight_and_dead(r: redis.Redis, store: Store) -> None:
    """cancel.lua records `cancelled` for a pending copy, a revoked in-flight one and an ended dead letter."""
    store.enqueue([req("f", "flying"), req("d", "died"), req("p", "waiting", at_ms=server_ms(r) + 3_600_000)])
    claim(store, "f")
    store.ack(claim(store, "d"), "dead", code=60003, info="gone")
    assert store.cancel("f", ["flying"]) + store.cancel("d", ["died"]) + store.cancel("p", ["waiting"]) == 3
    for group, member in (("f", "flying"), ("d", "died"), ("p", "waiting")):
        assert record(r, group, member).outcome == "cancelled"
        assert trace(r, KEYS, group, member)["state"] == "cancelled"
        assert_kept(r, member)


def test_a_cancelled_and_a_never_seen_member_are_told_apart(r: redis.Redis, store: Store) -> None:
    """A request cancelled says when and by which version; one never enqueued says never seen (not both not_pending)."""
    store.enqueue([req("g", "m", at_ms=server_ms(r) + 3_600_000)])
    store.cancel("g", ["m"], version=9)
    cancelled, never = trace(r, KEYS, "g", "m"), trace(r, KEYS, "g", "nobody")
    assert cancelled["state"] == "cancelled" and never["state"] == "never_seen"
    assert cancelled["summary"].startswith("cancelled at ")
    assert "by an instruction with version 9" in cancelled["summary"]
    assert never["summary"] == "never seen: nothing pending, in flight or dead, and no outcome in the last 7 days"
    # A cancel that found nothing to cancel records no outcome: that request was never seen.
    store.cancel("g", ["ghost"])
    assert trace(r, KEYS, "g", "ghost")["state"] == "never_seen"


def test_a_stale_instruction_is_noted_as_superseded_beside_the_outcome(r: redis.Redis, store: Store) -> None:
    """An enqueue, cancel or reschedule below the applied version is noted (superseded) and the outcome stays."""
    store.enqueue([UnbanRequest("g", ("m",), version=5)])
    store.cancel("g", ["m"], version=7)
    store.enqueue([UnbanRequest("g", ("m",), version=6)])  # stale: the cancel with 7 stands
    t = trace(r, KEYS, "g", "m")
    assert t["state"] == "cancelled" and t["last_outcome"]["version"] == 7
    assert t["superseded"] == {
        "at_ms": t["superseded"]["at_ms"], "ignored_version": 6, "applied_version": 7, "by_cancel": True,
    }  # fmt: skip
    # Pending with version 200, a late 150 is stale: pending still, and the note says so.
    store.enqueue([UnbanRequest("g", ("p",), server_ms(r) + 3_600_000, version=200)])
    store.cancel("g", ["p"], version=150)
    store.reschedule("g", ["p"], server_ms(r) + 60_000, version=160)
    t = trace(r, KEYS, "g", "p")
    assert t["state"] == "scheduled" and t["last_outcome"] is None
    assert (t["superseded"]["ignored_version"], t["superseded"]["applied_version"]) == (160, 200)
    assert not t["superseded"]["by_cancel"]
    # The outcome that ends it later replaces the note.
    store.cancel("g", ["p"], version=300)
    assert trace(r, KEYS, "g", "p")["superseded"] is None


def test_only_a_note_says_superseded(r: redis.Redis, store: Store) -> None:
    """A request whose only record is a stale instruction's note (its outcome expired) traces as superseded."""
    r.hset(KEYS.trace_of("m"), request_id("g", "m"), "|||||1700000000000/5/7c|")
    t = trace(r, KEYS, "g", "m")
    assert t["state"] == "superseded"
    assert t["summary"] == (
        "superseded: an instruction with version 5 was ignored at 2023-11-14T22:13:20.000Z: "
        "version 7 (a cancel) was applied"
    )


# -- the trace answers from the record, at any volume ----------------------------------------------


def test_the_record_survives_the_stream_being_trimmed(r: redis.Redis) -> None:
    """A member delivered 1,000 outcomes ago (stream capped at 10) is traced as delivered, with time and attempts."""
    store = Store(r, KEYS, linger=LingerPolicy(0), outcome_maxlen=10)
    store.enqueue([req("g", "alice")])
    store.ack(claim(store, "g"), "delivered")
    for i in range(50):
        store.enqueue([req(f"h{i}", *(f"u{j}" for j in range(20)))])
        store.ack(claim(store, f"h{i}"), "delivered")
    assert r.xlen(KEYS.outcomes) < 200
    r.delete(KEYS.outcomes)  # gone entirely: the trace never reads it
    t = trace(r, KEYS, "g", "alice")
    assert (t["state"], t["attempts"]) == ("delivered", 1)
    assert t["summary"].startswith("delivered at ") and t["summary"].endswith(" after 1 attempt")


def test_trace_follows_a_request_through_its_states(r: redis.Redis, store: Store) -> None:
    """never seen, scheduled, ready, in flight (with attempts), dead: attempts is one number, the dead letter's."""
    assert trace(r, KEYS, "g", "m")["state"] == "never_seen"
    later = server_ms(r) + 3_600_000
    store.enqueue([req("g", "m", at_ms=later, high=True)])
    t = trace(r, KEYS, "g", "m")
    assert (t["state"], t["due_ms"], t["priority"], t["attempts"]) == ("scheduled", later, "high", 0)
    assert t["summary"].startswith("pending (due ")
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
    assert t["summary"].startswith("in flight (lease until ")
    store.ack(batch, "dead", code=70107, info="not imported")
    t = trace(r, KEYS, "g", "m")
    assert (t["state"], t["attempts"], t["dead"]["attempts"], t["last_outcome"]["attempts"]) == ("dead", 2, 2, 2)
    assert "ErrorCode 70107: not imported, after 2 attempts" in t["summary"]
    r.delete(KEYS.dead, KEYS.dead_info)  # purged: the record still answers
    t = trace(r, KEYS, "g", "m")
    assert t["state"] == "dead" and t["summary"].endswith("(its dead letter was purged)")


def test_pending_again_shows_the_earlier_outcome(r: redis.Redis, store: Store) -> None:
    """A request enqueued again after it was delivered is pending, and its earlier outcome is still there."""
    store.enqueue([req("g", "m")])
    store.ack(claim(store, "g"), "delivered")
    store.enqueue([req("g", "m", at_ms=server_ms(r) + 60_000)])
    t = trace(r, KEYS, "g", "m")
    assert t["state"] == "scheduled" and t["attempts"] == 0
    assert (t["last_outcome"]["outcome"], t["last_outcome"]["attempts"]) == ("delivered", 1)


# -- member search -----------------------------------------------------------------------------------


def test_member_search_finds_the_member_in_every_group(r: redis.Redis, store: Store) -> None:
    """--member reads the member's shard: every group where its request ended, newest first, with its state now."""
    neighbour = same_shard("alice", 1)[0]
    later = server_ms(r) + 9_000_000
    store.enqueue([req("g1", "alice"), req("g2", "alice", neighbour), req("g3", "alice", at_ms=later)])
    store.enqueue([req("g4", "alice", at_ms=later)])  # pending, never ended: not found
    store.ack(claim(store, "g1"), "delivered")
    store.ack(claim(store, "g2"), "dead", code=10004, info="bad")
    wait_server_ms(r, server_ms(r) + 2)
    store.cancel("g3", ["alice"])
    store.enqueue([req("g1", "alice")])  # pending again
    found = member_search(r, KEYS, "alice")
    assert found["found"] == 3 and found["shown"] == 3
    states = {doc["group_id"]: doc["state"] for doc in found["requests"]}
    assert states == {"g1": "ready", "g2": "dead", "g3": "cancelled"}
    assert found["requests"][0]["group_id"] == "g3"  # the newest record first
    assert member_search(r, KEYS, neighbour)["found"] == 1
    assert member_search(r, KEYS, "nobody") == {
        "member": "nobody", "found": 0, "shown": 0, "trace_kept_s": DEFAULT_TRACE_TTL_S, "requests": [],
    }  # fmt: skip


def test_member_search_is_capped(r: redis.Redis, store: Store) -> None:
    """A member in more groups than the limit: the newest ``limit`` are traced, the count says how many there are."""
    for g in range(5):
        store.enqueue([req(f"g{g}", "m")])
        store.cancel(f"g{g}", ["m"])
    found = member_search(r, KEYS, "m", limit=2)
    assert (found["found"], found["shown"]) == (5, 2)


# -- bounded memory ----------------------------------------------------------------------------------


def test_a_shard_drops_records_older_than_the_ttl(r: redis.Redis) -> None:
    """Adding a record to a shard drops its records older than the TTL (at most once per eighth of it)."""
    a, b, c = same_shard("m", 3)
    short = Store(r, KEYS, linger=LingerPolicy(0), trace_ttl_ms=300)
    long = Store(r, KEYS, linger=LingerPolicy(0), trace_ttl_ms=60_000)
    short.enqueue([req("g", a, b, c)])
    short.cancel("g", [a])
    long.cancel("g", [b])  # keeps the shard alive past a's TTL
    shard = KEYS.trace_of(a)
    assert set(r.hkeys(shard)) == {"", request_id("g", a), request_id("g", b)}
    wait_server_ms(r, record(r, "g", b).at_ms + 301)  # type: ignore[operator]
    short.cancel("g", [c])
    assert set(r.hkeys(shard)) == {"", request_id("g", c)}
    assert 0 < r.pttl(shard) <= 300


def test_a_full_redis_writes_no_record_and_counts_it(r: redis.Redis, store: Store) -> None:
    """At maxmemory, ack still drains but writes no record (memory must come back); `untraced` counts them."""
    store.enqueue([req("g", "a"), req("gone", "b", "c")])
    batch, gone = claim(store, "g"), claim(store, "gone")
    try:
        fill_redis(r)
        store.ack(batch, "delivered")
        store.ack(gone, "group_gone", code=10010)
    finally:
        r.config_set("maxmemory", 0)
    assert r.hget(KEYS.trace_of("a"), request_id("g", "a")) is None
    assert int(r.hget(KEYS.stats, "untraced") or 0) == 3
    assert "(3 outcomes went unrecorded while Redis was full)" in trace(r, KEYS, "g", "a")["summary"]
    store.enqueue([req("g", "d")])
    store.ack(claim(store, "g"), "delivered")
    assert record(r, "g", "d").outcome == "delivered"  # room again: traced again


# -- the record format ---------------------------------------------------------------------------------


def test_info_is_cut_on_a_character_boundary(r: redis.Redis, store: Store) -> None:
    """A long ErrorInfo is kept to 64 bytes without splitting a UTF-8 character; '|' in it survives."""
    info = "a|b" + "é" * 40
    store.enqueue([req("g", "m")])
    store.ack(claim(store, "g"), "dead", code=10004, info=info)
    kept = record(r, "g", "m").info
    assert info.startswith(kept) and 60 <= len(kept.encode()) <= 64


def test_python_and_lua_agree_on_the_shard_of_a_member(r: redis.Redis) -> None:
    """keys.Keys.trace_of and _lib.lua's trace_key name the same shard."""
    from test_lua_contracts import run_lib

    for member in ("alice", "user_0001234", "~!@#$%^&*()", "x" * 32):
        assert run_lib(r, "return trace_key(ARGV[1], ARGV[2])", KEYS.trace, member) == KEYS.trace_of(member)


def test_parse_record_reads_every_field() -> None:
    """A record with an outcome, a version, a note and an info holding '|' and '/' is read whole."""
    raw = "x|1700000000000|3|10004|42|1700000000500/41/42c|bad|member/x"
    assert parse_record(raw) == Record(
        "dead", 1700000000000, 3, 10004, 42, "bad|member/x", Superseded(1700000000500, 41, 42, True)
    )
    assert parse_record("c|5|0||||") == Record("cancelled", 5, 0, None, None, "", None)
    assert SEP not in raw
