"""The app-wide hold on a real redis-server: set, read, probe (backoff, rotation), release, history; 10007 evidence."""

from __future__ import annotations

import threading

import pytest
import redis

from helpers import KEYS, run_in_threads, server_ms
from imunban.hold import HOLD_HISTORY_MAX, PROBE_BASE_MS, PROBE_CAP_MS, SWITCH_ON_EVIDENCE_MS, Hold
from imunban.keys import Keys, request_id
from imunban.store import Batch, Store
from imunban.validation import build_request


def make_probe_due(r: redis.Redis) -> None:
    """Pretend the backoff (and the last probe's floor) has passed: server-clock state, not ours to wait for."""
    r.hset(KEYS.hold, mapping={"next_probe_ms": 0, "last_probe_ms": 0})


def waiting(r: redis.Redis, *groups: str) -> None:
    """Index ``groups`` as waiting, in this order (a probe picks among the groups index)."""
    r.zadd(KEYS.groups, {g: i for i, g in enumerate(groups)})


def test_no_hold_by_default(r: redis.Redis) -> None:
    """Without a hold, get() is None and nobody probes."""
    hold = Hold(r, KEYS)
    waiting(r, "g")
    assert hold.get() is None
    assert hold.try_probe() is None


def test_set_records_code_info_and_since(r: redis.Redis) -> None:
    """set() stores the code, info, start time and first probe time on the server clock."""
    hold = Hold(r, KEYS)
    before = server_ms(r)
    hold.set(70009, "wrong secret key")
    state = hold.get()
    assert state is not None
    assert (state.code, state.info, state.probes) == (70009, "wrong secret key", 0)
    assert before <= state.since_ms <= server_ms(r)
    assert state.next_probe_ms >= state.since_ms + PROBE_BASE_MS
    assert state.as_dict() == {
        "code": 70009,
        "info": "wrong secret key",
        "since_ms": state.since_ms,
        "next_probe_ms": state.next_probe_ms,
        "probes": 0,
        "probe_allowed_ms": 0,  # no minimum interval between probes (only 70050 has one)
    }


def test_set_again_keeps_since_and_updates_reason(r: redis.Redis) -> None:
    """Extending a hold keeps its start time and shows the latest reason."""
    hold = Hold(r, KEYS)
    hold.set(70009, "wrong key")
    since = hold.get().since_ms  # type: ignore[union-attr]
    hold.set(60020, "package expired")
    state = hold.get()
    assert state is not None
    assert (state.code, state.info, state.since_ms) == (60020, "package expired", since)


def test_probe_waits_for_its_time(r: redis.Redis) -> None:
    """Right after a hold is set, the probe time is in the future and nobody may probe yet."""
    hold = Hold(r, KEYS)
    waiting(r, "g")
    hold.set(10003, "bad command")
    if server_ms(r) < hold.get().next_probe_ms:  # type: ignore[union-attr]
        assert hold.try_probe() is None


def test_exactly_one_caller_probes_at_a_time(r: redis.Redis) -> None:
    """When the probe is due, of many concurrent callers exactly one gets the turn."""
    hold = Hold(r, KEYS)
    waiting(r, "g")
    hold.set(10003, "bad command")
    make_probe_due(r)
    results: list[str | None] = []
    lock = threading.Lock()
    start = threading.Barrier(10)

    def caller() -> None:
        start.wait()
        got = hold.try_probe()
        with lock:
            results.append(got)

    run_in_threads(caller, 10)
    assert results.count("g") == 1
    assert results.count(None) == 9
    assert hold.get().probes == 1  # type: ignore[union-attr]


def test_probe_backoff_grows_to_the_cap(r: redis.Redis) -> None:
    """Probe n pushes the next one min(cap, base * 2**n) further out, on the server clock."""
    hold = Hold(r, KEYS)
    waiting(r, "g")
    hold.set(10003, "bad command")
    for n in range(1, 11):
        make_probe_due(r)
        before = server_ms(r)
        assert hold.try_probe() == "g"
        after = server_ms(r)
        next_probe = hold.get().next_probe_ms  # type: ignore[union-attr]
        expected = min(PROBE_CAP_MS, PROBE_BASE_MS * 2**n)
        assert next_probe - after <= expected <= next_probe - before


def test_70050_probes_no_sooner_than_a_minute(r: redis.Redis) -> None:
    """After 70050 the first probe and every later one are at least 60 s apart."""
    hold = Hold(r, KEYS)
    waiting(r, "g")
    before = server_ms(r)
    hold.set(70050, "too many failed signature checks")
    assert hold.get().next_probe_ms >= before + 60_000  # type: ignore[union-attr]
    for _ in range(3):
        make_probe_due(r)
        before = server_ms(r)
        assert hold.try_probe() == "g"
        assert hold.get().next_probe_ms >= before + 60_000  # type: ignore[union-attr]


def test_release_clears_the_hold(r: redis.Redis) -> None:
    """release() ends the hold; nobody probes afterwards."""
    hold = Hold(r, KEYS)
    waiting(r, "g")
    hold.set(70009, "wrong key")
    assert hold.release() is True
    assert hold.get() is None
    assert hold.try_probe() is None
    assert hold.release() is False


def test_probe_turn_is_kept_while_no_group_waits(r: redis.Redis) -> None:
    """With nothing waiting, the probe turn is not spent: the first group to arrive is probed at once."""
    hold = Hold(r, KEYS)
    hold.set(60010, "needs App admin permission")
    make_probe_due(r)
    assert hold.try_probe() is None
    assert hold.get().probes == 0  # type: ignore[union-attr]
    waiting(r, "late")
    assert hold.try_probe() == "late"


def test_probe_picks_the_group_probed_longest_ago(r: redis.Redis) -> None:
    """Never-probed groups first (oldest first), then the one probed longest ago; only the first `scan` count."""
    hold = Hold(r, KEYS)
    hold.set(60010, "needs App admin permission")
    waiting(r, "a", "b", "c")
    picks = []
    for _ in range(5):
        make_probe_due(r)
        picks.append(hold.try_probe(scan=2))
    assert picks == ["a", "b", "a", "b", "a"]
    make_probe_due(r)
    assert hold.try_probe(scan=3) == "c"  # never probed
    make_probe_due(r)
    assert hold.try_probe(scan=3) == "b"  # probed longest ago


def test_release_records_the_hold_in_a_capped_history(r: redis.Redis) -> None:
    """Each ended hold is kept with its code, info, start, end and probes; the history keeps the newest ones."""
    hold = Hold(r, KEYS)
    waiting(r, "g")
    hold.set(60010, "needs App admin permission")
    since = hold.get().since_ms  # type: ignore[union-attr]
    make_probe_due(r)
    hold.try_probe()
    hold.release()
    [record] = hold.history()
    assert (record.code, record.info, record.since_ms, record.probes) == (60010, "needs App admin permission", since, 1)
    assert since <= record.end_ms <= server_ms(r)
    assert not r.exists(KEYS.probed)
    assert hold.intervals_since(0) == [(record.since_ms, record.end_ms)]
    for i in range(HOLD_HISTORY_MAX + 5):
        hold.set(70000 + i, "again")
        hold.release()
    history = hold.history()
    assert len(history) == HOLD_HISTORY_MAX
    assert history[-1].code == 70000 + HOLD_HISTORY_MAX + 4


def test_intervals_include_the_open_hold(r: redis.Redis) -> None:
    """The current hold counts as an interval with no end yet; ended holds before `since` are left out."""
    hold = Hold(r, KEYS)
    hold.set(60010, "x")
    hold.release()
    hold.set(60006, "y")
    since = hold.get().since_ms  # type: ignore[union-attr]
    assert hold.intervals_since(since + 10_000) == [(since, None)]
    assert len(hold.intervals_since(0)) == 2


def ok(r: redis.Redis, **fields: int | str) -> None:
    """Record delivered answers as ack.lua does: g1/t1 the latest group, g2/t2 the one before."""
    for name, value in fields.items():
        r.hset(KEYS.ok_groups, name, value)


def test_10007_is_global_without_a_recent_success_of_another_group(r: redis.Redis) -> None:
    """No success at all, only this group's own, or another's older than the window: 10007 is global."""
    hold = Hold(r, KEYS)
    assert hold.is_per_group_10007("g") is False
    now = server_ms(r)
    ok(r, g1="g", t1=now)
    assert hold.is_per_group_10007("g") is False
    ok(r, g2="h", t2=now - SWITCH_ON_EVIDENCE_MS - 1_000)
    assert hold.is_per_group_10007("g") is False


def test_10007_is_per_group_after_a_recent_success_of_another_group(r: redis.Redis) -> None:
    """Another group delivered to within the window: the switch is on, the 10007 is about this group."""
    hold = Hold(r, KEYS)
    now = server_ms(r)
    ok(r, g1="g", t1=now, g2="h", t2=now - 5_000)
    assert hold.is_per_group_10007("g") is True
    assert hold.is_per_group_10007("h") is True


def test_10007_dead_letter_needs_a_success_after_the_first_failure(r: redis.Redis) -> None:
    """A member this 10007 would dead-letter needs another group's success after its own first failure."""
    hold = Hold(r, KEYS)
    now = server_ms(r)
    ok(r, g1="h", t1=now - 5_000)
    r.hset(KEYS.meta, request_id("g", "old"), f"2|{now - 9_000}|10007|{now - 9_000}")
    r.hset(KEYS.meta, request_id("g", "new"), f"2|{now - 1_000}|10007|{now - 9_000}")
    assert hold.is_per_group_10007("g", ["old"]) is True
    assert hold.is_per_group_10007("g", ["old", "new"]) is False
    assert hold.is_per_group_10007("g", ["never-failed"]) is True


def test_delivered_acks_record_the_last_two_distinct_groups(store: Store) -> None:
    """ack(delivered) keeps the last two distinct groups delivered to, with their times; other outcomes do not."""
    r = store.client
    for group in ("a", "a", "b", "b", "c"):
        store.enqueue([build_request(group, ["m"])])
        batch = store.claim(group)
        assert isinstance(batch, Batch)
        store.ack(batch, "delivered")
    fields = r.hgetall(KEYS.ok_groups)
    assert (fields["g1"], fields["g2"]) == ("c", "b")
    assert int(fields["t1"]) >= int(fields["t2"])
    store.enqueue([build_request("d", ["m"])])
    batch = store.claim("d")
    assert isinstance(batch, Batch)
    store.ack(batch, "dead", code=10004, info="bad")
    assert r.hget(KEYS.ok_groups, "g1") == "c"


def test_70050_floor_survives_a_later_code(r: redis.Redis) -> None:
    """After 70050 the 60 s probe floor stays even if a later probe answers another global code."""
    hold = Hold(r, Keys("t"))
    hold.set(70050, "too many failed signature checks")
    hold.set(70009, "bad key")
    state = hold.get()
    assert state is not None
    assert state.code == 70009
    assert int(r.hget(Keys("t").hold, "min_probe_ms")) == 60_000


# -- "probe now" keeps the hold's floor (issue 18, item 7) --------------------------------------------


def test_probe_now_during_a_70050_hold_never_brings_the_probe_before_the_floor(r: redis.Redis) -> None:
    """Three presses of "probe now" within milliseconds of a 70050: the next probe stays a minute after the answer."""
    hold = Hold(r, KEYS)
    waiting(r, "g")
    before = server_ms(r)
    hold.set(70050, "too many failed signature checks")
    presses = [hold.probe_now() for _ in range(3)]
    state = hold.get()
    assert state is not None
    assert state.next_probe_ms >= before + 60_000
    assert presses == [state.next_probe_ms] * 3  # each press answers when the probe goes
    assert state.probe_allowed_ms == state.next_probe_ms
    assert hold.try_probe() is None  # no probe yet


def test_probe_now_after_a_probe_waits_for_the_last_probe_plus_the_floor(r: redis.Redis) -> None:
    """Once a probe went out, "probe now" makes the next one due the last probe plus 60 s, not sooner."""
    hold = Hold(r, KEYS, probe_base_ms=600_000)
    waiting(r, "g")
    hold.set(70050, "too many failed signature checks")
    make_probe_due(r)
    before = server_ms(r)
    assert hold.try_probe() == "g"
    after = server_ms(r)
    due = hold.probe_now()
    assert due is not None and before + 60_000 <= due <= after + 60_000  # not the 600 s backoff: the floor
    assert (hold.get() or pytest.fail("no hold")).next_probe_ms == due


def test_a_probe_is_refused_before_the_floor_whoever_moved_the_next_probe(r: redis.Redis) -> None:
    """The probe turn itself keeps the floor: a next probe time set to now (an older console) sends nothing early."""
    hold = Hold(r, KEYS)
    waiting(r, "g")
    hold.set(70050, "too many failed signature checks")
    make_probe_due(r)
    assert hold.try_probe() == "g"
    r.hset(KEYS.hold, "next_probe_ms", 0)  # what an older "probe now" did
    assert hold.try_probe() is None


def test_probe_now_without_a_floor_is_due_at_once(r: redis.Redis) -> None:
    """A hold without a minimum interval (not 70050): "probe now" makes the probe due now; no hold: None."""
    hold = Hold(r, KEYS, probe_base_ms=600_000)
    assert hold.probe_now() is None
    waiting(r, "g")
    hold.set(70001, "sig expired")
    due = hold.probe_now()
    assert due is not None and due <= server_ms(r)
    assert hold.try_probe() == "g"
