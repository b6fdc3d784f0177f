"""Fair turns between apps inside one worker process (docs/semantics.md#several-apps).

A worker's thread pool is shared by every app. Each app's pump already bounds its own runs
(dispatch markers) and each app has its own internal queue, which the worker takes from in turn;
what is left is the pool itself: runs of an app with a backlog can hold every thread (most of the
time asleep on that app's limiter) while another app's run waits in the broker for one.

:class:`FairShare` gives each app a share of the pool weighted by its rate limit (at least one
thread). An app may use more than its share while nobody else needs it (no thread stays idle
behind a cap), but a run beyond its app's share *gives way* — ends after its current batch,
handing the thread back — as soon as another app below its share has a run waiting. A run never
holds a thread on one app's limiter beyond one reservation (limiter.LEASE_CHECK_HORIZON_MS) while
another app with calls to spare waits for it.

``waiting(app)`` says whether an app has a run waiting for a thread (the Celery layer asks the
broker for the length of that app's internal queue); answers are cached for ``recheck_s`` so an
over-share run checks between batches at a bounded cost, and only while someone is over its share.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping

#: How long a ``waiting`` answer is trusted: bounds both the broker look-ups and how late a waiting run is seen.
RECHECK_S = 0.05


def shares(pool: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Each app's threads of a pool of ``pool``: proportional to its weight, rounded down, at least one."""
    total = sum(weights.values())
    return {name: max(1, math.floor(pool * weight / total)) for name, weight in weights.items()}


class Turn:
    """One delivery run of one app in this process; :meth:`give_way` is its between-batches check."""

    def __init__(self, fair: FairShare, app: str) -> None:
        self.fair = fair
        self.app = app
        #: The run already gave its thread back (counted out by give_way): leaving must not count again.
        self.left = False

    def give_way(self) -> bool:
        """True (once) if this run should end now so another app's waiting run gets the thread."""
        return self.fair.give_way(self)

    def __enter__(self) -> Turn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fair.leave(self)


class FairShare:
    """Weighted shares of one process's delivery threads, and who must give way to whom."""

    def __init__(
        self,
        pool: int,
        weights: Mapping[str, float],
        waiting: Callable[[str], bool],
        *,
        recheck_s: float = RECHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shares = shares(pool, weights)
        self._waiting = waiting
        self._recheck_s = recheck_s
        self._clock = clock
        self._lock = threading.Lock()
        self._running = dict.fromkeys(self.shares, 0)
        self._seen: dict[str, tuple[float, bool]] = {}
        #: Runs that gave way, by app (tests, logs).
        self.gave_way = dict.fromkeys(self.shares, 0)

    def running(self) -> dict[str, int]:
        with self._lock:
            return dict(self._running)

    def enter(self, app: str) -> Turn:
        """A run of ``app`` got a thread; use the result as a context manager (leaving counts it out)."""
        with self._lock:
            self._running[app] = self._running.get(app, 0) + 1
        return Turn(self, app)

    def leave(self, turn: Turn) -> None:
        with self._lock:
            if not turn.left:
                turn.left = True
                self._running[turn.app] -= 1

    def give_way(self, turn: Turn) -> bool:
        """Whether ``turn`` is beyond its app's share while an app below its share has a run waiting.

        The run that gives way is counted out at once, so exactly as many runs give way as are
        beyond the share (not every over-share run at the same moment).
        """
        if turn.left:
            return True
        with self._lock:
            over = self._running[turn.app] > self.shares.get(turn.app, 1)
            starved = [a for a, n in self._running.items() if a != turn.app and n < self.shares[a]]
        if not over or not starved:
            return False
        if not any(self._is_waiting(app) for app in starved):
            return False
        with self._lock:
            if self._running[turn.app] <= self.shares.get(turn.app, 1):
                return False  # another run of this app gave way meanwhile
            turn.left = True
            self._running[turn.app] -= 1
            self.gave_way[turn.app] += 1
        return True

    def _is_waiting(self, app: str) -> bool:
        now = self._clock()
        seen = self._seen.get(app)
        if seen is not None and now - seen[0] < self._recheck_s:
            return seen[1]
        try:
            answer = bool(self._waiting(app))
        except Exception:  # the broker is away: nobody is seen waiting, runs carry on as without apps
            answer = False
        self._seen[app] = (now, answer)
        return answer
