"""Worker heartbeats: each worker's pump records when it last ticked, so operators see who is alive.

``Keys.workers`` is a HASH worker id ("host:pid") -> ms of its last tick on the Redis server clock.
A beat is written at most every :data:`BEAT_EVERY_S` (the pump ticks on wake-ups and due times, at
least every second); workers silent for :data:`FORGET_AFTER_MS` are pruned by the beating ones, so
the hash stays as small as the fleet. A worker that stops cleanly removes its entry (:meth:`Heartbeat.retire`),
so a rolling restart never shows silent workers, and a worker that died is no longer alive after
:data:`ALIVE_MS` (well under the 30 s in which ``imunban status --check`` must say ``stalled``).
A heartbeat never stops delivery: a Redis that refuses the write (full, failing over) costs a beat.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import redis

from imunban.connection import server_time_ms, translated
from imunban.errors import StoreError
from imunban.keys import Keys

log = logging.getLogger(__name__)

#: Seconds between two beats of one worker.
BEAT_EVERY_S = 1.0
#: A worker whose last tick is older than this is shown as not alive (several missed beats).
ALIVE_MS = 10_000
#: A worker silent this long is dropped from the hash by the others.
FORGET_AFTER_MS = 3_600_000
#: Prune every this many beats (one HGETALL of a fleet-sized hash).
PRUNE_EVERY = 60


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat:
    """Writes this worker's last tick time, at most every ``every_s`` seconds."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        worker_id: str | None = None,
        *,
        every_s: float = BEAT_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.keys = keys
        self.worker_id = worker_id or default_worker_id()
        self.every_s = every_s
        self._clock = clock
        self._last = -float("inf")
        self._beats = 0
        self._retired = False

    def beat(self) -> bool:
        """Record a tick if the last one is ``every_s`` old; False when skipped, refused or retired."""
        now = self._clock()
        if self._retired or now - self._last < self.every_s:
            return False
        self._last = now
        try:
            now_ms = server_time_ms(self.client, self.keys.workers)
            with translated("heartbeat"):
                self.client.hset(self.keys.workers, self.worker_id, now_ms)
                self._beats += 1
                if self._beats % PRUNE_EVERY == 1:
                    self._prune(now_ms)
        except StoreError as exc:  # includes RedisFullError: delivery drains a full Redis, beats wait
            log.debug("heartbeat not written: %s", exc)
            return False
        return True

    def retire(self) -> bool:
        """The worker stops cleanly: remove its entry and beat no more; False if Redis could not be told."""
        self._retired = True
        try:
            with translated("heartbeat"):
                self.client.hdel(self.keys.workers, self.worker_id)
        except StoreError as exc:  # a dead worker is seen as not alive after ALIVE_MS anyway
            log.warning("could not deregister worker %s: %s", self.worker_id, exc)
            return False
        return True

    def _prune(self, now_ms: int) -> None:
        beats = cast(dict[str, str], self.client.hgetall(self.keys.workers))
        old = [worker for worker, ms in beats.items() if now_ms - int(ms) > FORGET_AFTER_MS]
        if old:
            self.client.hdel(self.keys.workers, *old)


@dataclass(frozen=True)
class WorkerBeat:
    """One worker as operators see it."""

    worker: str
    last_tick_ms: int
    age_ms: int

    @property
    def alive(self) -> bool:
        return self.age_ms <= ALIVE_MS

    def as_dict(self) -> dict[str, str | int | bool]:
        return {"worker": self.worker, "last_tick_ms": self.last_tick_ms, "age_ms": self.age_ms, "alive": self.alive}


def workers(client: redis.Redis, keys: Keys, now_ms: int) -> list[WorkerBeat]:
    """Every worker that beat within FORGET_AFTER_MS, most recent first (read-only)."""
    with translated("heartbeat"):
        beats = cast(dict[str, str], client.hgetall(keys.workers))
    out = [WorkerBeat(worker, int(ms), max(0, now_ms - int(ms))) for worker, ms in beats.items()]
    return sorted((w for w in out if w.age_ms <= FORGET_AFTER_MS), key=lambda w: (w.age_ms, w.worker))
