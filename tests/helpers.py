"""Helpers shared by the storage-layer tests (imported as ``support``; pytest puts tests/ on the path)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import redis
from imunban.connection import server_time_ms
from imunban.keys import Keys
from imunban.validation import UnbanRequest

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
    """The ``ready`` and ``scheduled`` gauges the scripts maintain equal the true counts; schedidx is exact."""
    assert int(r.hget(KEYS.stats, "ready") or 0) == true_ready(r)
    assert int(r.hget(KEYS.stats, "scheduled") or 0) == true_scheduled(r)
    assert_sched_index(r)


def true_scheduled(r: redis.Redis) -> int:
    """The scheduled count recomputed from scratch: the sum of ZCARD over every sched:{group} key."""
    return sum(int(r.zcard(key)) for key in r.scan_iter(match=KEYS.sched_group("*"), count=1_000))


def assert_sched_index(r: redis.Redis) -> None:
    """schedidx holds exactly the non-empty sched:{group} sets, each scored with its earliest due."""
    prefix = KEYS.sched_group("")
    expected = {}
    for key in r.scan_iter(match=KEYS.sched_group("*"), count=1_000):
        head = r.zrange(key, 0, 0, withscores=True)
        if head:
            expected[key[len(prefix) :]] = head[0][1]
    assert dict(r.zrange(KEYS.schedidx, 0, -1, withscores=True)) == expected


def run_in_threads(target: Callable[[], object], count: int) -> None:
    """Start ``count`` threads running ``target`` and wait for all of them."""
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
