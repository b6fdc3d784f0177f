"""The adaptive linger rule (imunban.linger), decided with an injected clock: no I/O, no timing."""

from __future__ import annotations

import pytest

from imunban.linger import FULL_USE, SPARE_USE, calls_per_s, limiter_use, linger_ms, oldest_first_bound, pace_count

pytestmark = pytest.mark.unit

#: 190 calls/s, as the default IMUNBAN_RATE_LIMIT.
INTERVAL_MS = 1000 / 190


def use_after(calls_per_s: float, seconds: float, interval_s: float = INTERVAL_MS / 1000) -> float:
    """The share of the limit the pace reads after ``seconds`` of steady calls (clock injected: step by step)."""
    count, step = 0.0, 1 / calls_per_s
    for _ in range(round(seconds * calls_per_s)):
        count = pace_count(count, step)
    return limiter_use(count, 0.0, interval_s)


def test_idle_limiter_lets_a_due_batch_go_at_once() -> None:
    """No calls lately (or a trickle): the wait is 0 however many groups wait."""
    assert linger_ms(0.0, 500, INTERVAL_MS, 1000) == 0
    assert linger_ms(use_after(19, 10), 500, INTERVAL_MS, 1000) == 0  # 10 % load


def test_wait_grows_as_calls_near_the_limit() -> None:
    """Between spare and full use the wait grows with the use, up to one oldest-first round."""
    waits = [linger_ms(u, 150, INTERVAL_MS, 10_000) for u in (SPARE_USE, 0.6, 0.7, 0.8, FULL_USE, 1.0)]
    assert waits == sorted(waits) and waits[0] == 0 and waits[1] > 0
    assert waits[-1] == waits[-2] == int(150 * INTERVAL_MS)  # a whole round: 150 groups x the interval


def test_wait_grows_with_the_groups_waiting() -> None:
    """At the limit the wait is the time the limiter needs to give every waiting group one call."""
    assert linger_ms(1.0, 10, INTERVAL_MS, 10_000) < linger_ms(1.0, 100, INTERVAL_MS, 10_000)


def test_wait_never_exceeds_the_bound() -> None:
    """IMUNBAN_LINGER_MS bounds the wait; 0 turns lingering off."""
    assert linger_ms(1.0, 100_000, INTERVAL_MS, 1000) == 1000
    assert linger_ms(1.0, 100_000, INTERVAL_MS, 0) == 0


def test_pace_reads_the_recent_call_rate() -> None:
    """Steady calls at the limit read as about full use; the reading decays once calls stop."""
    at_limit = use_after(190, 5)
    assert 0.95 < at_limit <= 1.01
    count = 190.0  # the steady count at 190 calls/s with tau 1 s
    assert limiter_use(count, 0.0, INTERVAL_MS / 1000) > FULL_USE
    assert limiter_use(count, 2.0, INTERVAL_MS / 1000) < SPARE_USE  # two seconds idle: calls to spare


def test_a_schedule_booked_ahead_counts_as_full_use_at_once() -> None:
    """Callers queued for slots (the schedule booked over one interval ahead) mean no call to spare now."""
    interval_s = INTERVAL_MS / 1000
    assert limiter_use(3.0, 0.0, interval_s) < SPARE_USE  # a sudden burst: the decayed count barely moved
    assert limiter_use(3.0, 0.0, interval_s, booked_ahead_s=3 * interval_s) >= 1.0
    assert limiter_use(3.0, 0.0, interval_s, booked_ahead_s=interval_s / 2) < SPARE_USE  # the next slot only


def test_oldest_first_bound_meets_the_limit_and_is_the_smallest_such_wait() -> None:
    """W makes the calls fit the limit, a hair less does not; uneven groups need a longer W than even ones."""
    even = [266 / 300] * 300
    w = oldest_first_bound(even, 190.0)
    assert 0.80 < w < 0.82  # SPEC §4's example: about 0.81 s
    assert calls_per_s(even, w) <= 190.0 < calls_per_s(even, w * 0.99)
    skewed = [266 * 2 / 300 if g < 150 else 1e-9 for g in range(300)]  # the same members in half the groups
    assert oldest_first_bound(skewed, 190.0) < w  # fewer groups with members: fewer calls at any wait
    assert oldest_first_bound([1.0] * 10, 190.0) == 0.0  # one call per member fits
