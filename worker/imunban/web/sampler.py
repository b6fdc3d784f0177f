"""The rate chart's memory: a ring of counter samples, so the overview can draw the last 15 minutes.

Rates are differences of the engine's counters (``delivered``, ``calls`` in the stats hash) between
samples taken every :data:`SAMPLE_EVERY_S` by a background thread of the console, with the Redis
server's clock. The ring lives in this process: a restarted console starts a fresh chart.
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

log = logging.getLogger(__name__)

SAMPLE_EVERY_S = 2.0
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
                sampler.sample()
            self._stop.wait(self.every_s)
