"""The throughput history in Redis: one snapshot per minute whoever samples, trimmed to 24 h, read the same by all."""

from __future__ import annotations

import time

import redis

from imunban.keys import Keys
from imunban.throughput import KEEP_MINUTES, MINUTE_MS, record, snapshots
from imunban.web.sampler import RateSampler, SamplerThread

KEYS = Keys()


def test_the_first_sample_of_a_minute_writes_and_the_others_do_not(r: redis.Redis) -> None:
    """Two console replicas sample the same minute: one snapshot, with the counters of the moment it was taken."""
    r.hset(KEYS.stats, mapping={"delivered": 1200, "calls": 61})
    first = record(r, KEYS)
    second = record(redis.Redis(connection_pool=r.connection_pool), KEYS)  # another replica's client
    assert first > 0 and (second == 0 or second == first + 1)  # 0 unless the minute turned between the two
    snaps = snapshots(r, KEYS)
    assert snaps[0].minute == first and (snaps[0].delivered, snaps[0].calls) == (1200, 61)
    assert abs(snaps[0].at_ms - first * MINUTE_MS) < MINUTE_MS
    assert 0 < r.pttl(KEYS.throughput) <= (KEEP_MINUTES + 1) * MINUTE_MS


def test_snapshots_older_than_a_day_are_trimmed(r: redis.Redis) -> None:
    """A snapshot from 25 h ago goes with the next write; one from 23 h ago stays."""
    now_minute = int(r.time()[0]) // 60
    for age in (25 * 60, 23 * 60):
        minute = now_minute - age
        r.zadd(KEYS.throughput, {f"{minute}:{minute * MINUTE_MS}:0:0": minute})
    record(r, KEYS)
    assert [now_minute - s.minute for s in snapshots(r, KEYS)][:1] == [23 * 60]


def test_a_restarted_console_draws_the_same_history(r: redis.Redis) -> None:
    """The history is Redis's: a new sampler (a restarted or another console) reads what the first one wrote."""
    now_minute = int(r.time()[0]) // 60
    for i, minute in enumerate(range(now_minute - 10, now_minute)):
        r.zadd(KEYS.throughput, {f"{minute}:{minute * MINUTE_MS}:{i * 600}:{i * 30}": minute})
    now_ms = now_minute * MINUTE_MS
    before = RateSampler(r, KEYS).history(now_ms)
    after = RateSampler(redis.Redis(connection_pool=r.connection_pool), KEYS).history(now_ms)
    assert before == after and len(before["t"]) == 9
    assert set(before["delivered"]) == {10.0} and set(before["calls"]) == {0.5}


def test_the_console_sampler_thread_writes_the_history(r: redis.Redis) -> None:
    """A running console's sampler thread offers the minute's snapshot (pages and API reads never write)."""
    thread = SamplerThread([RateSampler(r, KEYS)], every_s=0.05)
    thread.start()
    try:
        for _ in range(200):
            if r.zcard(KEYS.throughput):
                break
            time.sleep(0.05)
    finally:
        thread.stop()
    assert r.zcard(KEYS.throughput) >= 1  # 2 only if a minute turned meanwhile
