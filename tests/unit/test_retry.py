"""The pure retry policy: exponential backoff with full jitter, the give-up rule, batch bisection."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from imunban.retry import backoff_ms, exhausted, halves, overlap_ms


def test_backoff_ceiling_doubles_per_attempt() -> None:
    """With the jitter at its top, the delay doubles from base on each attempt."""
    top = [backoff_ms(a, base_ms=1_000, cap_ms=10**9, rand=lambda: 0.999999) for a in range(1, 6)]
    assert top == [999, 1_999, 3_999, 7_999, 15_999]


def test_backoff_is_capped() -> None:
    """The ceiling never exceeds the cap, even for huge attempt numbers."""
    assert backoff_ms(10_000, base_ms=1_000, cap_ms=300_000, rand=lambda: 0.999999) == 299_999
    assert backoff_ms(64, base_ms=1, cap_ms=5, rand=lambda: 0.5) == 2


def test_backoff_full_jitter_spans_zero_to_ceiling() -> None:
    """Full jitter: rand 0 gives no delay, rand 0.5 half the ceiling."""
    assert backoff_ms(3, base_ms=1_000, cap_ms=60_000, rand=lambda: 0.0) == 0
    assert backoff_ms(3, base_ms=1_000, cap_ms=60_000, rand=lambda: 0.5) == 2_000


def test_backoff_attempt_below_one_is_the_base() -> None:
    """Attempt 0 or negative is treated as the first retry."""
    assert backoff_ms(0, base_ms=100, cap_ms=1_000, rand=lambda: 0.5) == 50
    assert backoff_ms(-3, base_ms=100, cap_ms=1_000, rand=lambda: 0.5) == 50


@settings(deadline=None)  # a loaded CI machine must not turn slowness into failures
@given(st.integers(-5, 10_000), st.integers(1, 10**6), st.integers(1, 10**7), st.floats(0, 1, exclude_max=True))
def test_backoff_always_within_zero_and_cap(attempt: int, base: int, cap: int, jitter: float) -> None:
    """For any input the delay is an int in [0, min(cap, base * 2**(attempt-1)))."""
    delay = backoff_ms(attempt, base_ms=base, cap_ms=cap, rand=lambda: jitter)
    assert isinstance(delay, int)
    assert 0 <= delay <= min(cap, base * 2 ** min(max(attempt - 1, 0), 40))


def test_backoff_default_rand_is_random() -> None:
    """Without an injected rand the delays are spread, not all equal."""
    delays = {backoff_ms(5, base_ms=1_000, cap_ms=60_000) for _ in range(50)}
    assert len(delays) > 1 and all(0 <= d < 16_000 for d in delays)


def test_exhausted_by_attempts() -> None:
    """A request gives up when its attempts reach the maximum."""
    assert not exhausted(attempts=11, age_ms=0, max_attempts=12, max_age_ms=10**9)
    assert exhausted(attempts=12, age_ms=0, max_attempts=12, max_age_ms=10**9)


def test_exhausted_by_age() -> None:
    """A request gives up when it is as old as the maximum age, whatever its attempts."""
    assert not exhausted(attempts=1, age_ms=86_399_999, max_attempts=12, max_age_ms=86_400_000)
    assert exhausted(attempts=1, age_ms=86_400_000, max_attempts=12, max_age_ms=86_400_000)


def test_halves_splits_with_extra_item_first() -> None:
    """An odd batch gives its extra item to the first half."""
    assert halves([1, 2, 3, 4, 5]) == ([1, 2, 3], [4, 5])
    assert halves([1]) == ([1], [])
    assert halves([]) == ([], [])


@settings(deadline=None)  # a loaded CI machine must not turn slowness into failures
@given(st.lists(st.integers(), max_size=40))
def test_halves_partition_the_batch(items: list[int]) -> None:
    """The halves concatenate back to the batch, and each is at most ceil(n/2) long."""
    first, second = halves(items)
    assert list(first) + list(second) == items
    assert len(first) - len(second) in (0, 1)


@settings(deadline=None)  # a loaded CI machine must not turn slowness into failures
@given(st.integers(2, 20))
def test_bisection_isolates_one_bad_member(size: int) -> None:
    """Repeated halving finds a single bad member in at most ceil(log2(n)) + 1 levels."""
    for bad in range(size):
        batch = list(range(size))
        levels = 0
        while len(batch) > 1:
            first, second = halves(batch)
            batch = list(first if bad in first else second)
            levels += 1
        assert batch == [bad]
        assert levels <= (size - 1).bit_length()


def test_overlap_counts_only_the_span_inside_the_window() -> None:
    """Hold time before the window, after it, or partly inside counts only where it overlaps [start, end)."""
    assert overlap_ms(100, 200, []) == 0
    assert overlap_ms(100, 200, [(0, 50), (250, 300)]) == 0
    assert overlap_ms(100, 200, [(50, 120), (180, 400)]) == 40
    assert overlap_ms(100, 200, [(0, 1_000)]) == 100


def test_overlap_with_an_open_interval_runs_to_the_end() -> None:
    """A hold still on (end None) covers the window up to its end; overlapping intervals count once."""
    assert overlap_ms(100, 200, [(150, None)]) == 50
    assert overlap_ms(100, 200, [(110, 160), (120, 130), (150, None)]) == 90


@given(
    st.lists(st.tuples(st.integers(0, 1_000), st.integers(0, 1_000)), max_size=6),
    st.integers(0, 500),
    st.integers(0, 500),
)
def test_overlap_never_exceeds_the_window(spans: list[tuple[int, int]], start: int, length: int) -> None:
    """However the intervals lie, the time left out is between 0 and the window's length."""
    intervals: list[tuple[int, int | None]] = [(min(a, b), max(a, b)) for a, b in spans]
    assert 0 <= overlap_ms(start, start + length, intervals) <= length
