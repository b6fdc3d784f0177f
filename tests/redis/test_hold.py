"""The app-wide hold on a real redis-server: set, read, probe with backoff, release; 10007 evidence."""

from __future__ import annotations

import threading

import redis

from helpers import KEYS, run_in_threads, server_ms
from imunban.hold import EVIDENCE_GROUPS, PROBE_BASE_MS, PROBE_CAP_MS, Hold
from imunban.keys import Keys


def make_probe_due(r: redis.Redis) -> None:
    """Pretend the backoff has passed (the probe time is server-clock state, not ours to wait for)."""
    r.hset(KEYS.hold, "next_probe_ms", 0)


def test_no_hold_by_default(r: redis.Redis) -> None:
    """Without a hold, get() is None and nobody probes."""
    hold = Hold(r, KEYS)
    assert hold.get() is None
    assert hold.try_probe() is False


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
    hold.set(10003, "bad command")
    if server_ms(r) < hold.get().next_probe_ms:  # type: ignore[union-attr]
        assert hold.try_probe() is False


def test_exactly_one_caller_probes_at_a_time(r: redis.Redis) -> None:
    """When the probe is due, of many concurrent callers exactly one gets the turn."""
    hold = Hold(r, KEYS)
    hold.set(10003, "bad command")
    make_probe_due(r)
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(10)

    def caller() -> None:
        start.wait()
        got = hold.try_probe()
        with lock:
            results.append(got)

    run_in_threads(caller, 10)
    assert results.count(True) == 1
    assert hold.get().probes == 1  # type: ignore[union-attr]


def test_probe_backoff_grows_to_the_cap(r: redis.Redis) -> None:
    """Probe n pushes the next one min(cap, base * 2**n) further out, on the server clock."""
    hold = Hold(r, KEYS)
    hold.set(10003, "bad command")
    for n in range(1, 11):
        make_probe_due(r)
        before = server_ms(r)
        assert hold.try_probe() is True
        after = server_ms(r)
        next_probe = hold.get().next_probe_ms  # type: ignore[union-attr]
        expected = min(PROBE_CAP_MS, PROBE_BASE_MS * 2**n)
        assert next_probe - after <= expected <= next_probe - before


def test_70050_probes_no_sooner_than_a_minute(r: redis.Redis) -> None:
    """After 70050 the first probe and every later one are at least 60 s apart."""
    hold = Hold(r, KEYS)
    before = server_ms(r)
    hold.set(70050, "too many failed signature checks")
    assert hold.get().next_probe_ms >= before + 60_000  # type: ignore[union-attr]
    for _ in range(3):
        make_probe_due(r)
        before = server_ms(r)
        assert hold.try_probe() is True
        assert hold.get().next_probe_ms >= before + 60_000  # type: ignore[union-attr]


def test_release_clears_the_hold(r: redis.Redis) -> None:
    """release() ends the hold; nobody probes afterwards."""
    hold = Hold(r, KEYS)
    hold.set(70009, "wrong key")
    hold.release()
    assert hold.get() is None
    assert hold.try_probe() is False


def test_10007_needs_distinct_groups_as_evidence(r: redis.Redis) -> None:
    """10007 from one group, however often, is not global; from three distinct groups it is."""
    hold = Hold(r, KEYS)
    assert [hold.is_global_10007("g1") for _ in range(5)] == [False] * 5
    assert hold.is_global_10007("g2") is False
    assert EVIDENCE_GROUPS == 3
    assert hold.is_global_10007("g3") is True
    assert 0 < int(r.pttl(KEYS.e10007)) <= 60_000


def test_10007_evidence_outside_the_window_is_forgotten(r: redis.Redis) -> None:
    """Groups that answered 10007 longer ago than the window do not count."""
    hold = Hold(r, KEYS)
    old = server_ms(r) - 120_000
    r.zadd(KEYS.e10007, {"g1": old, "g2": old})
    assert hold.is_global_10007("g3") is False
    assert r.zrange(KEYS.e10007, 0, -1) == ["g3"]


def test_70050_floor_survives_a_later_code(r: redis.Redis) -> None:
    """After 70050 the 60 s probe floor stays even if a later probe answers another global code."""
    hold = Hold(r, Keys("t"))
    hold.set(70050, "too many failed signature checks")
    hold.set(70009, "bad key")
    state = hold.get()
    assert state is not None
    assert state.code == 70009
    assert int(r.hget(Keys("t").hold, "min_probe_ms")) == 60_000
