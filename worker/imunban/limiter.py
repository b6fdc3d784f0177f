"""One global rate limiter per SDKAppID, shared through Redis by every worker on every host.

GCRA with *reservation*: a caller reserves the next slot in one script call on the Redis server
clock and sleeps until it, instead of polling. Reservation keeps N processes at the target rate
with one script call per grant; reject-and-retry wastes slots to herd wake-ups. Waiting here is
never counted as a failed attempt.

The delivery path hands :meth:`RedisRateLimiter.acquire` a :class:`LeaseCheck`: the same script then
keeps only the batch's members still leased to the caller (a cancel, a newer instruction or a reap
removes or replaces a lease), renews their leases, and reserves only if one is live. The guarantee:
a call leaves at most :data:`LEASE_CHECK_HORIZON_MS` (plus the sleep's overshoot and the hold check)
after Redis confirmed, atomically, that every member in it was still leased to this run. A cancel
that returns earlier than that keeps its member out of the call; one that returns inside that
window may not (the call counts as already on its way). A reservation further ahead than the horizon
is refused (no slot taken) and the caller naps and asks again, which checks and renews again.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis

from imunban.connection import translated
from imunban.keys import Keys
from imunban.scripts import SCRIPT_KEYS, register

#: A caller accepts at most this long a wait for one slot before re-asking (a penalty may be longer).
MAX_WAIT_MS = 2_000
#: How far an API "too fast" answer pushes the shared schedule back.
PENALTY_MS = 1_000
#: The longest push-back :meth:`RateLimiter.penalize` applies; a longer one is cut to this.
MAX_PENALTY_MS = 10_000
#: The furthest ahead of now the schedule can legitimately be: the longest penalty, a full accepted
#: wait of reservations on top, and a margin. A TAT further ahead can only come from the Redis clock
#: stepping back (failover to a replica that is behind, an NTP step) or a corrupt key; the scripts
#: reset it to now rather than stall every worker for the size of the step.
MAX_LEAD_MS = MAX_PENALTY_MS + MAX_WAIT_MS + 1_000
#: With a lease check, a slot is reserved only this close ahead: the longest gap between Redis
#: confirming the leases and the call (see the module docstring). At 190 calls/s it leaves room for
#: about 47 callers waiting at once; more callers than that gain nothing and cost refused asks.
LEASE_CHECK_HORIZON_MS = 250


def interval_us(rate_per_s: float) -> int:
    """The GCRA emission interval of ``rate_per_s``, rounded up: a hair under the target is safe, over is not."""
    return math.ceil(1_000_000 / rate_per_s)


@dataclass(frozen=True)
class LeaseCheck:
    """Reserve only for ``members`` of ``group_id`` still leased to ``token``, renewing them for ``lease_ms``."""

    group_id: str
    token: str
    members: tuple[str, ...]
    lease_ms: int
    #: The hold's probe: reserve even while delivery is held (otherwise a hold takes no slot).
    probe: bool = False


@dataclass(frozen=True)
class Grant:
    """A slot was granted after ``waited_s``, for ``live_members`` (None: no lease was checked).

    An empty ``live_members`` means no member is leased to the caller any more: no slot was taken
    and no call may be made.
    """

    waited_s: float
    live_members: tuple[str, ...] | None = None
    #: Delivery was held when the caller asked: no slot was taken and no call may be made.
    held: bool = False


class RateLimiter(Protocol):
    def acquire(self, check: LeaseCheck | None = None) -> Grant:
        """Block until this caller may make one call, for the members of ``check`` still leased to it.

        A limiter that cannot see leases (the in-memory one) returns ``live_members=None``.
        """
        ...

    def penalize(self, penalty_ms: int = PENALTY_MS) -> None:
        """Push the shared schedule back: nobody calls for ``penalty_ms``."""
        ...


class RedisRateLimiter:
    """GCRA limiter at ``rate_per_s`` calls/s for one SDKAppID, exact across processes and hosts."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        sdkappid: int | str,
        rate_per_s: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        live_rate: Callable[[], float] | None = None,
    ) -> None:
        self.key = keys.limiter(sdkappid)
        self.interval_us = interval_us(rate_per_s)
        #: The operator's live limit (imunban.livelimit.LiveRate, cached): asked before every reservation.
        self._live_rate = live_rate
        self._sleep = sleep
        self._reserve = register(client, "limiter_reserve")
        self._penalize = register(client, "limiter_penalize")
        named = {
            "stats": keys.stats, "inflight": keys.inflight, "leases": keys.leases, "hold": keys.hold,
            "pause": keys.pause, "limiter": self.key,
        }  # fmt: skip
        self._reserve_keys = [named[k] for k in SCRIPT_KEYS["limiter_reserve"]]
        self._penalize_keys = [named[k] for k in SCRIPT_KEYS["limiter_penalize"]]

    def acquire(self, check: LeaseCheck | None = None) -> Grant:
        max_wait_ms = MAX_WAIT_MS if check is None else LEASE_CHECK_HORIZON_MS
        # ARGV: interval, longest wait, largest plausible lead, lease_ms, token, group, probe, members...
        # Without a lease check there is no hold check either (only delivery runs are held).
        lease: list[int | str] = (
            [0, "", "", 1] if check is None else [check.lease_ms, check.token, check.group_id, int(check.probe)]
        )
        if self._live_rate is not None:
            self.interval_us = interval_us(self._live_rate())
        args: list[int | str] = [self.interval_us, max_wait_ms * 1000, MAX_LEAD_MS * 1000, *lease]
        if check is not None:
            args += check.members
        waited_s = 0.0
        while True:
            with translated("limiter"):
                raw = self._reserve(keys=self._reserve_keys, args=args)
            status, wait_s = int(raw[0]), int(raw[1]) / 1_000_000
            live = None if check is None else tuple(str(m) for m in raw[3:])
            if status == -2:
                return Grant(waited_s, (), held=True)  # held or paused meanwhile: no slot was taken
            if status < 0:
                return Grant(waited_s, ())  # nothing left to call for: no slot was taken
            if status == 1:
                if wait_s > 0:
                    self._sleep(wait_s)
                return Grant(waited_s + wait_s, live)
            # The schedule is further ahead than we accept (a penalty): nap, then ask again. Each nap
            # is capped, so a schedule that jumped far ahead is re-read soon, and each ask re-checks
            # and renews the leases.
            nap_s = min(max(0.001, wait_s - max_wait_ms / 2000), MAX_WAIT_MS / 1000)
            self._sleep(nap_s)
            waited_s += nap_s
            if live is not None:
                args = [*args[:7], *live]  # members found revoked stay out

    def penalize(self, penalty_ms: int = PENALTY_MS) -> None:
        push_us = min(penalty_ms, MAX_PENALTY_MS) * 1000
        with translated("limiter"):
            self._penalize(keys=self._penalize_keys, args=[push_us, MAX_LEAD_MS * 1000])


class MemoryRateLimiter:
    """The same GCRA in process memory, for unit tests and single-process tools."""

    def __init__(
        self,
        rate_per_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval_s = 1 / rate_per_s
        self._clock = clock
        self._sleep = sleep
        self._tat = 0.0
        self._lock = threading.Lock()

    def acquire(self, check: LeaseCheck | None = None) -> Grant:
        """Leases live in Redis, which this limiter never sees: ``check`` is ignored (live_members None)."""
        with self._lock:
            now = self._clock()
            tat = max(self._tat, now)
            self._tat = tat + self.interval_s
        wait_s = tat - now
        if wait_s > 0:
            self._sleep(wait_s)
        return Grant(wait_s)

    def penalize(self, penalty_ms: int = PENALTY_MS) -> None:
        with self._lock:
            self._tat = max(self._tat, self._clock() + min(penalty_ms, MAX_PENALTY_MS) / 1000)
