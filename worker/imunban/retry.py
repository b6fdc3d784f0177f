"""The retry policy: its limits, backoff with full jitter, the give-up rule, and batch bisection. No I/O."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from imunban.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """When a failing request gives up; built from Settings (IMUNBAN_MAX_ATTEMPTS, ...) in the runtime."""

    max_attempts: int
    max_age_ms: int
    backoff_base_ms: int
    backoff_cap_ms: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_attempts=settings.max_attempts,
            max_age_ms=settings.max_age_s * 1000,
            backoff_base_ms=settings.backoff_base_ms,
            backoff_cap_ms=settings.backoff_cap_ms,
        )


def backoff_ms(attempt: int, *, base_ms: int, cap_ms: int, rand: Callable[[], float] = random.random) -> int:
    """Delay before retry number ``attempt`` (1-based): full jitter over min(cap, base * 2**(attempt-1)).

    Full jitter (AWS's "exponential backoff and jitter") spreads a herd of failures evenly instead of
    letting them retry in lock-step.
    """
    ceiling = min(cap_ms, base_ms * 2 ** min(max(attempt - 1, 0), 40))
    return int(ceiling * rand())


def exhausted(*, attempts: int, age_ms: int, max_attempts: int, max_age_ms: int) -> bool:
    """True when a request that has now failed ``attempts`` times (this one included) must give up."""
    return attempts >= max_attempts or age_ms >= max_age_ms


def halves(items: Sequence[T]) -> tuple[Sequence[T], Sequence[T]]:
    """Split a batch for poison isolation; the first half gets the extra item."""
    middle = (len(items) + 1) // 2
    return items[:middle], items[middle:]


def overlap_ms(start_ms: int, end_ms: int, intervals: Sequence[tuple[int, int | None]]) -> int:
    """Milliseconds of [start_ms, end_ms) covered by ``intervals`` (an end of None: still open, up to end_ms).

    Overlapping intervals count once, so a request's age can leave out its time on hold exactly.
    """
    clipped = sorted((max(start_ms, s), min(end_ms, end_ms if e is None else e)) for s, e in intervals)
    total, covered_to = 0, start_ms
    for s, e in clipped:
        s = max(s, covered_to)
        if e > s:
            total += e - s
            covered_to = e
    return total
