"""One global rate limiter per SDKAppID, shared through Redis by every worker on every host.

GCRA with *reservation*: a caller reserves the next slot in one script call on the Redis server
clock and sleeps until it, instead of polling. Reservation keeps N processes at the target rate
with one script call per grant; reject-and-retry wastes slots to herd wake-ups. Waiting here is
never counted as a failed attempt.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

from imunban.connection import translated
from imunban.keys import Keys
from imunban.scripts import register

#: A caller accepts at most this long a wait for one slot before re-asking (a penalty may be longer).
MAX_WAIT_MS = 2_000
#: How far an API "too fast" answer pushes the shared schedule back.
PENALTY_MS = 1_000


class RateLimiter(Protocol):
    def acquire(self) -> float:
        """Block until this caller may make one call; return the seconds spent waiting."""
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
    ) -> None:
        self.key = keys.limiter(sdkappid)
        # Round the interval up: a rate a hair under the target is safe, a hair over is not.
        self.interval_us = math.ceil(1_000_000 / rate_per_s)
        self.rate_per_s = rate_per_s
        self._sleep = sleep
        self._reserve = register(client, "limiter_reserve")
        self._penalize = register(client, "limiter_penalize")

    def acquire(self) -> float:
        waited_s = 0.0
        while True:
            with translated("limiter"):
                granted, wait_us, _slot_us = self._reserve(keys=[self.key], args=[self.interval_us, MAX_WAIT_MS * 1000])
            wait_s = int(wait_us) / 1_000_000
            if granted:
                if wait_s > 0:
                    self._sleep(wait_s)
                return waited_s + wait_s
            # The schedule is far ahead (a penalty): sleep most of the way, then reserve for real.
            nap_s = max(0.001, wait_s - MAX_WAIT_MS / 2000)
            self._sleep(nap_s)
            waited_s += nap_s

    def penalize(self, penalty_ms: int = PENALTY_MS) -> None:
        with translated("limiter"):
            self._penalize(keys=[self.key], args=[penalty_ms * 1000])


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

    def acquire(self) -> float:
        with self._lock:
            now = self._clock()
            tat = max(self._tat, now)
            self._tat = tat + self.interval_s
        wait_s = tat - now
        if wait_s > 0:
            self._sleep(wait_s)
        return wait_s

    def penalize(self, penalty_ms: int = PENALTY_MS) -> None:
        with self._lock:
            self._tat = max(self._tat, self._clock() + penalty_ms / 1000)
