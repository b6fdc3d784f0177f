"""The overview's live rates, and the console's share of the throughput history kept in Redis.

Live rates (the Delivered/s and Calls/s cards) are differences of the engine's counters
(``delivered``, ``calls`` in the stats hash) between samples taken every :data:`SAMPLE_EVERY_S` by a
background thread of the console, with the Redis server's clock, kept in a ring in this process.
The charts draw the per-minute history of :mod:`imunban.throughput` instead, which lives in Redis:
each sample here also offers this minute's snapshot (the first replica in a minute writes it), so
the chart is the same on every replica and after a restart.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from dataclasses import dataclass

import redis

from imunban.connection import server_time_ms, translated
from imunban.errors import StoreError
from imunban.keys import Keys
from imunban.throughput import KEEP_MINUTES, MINUTE_MS, rates, record, snapshots

log = logging.getLogger(__name__)

SAMPLE_EVERY_S = 2.0
#: How long one read of the history serves the pages (it changes once a minute).
HISTORY_CACHE_MS = 10_000
#: 15 minutes of samples.
WINDOW_S = 900
RING = int(WINDOW_S / SAMPLE_EVERY_S) + 1


@dataclass(frozen=True)
class Sample:
    at_ms: int
    delivered: int
    calls: int


class RateSampler:
    """Samples one app's counters; :meth:`series` turns them into per-second rates."""

    def __init__(self, client: redis.Redis, keys: Keys, *, ring: int = RING) -> None:
        self.client = client
        self.keys = keys
        self._ring: deque[Sample] = deque(maxlen=ring)
        self._lock = threading.Lock()
        self._recorded_minute = 0
        self._history: tuple[int, dict[str, list[float | None]]] | None = None

    def sample(self) -> Sample | None:
        """Read the counters once and keep them; None if Redis did not answer."""
        try:
            now = server_time_ms(self.client, self.keys.stats)
            with translated("rate sample"):
                delivered, calls = self.client.hmget(self.keys.stats, ["delivered", "calls"])
        except StoreError as exc:
            log.debug("rate sample skipped: %s", exc)
            return None
        taken = Sample(now, int(delivered or 0), int(calls or 0))
        with self._lock:
            if not self._ring or taken.at_ms > self._ring[-1].at_ms:
                self._ring.append(taken)
        return taken

    def record_history(self, now_ms: int) -> None:
        """Offer this minute's snapshot to the shared history (once per minute from this replica)."""
        if now_ms // MINUTE_MS == self._recorded_minute:
            return
        try:
            record(self.client, self.keys)
        except StoreError as exc:
            log.debug("throughput snapshot skipped: %s", exc)
            return
        self._recorded_minute = now_ms // MINUTE_MS

    def history(self, now_ms: int) -> dict[str, list[float | None]]:
        """Per-minute rates of the last 24 h from Redis ({"t", "delivered", "calls"}), read at most every 10 s."""
        cached = self._history
        if cached is not None and 0 <= now_ms - cached[0] < HISTORY_CACHE_MS:
            return cached[1]
        # One snapshot before the window, so its first minute has a rate too.
        found = rates(snapshots(self.client, self.keys, now_ms // MINUTE_MS - KEEP_MINUTES - 1))
        self._history = (now_ms, found)
        return found

    def maybe_sample(self, min_gap_ms: int = int(SAMPLE_EVERY_S * 1000)) -> None:
        """Sample unless the newest sample is recent (pages call this when no thread runs)."""
        with self._lock:
            newest = self._ring[-1].at_ms if self._ring else None
        if newest is None:
            self.sample()
            return
        try:
            now = server_time_ms(self.client, self.keys.stats)
        except StoreError:
            return
        if now - newest >= min_gap_ms:
            self.sample()

    def series(self) -> dict[str, list[float]]:
        """{"t": seconds, "delivered": members/s, "calls": calls/s} between consecutive samples."""
        with self._lock:
            samples = list(self._ring)
        out: dict[str, list[float]] = {"t": [], "delivered": [], "calls": []}
        for before, after in itertools.pairwise(samples):
            span_s = (after.at_ms - before.at_ms) / 1000
            if span_s <= 0:
                continue
            out["t"].append(after.at_ms / 1000)
            # A counter that went down (the store was reset) restarts from zero, never a negative rate.
            out["delivered"].append(round(max(0, after.delivered - before.delivered) / span_s, 2))
            out["calls"].append(round(max(0, after.calls - before.calls) / span_s, 2))
        return out

    def latest(self) -> dict[str, float | None]:
        """The newest rates (None before two samples exist)."""
        series = self.series()
        if not series["t"]:
            return {"delivered_per_s": None, "calls_per_s": None}
        return {"delivered_per_s": series["delivered"][-1], "calls_per_s": series["calls"][-1]}


class SamplerThread:
    """Runs every app's sampler every SAMPLE_EVERY_S until stopped (started by the app's lifespan)."""

    def __init__(self, samplers: list[RateSampler], every_s: float = SAMPLE_EVERY_S) -> None:
        self.samplers = samplers
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="imunban-web-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            for sampler in self.samplers:
                # Only this thread writes the history: a page or API GET never changes Redis.
                if (taken := sampler.sample()) is not None:
                    sampler.record_history(taken.at_ms)
            self._stop.wait(self.every_s)
