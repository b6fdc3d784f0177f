"""Pure retry policy: backoff with full jitter, the give-up rule, and batch bisection. No I/O."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


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
