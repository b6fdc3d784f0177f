"""Helpers shared by the storage-layer tests (imported as ``support``; pytest puts tests/ on the path)."""

from __future__ import annotations

import time

import redis

from worker.clock import server_time_ms
from worker.keys import Keys
from worker.validation import UnbanRequest

#: The key prefix every storage-layer test uses.
KEYS = Keys("t")

server_ms = server_time_ms


def wait_server_ms(r: redis.Redis, target_ms: int) -> None:
    """Sleep until the Redis server's clock reaches ``target_ms``."""
    while server_ms(r) < target_ms:
        time.sleep(0.005)


def req(group: str, *members: str, at_ms: int | None = None, high: bool = False) -> UnbanRequest:
    return UnbanRequest(group, tuple(members), at_ms, "high" if high else "normal")


def true_ready(r: redis.Redis) -> int:
    """The ready count recomputed from scratch: the sum of ZCARD over every ready:* key."""
    return sum(int(r.zcard(key)) for key in r.scan_iter(match=KEYS.ready("*"), count=1_000))


def assert_gauge(r: redis.Redis) -> None:
    """The ``ready`` gauge the scripts maintain equals the true count."""
    assert int(r.hget(KEYS.stats, "ready") or 0) == true_ready(r)
