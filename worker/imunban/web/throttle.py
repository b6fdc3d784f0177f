"""Failed sign-ins throttled: per client address and for the whole console (sliding windows).

A token is checked on ``POST /login`` and on every bearer request. After :data:`FAILURES_PER_ADDRESS`
failures from one address within :data:`WINDOW_S`, that address gets 429 (with Retry-After) before
any token is compared, until the oldest of them leaves the window; after :data:`FAILURES_TOTAL`
failures from anywhere, everyone does (many addresses cannot guess in parallel either). Sessions
already signed in are not token checks and keep working. A success does not reset the count: a
viewer could otherwise interleave sign-ins to keep guessing the operator token. The state is this
process's memory: bounded (:data:`MAX_TRACKED` addresses), and a restart forgets it.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable

FAILURES_PER_ADDRESS = 5
FAILURES_TOTAL = 50
WINDOW_S = 60.0
MAX_TRACKED = 10_000


def address_key(host: str) -> str:
    """What one client is counted as: an IPv4 address, an IPv6 /64 (a host gets a whole /64), else the text."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is the IPv4 client a.b.c.d
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class Throttle:
    """Sliding windows of failure times, per address and in all; ``clock`` in seconds (monotonic)."""

    def __init__(
        self,
        *,
        per_address: int = FAILURES_PER_ADDRESS,
        total: int = FAILURES_TOTAL,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        self.window_s = window_s
        self._clock = clock
        self._per_address = per_address
        self._max_tracked = max_tracked
        #: address -> its latest failure times (the oldest first), least recently failed address first.
        self._by_address: OrderedDict[str, deque[float]] = OrderedDict()
        self._all: deque[float] = deque(maxlen=total)

    @property
    def tracked(self) -> int:
        return len(self._by_address)

    def blocked_for(self, host: str) -> float:
        """Seconds until ``host`` may try a token again (0: now)."""
        now = self._clock()
        waits = [self._wait(self._all, now)]
        times = self._by_address.get(address_key(host))
        if times is not None:
            waits.append(self._wait(times, now))
        return max(waits)

    def failed(self, host: str) -> None:
        """Count one failed token check from ``host``."""
        now = self._clock()
        key = address_key(host)
        times = self._by_address.pop(key, None) or deque(maxlen=self._per_address)
        times.append(now)
        self._by_address[key] = times  # now the most recent
        self._all.append(now)
        self._forget(now)

    def _wait(self, times: deque[float], now: float) -> float:
        if len(times) < (times.maxlen or 0):
            return 0.0
        return max(0.0, times[0] + self.window_s - now)

    def _forget(self, now: float) -> None:
        """Drop addresses whose last failure left the window, and the least recent past the bound."""
        while self._by_address:
            key, times = next(iter(self._by_address.items()))
            if times[-1] + self.window_s > now and len(self._by_address) <= self._max_tracked:
                break
            del self._by_address[key]
