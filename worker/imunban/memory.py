"""How full Redis is: ``used_memory`` against ``maxmemory`` (INFO memory), read at most every MEMORY_MAX_AGE_S.

Intake stops short of ``maxmemory`` (``IMUNBAN_INTAKE_MEMORY_FRACTION``, :class:`~imunban.store.Store`):
what is left is the reserve that delivery, holds and the Celery broker's own bookkeeping write into,
so a Redis filled by intake never refuses them. A script cannot read INFO, so the check is made here,
before a call, from a reading that is a fraction of a second old at most (see docs/durability.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import redis

from imunban.connection import is_cluster

log = logging.getLogger(__name__)

#: How long one reading is used for single enqueues; at the API's pace that is a few hundred requests.
MEMORY_MAX_AGE_S = 0.1


@dataclass(frozen=True)
class MemoryReading:
    """``used_memory`` and ``maxmemory`` of the Redis that holds an app's keys (``max_bytes`` 0: no limit)."""

    used_bytes: int
    max_bytes: int

    def over(self, fraction: float) -> bool:
        """Whether more than ``fraction`` of ``maxmemory`` is used (never, without a limit)."""
        return self.max_bytes > 0 and self.used_bytes >= fraction * self.max_bytes


def info_memory(client: redis.Redis, key: str) -> dict[str, Any]:
    """``INFO memory`` of the node that holds ``key`` (on a Redis Cluster, the node of the app's slot).

    ResponseError where INFO is refused (an ACL without it, a renamed command): callers decide what that means.
    """
    if is_cluster(client):
        node = cast(Any, client).get_node_from_key(key)
        info: Any = client.info("memory", target_nodes=node)
    else:
        info = client.info("memory")
    if "used_memory" not in info and info and all(isinstance(v, dict) for v in info.values()):
        info = next(iter(info.values()))  # a cluster reply keyed by node
    return cast(dict[str, Any], info)


class MemoryGauge:
    """Reads INFO memory of the node that holds ``key`` (a cluster's node of the app's slot), cached briefly."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        *,
        max_age_s: float = MEMORY_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.key = key
        self.max_age_s = max_age_s
        self._clock = clock
        self._reading: MemoryReading | None = None
        self._read_at = -float("inf")
        #: False once INFO was refused (an ACL without it): then only Redis's own limit applies.
        self.available = True

    def reading(self, *, fresh: bool = False) -> MemoryReading | None:
        """The latest reading (read again when older than ``max_age_s``, or when ``fresh``); None if INFO is refused."""
        if not self.available:
            return None
        now = self._clock()
        if fresh or self._reading is None or now - self._read_at >= self.max_age_s:
            self._reading = self._read()
            self._read_at = now
        return self._reading

    def _read(self) -> MemoryReading | None:
        try:
            info = info_memory(self.client, self.key)
        except redis.exceptions.ResponseError as exc:  # NOPERM, a renamed command: not a Redis that is down
            log.warning("cannot read Redis INFO memory (%s): intake is refused only at maxmemory itself", exc)
            self.available = False
            return None
        return MemoryReading(int(info.get("used_memory", 0)), int(info.get("maxmemory", 0)))
