"""Fair between apps (issue 13): app A's backlog holds every thread of a worker, app B's request comes in.

A small stand-in for one worker process: a pool of threads that takes delivery runs from one queue
per app in turn (as kombu's Redis transport rotates a worker's queues), and a "pump" that hands A a
new run whenever one ends (A has more runs queued than the pool has threads, as its markers allow).
Each app has its own Store, Redis GCRA limiter and Deliverer on a real Redis.

Without FairShare, B's run waits in its queue until one of A's runs spends its whole budget; with it,
a run of A beyond A's share of the pool gives way after its current batch, B is served within a
fraction of a second, and A keeps calling at its own limit meanwhile.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Sequence

import pytest
import redis

from imunban.delivery import Deliverer
from imunban.fairness import FairShare
from imunban.hold import Hold
from imunban.keys import Keys
from imunban.limiter import RedisRateLimiter
from imunban.settings import LingerPolicy
from imunban.store import Store
from imunban.validation import UnbanRequest

POOL = 4
RATE = 40.0  # calls/s of each app
BUDGET_S = 3.0  # a run's budget, as delivery.DELIVER_BUDGET_S
B_ARRIVES_S = 0.6


class Api:
    """Answers OK after a few ms; records when each member was unbanned."""

    def __init__(self) -> None:
        self.at: dict[tuple[str, str], float] = {}
        self.calls: list[float] = []
        self._lock = threading.Lock()

    def unban(self, group_id: str, members: Sequence[str]) -> None:
        time.sleep(0.003)
        now = time.monotonic()
        with self._lock:
            self.calls.append(now)
            for m in members:
                self.at[(group_id, m)] = now

    def renew_sig(self) -> None:
        pass


class MiniWorker:
    """POOL threads taking runs ``(app, group)`` from per-app queues in rotation."""

    def __init__(self, deliverers: dict[str, Deliverer], fair: FairShare | None) -> None:
        self.deliverers = deliverers
        self.fair = fair
        self.queues: dict[str, collections.deque[str]] = {app: collections.deque() for app in deliverers}
        self.order = list(deliverers)
        self.cond = threading.Condition()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._serve, daemon=True) for _ in range(POOL)]

    def waiting(self, app: str) -> bool:
        with self.cond:
            return bool(self.queues[app])

    def submit(self, app: str, group: str) -> None:
        with self.cond:
            self.queues[app].append(group)
            self.cond.notify()

    def _next(self) -> tuple[str, str] | None:
        with self.cond:
            while not self.stop.is_set():
                for app in list(self.order):
                    if self.queues[app]:
                        self.order.remove(app)
                        self.order.append(app)  # the queue that delivered goes to the end (kombu's cycle)
                        return app, self.queues[app].popleft()
                self.cond.wait(0.05)
        return None

    def _serve(self) -> None:
        while (job := self._next()) is not None:
            app, group = job
            turn = None if self.fair is None else self.fair.enter(app)

            def give_way() -> bool:  # a stopping worker ends its runs at once (the test's own exit)
                return self.stop.is_set() or (turn is not None and turn.give_way())  # noqa: B023

            try:
                self.deliverers[app].deliver_group(group, budget_s=BUDGET_S, give_way=give_way)
            finally:
                if turn is not None:
                    turn.fair.leave(turn)
            if app == "A" and not self.stop.is_set():
                self.submit("A", group)  # A's pump: its backlog is still there, dispatch again

    def __enter__(self) -> MiniWorker:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        with self.cond:
            self.cond.notify_all()
        for t in self.threads:
            t.join(timeout=BUDGET_S + 2)


@pytest.mark.parametrize("fair", [True, False], ids=["fair-share", "without"])
def test_a_backlog_of_one_app_does_not_delay_another_apps_request(r: redis.Redis, fair: bool) -> None:
    api = Api()
    deliverers: dict[str, Deliverer] = {}
    for app in ("A", "B"):
        keys = Keys("fair", app)
        store = Store(r, keys, linger=LingerPolicy(0))
        limiter = RedisRateLimiter(r, keys, f"sdk{app}", RATE)
        deliverers[app] = Deliverer(store, limiter, api, Hold(r, keys))
    a_store = deliverers["A"].store
    a_store.enqueue([UnbanRequest(f"a{g:03d}", tuple(f"u{m}" for m in range(20))) for g in range(400)])

    share = FairShare(POOL, {"A": RATE, "B": RATE}, lambda app: worker.waiting(app)) if fair else None
    worker = MiniWorker(deliverers, share)
    with worker:
        for g in range(2 * POOL):  # more of A's runs than threads, as A's markers allow
            worker.submit("A", f"a{g:03d}")
        time.sleep(B_ARRIVES_S)
        b_at = time.monotonic()
        deliverers["B"].store.enqueue([UnbanRequest("b-group", ("bob",))])
        worker.submit("B", "b-group")
        deadline = b_at + BUDGET_S + 2
        while ("b-group", "bob") not in api.at and time.monotonic() < deadline:
            time.sleep(0.01)
        b_latency = api.at.get(("b-group", "bob"), float("inf")) - b_at
        time.sleep(max(0.0, b_at + 0.5 - time.monotonic()))
        window = [t for t in api.calls if b_at - 0.5 <= t < b_at + 0.5]

    if fair:
        # B is served after at most a batch of A's plus a cached look-up, not after a run's budget.
        assert b_latency < 0.5, b_latency
        assert share is not None and share.gave_way["A"] >= 1
        # A keeps calling at its own limit around B's arrival (giving way costs it no calls).
        assert len(window) >= 0.75 * RATE
    else:
        # The gap FairShare closes: every thread is A's until one of its runs spends its budget.
        assert b_latency > BUDGET_S - B_ARRIVES_S - 1.0, b_latency
