"""Adaptive linger: how long a partial batch waits for company, decided from the limiter's pace.

The decision runs in Redis (``reindex`` and ``linger_ms`` in ``lua/_lib.lua``), on the server clock,
whenever a group's ready set changes; this module is its Python twin, kept equal to it by
``tests/redis/test_linger_lua.py``, and the place its rule is tested with an injected clock.

- While the limiter has calls to spare (recent calls below SPARE_USE of the limit), a due batch goes
  at once: lingering would only add latency.
- As calls near the limit, the wait grows toward one oldest-first round: the groups waiting times
  the limiter's interval, which is how long the limiter needs to give each of them one call, and the
  wait an oldest-first queue at the limit settles on anyway (the bound W of docs/semantics.md#targets
  solves groups x (1 - e^(-lambda W)) / W = limit; the groups with a member waiting are those of the
  last W).
  Calls stay within the limit and members per call rise, before a queue forms at the limiter.
- Never more than the bound (IMUNBAN_LINGER_MS); under a backlog every batch is full and goes at once.

The pace is a count of reservations decayed with time constant PACE_TAU_S, kept by the limiter
script in the stats hash (``pace_count`` in ``lua/_lib.lua``): count / tau is calls per second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Time constant of the decayed reservation count (seconds).
PACE_TAU_S = 1.0
#: Below this share of the limit the limiter has calls to spare.
SPARE_USE = 0.5
#: At this share and above the wait is a whole oldest-first round.
FULL_USE = 0.9


def decayed(count: float, age_s: float) -> float:
    """The pace count ``age_s`` seconds after it was written."""
    return count * math.exp(-max(0.0, age_s) / PACE_TAU_S)


def pace_count(count: float, age_s: float) -> float:
    """The pace count after one more reservation, ``age_s`` after the last update."""
    return decayed(count, age_s) + 1.0


def limiter_use(count: float, age_s: float, interval_s: float, booked_ahead_s: float = 0.0) -> float:
    """Share of the limit used lately: calls per second (decayed count / tau) x the interval.

    A schedule booked more than one interval ahead (callers queued for slots) counts as the limit
    fully used at once: the decayed count alone needs about a second to notice a sudden burst, and
    the calls it would let go at once in that second would be nearly empty.
    """
    use = decayed(count, age_s) / PACE_TAU_S * interval_s
    return max(use, 1.0) if booked_ahead_s > interval_s else use


def linger_ms(use: float, waiting_groups: int, interval_ms: float, bound_ms: int) -> int:
    """How long a partial batch may wait after its oldest due member (0: it goes now)."""
    if use <= SPARE_USE:
        return 0
    ramp = min(1.0, (use - SPARE_USE) / (FULL_USE - SPARE_USE))
    return math.floor(min(bound_ms, ramp * waiting_groups * interval_ms))


def calls_per_s(rates_per_group: Sequence[float], wait_s: float) -> float:
    """Calls/s of an oldest-first policy that waits ``wait_s`` per group: sum of (1 - e^(-λ W)) / W.

    λ is each group's arrival rate (members/s); with no wait every member is a call of its own.
    """
    if wait_s <= 0:
        return float(sum(rates_per_group))
    return sum(-math.expm1(-rate * wait_s) for rate in rates_per_group) / wait_s


def oldest_first_bound(rates_per_group: Sequence[float], rate_limit: float) -> float:
    """The oldest-first bound W (docs/semantics.md): the smallest W with calls_per_s(rates, W) <= rate_limit, or 0."""
    if not rates_per_group or sum(rates_per_group) <= rate_limit:
        return 0.0
    if rate_limit <= 0:
        return math.inf
    # calls_per_s falls monotonically in W, from sum(λ) towards 0; groups / W bounds it above.
    low, high = 0.0, len(rates_per_group) / rate_limit
    for _ in range(100):
        mid = (low + high) / 2
        if calls_per_s(rates_per_group, mid) <= rate_limit:
            high = mid
        else:
            low = mid
    return high
