"""The global rate limiter: GCRA on the Redis server clock across threads and processes; the memory twin."""

from __future__ import annotations

import bisect
import itertools
import multiprocessing
import threading
import time
from typing import Any

import pytest
import redis

from helpers import run_in_threads
from imunban.keys import Keys
from imunban.limiter import (
    LEASE_CHECK_HORIZON_MS,
    MAX_PENALTY_MS,
    MAX_WAIT_MS,
    LeaseCheck,
    MemoryRateLimiter,
    RedisRateLimiter,
)

KEYS = Keys("t")
APP = 1400000000
RATE = 200.0


def spy_slots(limiter: RedisRateLimiter, slots: list[int]) -> None:
    """Record the server-clock start (µs) of every slot the limiter is granted."""
    reserve = limiter._reserve

    def recording(**kwargs: Any) -> Any:
        result = reserve(**kwargs)
        if int(result[0]) == 1:
            slots.append(int(result[2]))
        return result

    limiter._reserve = recording  # type: ignore[assignment]


def assert_spaced(slots: list[int], rate: float) -> None:
    """Grant starts are at least one interval apart and no 1 s window holds more than rate + 1."""
    ordered = sorted(slots)
    interval_us = 1_000_000 / rate
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    assert min(gaps) >= interval_us - 1
    for i, start in enumerate(ordered):
        in_window = bisect.bisect_left(ordered, start + 1_000_000) - i
        assert in_window <= rate + 1


def grant_slots_in_process(url: str, count: int) -> list[int]:
    """Child process body: acquire ``count`` slots with a fresh client, return their server-clock starts."""
    client = redis.Redis.from_url(url, decode_responses=True)
    limiter = RedisRateLimiter(client, KEYS, APP, RATE)
    slots: list[int] = []
    spy_slots(limiter, slots)
    for _ in range(count):
        limiter.acquire()
    client.close()
    return slots


def test_grants_across_threads_are_spaced_by_the_interval(r: redis.Redis) -> None:
    """Six threads sharing one limiter key get every grant one interval apart on the server clock."""
    slots: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        limiter = RedisRateLimiter(r, KEYS, APP, RATE)
        mine: list[int] = []
        spy_slots(limiter, mine)
        for _ in range(20):
            limiter.acquire()
        with lock:
            slots.extend(mine)

    run_in_threads(worker, 6)
    assert len(slots) == 120
    assert_spaced(slots, RATE)


def test_grants_across_processes_are_spaced_by_the_interval(redis_url: str) -> None:
    """Three processes sharing the limiter get grants one interval apart, never rate + 2 in a 1 s window."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        results = pool.starmap(grant_slots_in_process, [(redis_url, 70)] * 3)
    slots = [slot for result in results for slot in result]
    assert len(slots) == 210
    assert_spaced(slots, RATE)


def test_idle_limiter_grants_at_once(r: redis.Redis) -> None:
    """The first acquire on an idle limiter waits nothing and leaves an expiring key; the next waits."""
    slept: list[float] = []
    limiter = RedisRateLimiter(r, KEYS, APP, 1, sleep=slept.append)
    assert limiter.acquire().waited_s == 0
    assert slept == []
    assert 0 < int(r.pttl(KEYS.limiter(APP))) <= 1_000 + 1_000
    assert 0 < limiter.acquire().waited_s <= 1.0  # one 1 s interval after the first, minus the time in between
    assert len(slept) == 1


def test_penalize_pushes_every_caller_back(r: redis.Redis) -> None:
    """After a penalty every limiter sharing the key gets its next slot at least penalty later."""
    slots: list[int] = []
    first = RedisRateLimiter(r, KEYS, APP, RATE, sleep=lambda s: None)
    other = RedisRateLimiter(redis.Redis(connection_pool=r.connection_pool), KEYS, APP, RATE, sleep=lambda s: None)
    spy_slots(first, slots)
    spy_slots(other, slots)
    seconds, micros = r.time()
    before_us = int(seconds) * 1_000_000 + int(micros)
    first.penalize(500)
    waits = [first.acquire().waited_s, other.acquire().waited_s]
    assert all(slot >= before_us + 500_000 for slot in slots)
    assert all(w <= 0.5 + 2 / RATE for w in waits)
    assert slots[1] - slots[0] >= 1_000_000 / RATE - 1


def test_penalty_never_shortens_the_schedule(r: redis.Redis) -> None:
    """A shorter penalty after a longer one leaves the later schedule in place."""
    limiter = RedisRateLimiter(r, KEYS, APP, RATE)
    limiter.penalize(900)
    tat = int(r.get(KEYS.limiter(APP)) or 0)
    limiter.penalize(100)
    assert int(r.get(KEYS.limiter(APP)) or 0) == tat


class Stop(Exception):
    pass


def test_schedule_far_ahead_naps_then_asks_again(r: redis.Redis) -> None:
    """When the next slot is beyond the longest accepted wait, acquire reserves nothing and naps (capped) instead."""
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        raise Stop

    limiter = RedisRateLimiter(r, KEYS, APP, RATE, sleep=sleep)
    limiter.penalize(MAX_WAIT_MS + 3_000)
    tat = int(r.get(KEYS.limiter(APP)) or 0)
    with pytest.raises(Stop):
        limiter.acquire()
    assert int(r.get(KEYS.limiter(APP)) or 0) == tat  # refused: no slot was taken
    assert naps[0] == MAX_WAIT_MS / 1000  # most of the way, but never more than MAX_WAIT_MS at a time


def test_interval_rounds_up() -> None:
    """The emission interval is rounded up, so the real rate is never above the configured one."""
    limiter = RedisRateLimiter(redis.Redis(), KEYS, APP, 190)
    assert limiter.interval_us == 5264
    assert 1_000_000 / limiter.interval_us <= 190


# -- the in-memory twin ------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_memory_limiter_spaces_grants_by_the_interval() -> None:
    """With an injected clock, back-to-back acquires start exactly one interval apart."""
    clock = FakeClock()
    limiter = MemoryRateLimiter(100, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(10):
        limiter.acquire()
        starts.append(clock.now)
    assert starts == pytest.approx([1_000 + i * 0.01 for i in range(10)])
    assert clock.sleeps[0] == pytest.approx(0.01)


def test_memory_limiter_idle_time_is_not_banked() -> None:
    """After an idle period the limiter grants at once but does not allow a burst."""
    clock = FakeClock()
    limiter = MemoryRateLimiter(10, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    clock.now += 60
    assert limiter.acquire().waited_s == 0
    assert limiter.acquire().waited_s == pytest.approx(0.1)


def test_memory_limiter_penalize_pushes_back() -> None:
    """A penalty delays the next grant until the penalty has passed."""
    clock = FakeClock()
    limiter = MemoryRateLimiter(100, clock=clock, sleep=clock.sleep)
    limiter.penalize(1_000)
    assert limiter.acquire().waited_s == pytest.approx(1.0)
    assert clock.now == pytest.approx(1_001.0)


def test_tat_implausibly_far_ahead_is_reset_not_slept(r: redis.Redis) -> None:
    """A schedule 600 s ahead (the Redis clock stepped back) is treated as corrupt: no nap, a slot at once."""
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) >= 3:
            raise Stop

    seconds, micros = r.time()
    r.set(KEYS.limiter(APP), int(seconds) * 1_000_000 + int(micros) + 600_000_000)
    limiter = RedisRateLimiter(r, KEYS, APP, RATE, sleep=sleep)
    assert limiter.acquire().waited_s == 0
    assert naps == []
    seconds, micros = r.time()
    assert int(r.get(KEYS.limiter(APP)) or 0) - (int(seconds) * 1_000_000 + int(micros)) <= 1_000_000 / RATE


def test_each_nap_is_capped_and_the_limiter_asked_again(r: redis.Redis) -> None:
    """A long but plausible penalty is waited out in naps of at most MAX_WAIT_MS, re-asking in between."""
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) >= 3:
            raise Stop

    limiter = RedisRateLimiter(r, KEYS, APP, RATE, sleep=sleep)
    limiter.penalize(8_000)
    with pytest.raises(Stop):
        limiter.acquire()
    assert len(naps) == 3 and all(0 < nap <= MAX_WAIT_MS / 1000 for nap in naps)


def test_penalty_is_capped(r: redis.Redis) -> None:
    """A penalty longer than MAX_PENALTY_MS pushes the schedule back by MAX_PENALTY_MS only."""
    RedisRateLimiter(r, KEYS, APP, RATE).penalize(600_000)
    assert 0 < int(r.pttl(KEYS.limiter(APP))) <= MAX_PENALTY_MS + 1_000


def test_lease_checked_grant_waits_no_longer_than_the_horizon(r: redis.Redis) -> None:
    """With a lease check a slot further ahead than LEASE_CHECK_HORIZON_MS is not reserved: nap, check again."""
    r.hset(KEYS.leases, "g\x1fa", "tok|1|0")
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)  # the server clock must move for the schedule to come within reach

    limiter = RedisRateLimiter(r, KEYS, APP, RATE, sleep=sleep)
    limiter.penalize(LEASE_CHECK_HORIZON_MS * 3)
    grant = limiter.acquire(LeaseCheck("g", "tok", ("a",), 30_000))
    assert grant.live_members == ("a",)
    assert len(waits) >= 2  # at least one nap, then the granted wait
    assert waits[-1] <= LEASE_CHECK_HORIZON_MS / 1000


def test_lease_check_without_a_live_member_takes_no_slot(r: redis.Redis) -> None:
    """Members leased to another token (or not at all) are dropped; none left: no slot, no wait."""
    r.hset(KEYS.leases, "g\x1fa", "other|1|0")
    limiter = RedisRateLimiter(r, KEYS, APP, RATE, sleep=lambda s: None)
    grant = limiter.acquire(LeaseCheck("g", "tok", ("a", "b"), 30_000))
    assert grant.live_members == () and grant.waited_s == 0
    assert r.get(KEYS.limiter(APP)) is None


def test_lease_check_renews_only_live_members(r: redis.Redis) -> None:
    """A live member's inflight deadline becomes now + lease_ms; a foreign lease is left untouched."""
    r.hset(KEYS.leases, mapping={"g\x1fa": "tok|1|0", "g\x1fb": "other|1|0"})
    r.zadd(KEYS.inflight, {"g\x1fa": 1, "g\x1fb": 1})
    limiter = RedisRateLimiter(r, KEYS, APP, RATE, sleep=lambda s: None)
    grant = limiter.acquire(LeaseCheck("g", "tok", ("a", "b"), 30_000))
    assert grant.live_members == ("a",)
    seconds, _ = r.time()
    assert int(seconds) * 1000 + 29_000 < float(r.zscore(KEYS.inflight, "g\x1fa") or 0)
    assert r.zscore(KEYS.inflight, "g\x1fb") == 1
