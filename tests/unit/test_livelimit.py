"""The live rate limit's pure decisions: what a rate may be, when a worker reads it again (injected clock)."""

from __future__ import annotations

import math

import pytest

from imunban.errors import StoreError, ValidationError
from imunban.livelimit import LimitState, LiveRate, describe, needs_read, validate_rate


@pytest.mark.parametrize("value", ["150", 150, 0.5, "200", 1e-3])
def test_a_positive_rate_up_to_the_api_limit_is_taken(value: object) -> None:
    """Numbers and numeric text > 0 and <= 200 are rates."""
    assert validate_rate(value) == float(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, -5, "201", 200.01, math.nan, math.inf, "fast", True, None, [], ""])
def test_a_bad_rate_is_refused_with_the_field_named(value: object) -> None:
    """Zero, negative, above the API's 200/s, not finite, not a number: a ValidationError naming the field."""
    with pytest.raises(ValidationError) as err:
        validate_rate(value, "RATE")
    assert str(err.value).startswith("RATE")


def test_a_cached_rate_is_read_again_only_after_the_cache_time() -> None:
    """Never read: read; read 0.4 s ago: kept; 0.5 s or more ago, or a clock that stepped back: read."""
    assert needs_read(10.0, None)
    assert not needs_read(10.4, 10.0, 0.5)
    assert needs_read(10.5, 10.0, 0.5)
    assert needs_read(9.0, 10.0, 0.5)


def test_live_rate_asks_redis_at_most_once_per_cache_time() -> None:
    """LiveRate returns its cached rate inside the cache time and the newly read one after it."""
    now = [100.0]
    reads: list[float] = []
    stored = [LimitState(190.0)]

    def read() -> LimitState:
        reads.append(now[0])
        return stored[0]

    rate = LiveRate(read, 190.0, clock=lambda: now[0], cache_s=0.5)
    assert rate() == 190.0
    stored[0] = LimitState(190.0, 100.0)
    now[0] = 100.3
    assert rate() == 190.0  # cached
    now[0] = 100.5
    assert rate() == 100.0  # applied within the cache time
    assert reads == [100.0, 100.5]


def test_live_rate_keeps_the_last_rate_when_redis_cannot_be_read() -> None:
    """A failed read keeps the rate read before (the limiter's own call fails the same way anyway)."""
    now = [0.0]
    answers: list[LimitState | StoreError] = [LimitState(190.0, 80.0), StoreError("down")]

    def read() -> LimitState:
        answer = answers.pop(0)
        if isinstance(answer, StoreError):
            raise answer
        return answer

    rate = LiveRate(read, 190.0, clock=lambda: now[0], cache_s=0.5)
    assert rate() == 80.0
    now[0] = 1.0
    assert rate() == 80.0


def test_a_hand_edited_limit_key_falls_back_to_the_configured_rate() -> None:
    """A stored rate that is not a valid rate is ignored: the configured one applies and is shown as such."""
    state = LimitState.from_hash(190.0, {"rate_per_s": "-3", "since_ms": "5"})
    assert state.effective_per_s == 190.0 and state.as_dict()["source"] == "configured"
    assert describe(state.as_dict()) == "190 calls/s (configured)"


def test_a_live_limit_is_described_with_who_set_it() -> None:
    """The status line names the live rate, who set it and the configured one."""
    raw = {"rate_per_s": "120", "since_ms": "5", "role": "cli", "via": "cli", "client": "alice@ops1"}
    state = LimitState.from_hash(190.0, raw).as_dict()
    assert state["effective_per_s"] == 120.0 and state["source"] == "live" and state["since_ms"] == 5
    assert describe(state) == "120 calls/s (live, set by cli alice@ops1; configured 190)"
