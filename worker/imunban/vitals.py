"""What a scrape reads of one app besides its counts: the oldest due age, live workers, limiter use, Redis memory.

Every value comes from Redis (on the app's node and clock), never from this process, so every
worker and the exporter report the same figure for it (aggregate with ``max``, docs/metrics.md).
Each read is a few O(log N) commands; nothing here scans the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import redis

from imunban.connection import translated
from imunban.heartbeat import workers
from imunban.keys import HIGH_BAND_MS, Keys
from imunban.linger import limiter_use as pace_use
from imunban.memory import info_memory

#: Waiting groups whose ready heads are read to find the oldest due request (the groups index is
#: ordered by claimable time, so the oldest due head is among the first ones but for lingering groups).
HEAD_GROUPS = 32


@dataclass(frozen=True)
class RedisMemory:
    """``INFO memory`` of the node holding an app's keys: used bytes and ``maxmemory`` (0: no limit)."""

    used_bytes: int
    max_bytes: int
    #: What Redis leaves out when it compares with maxmemory (replication and AOF buffers).
    not_counted_bytes: int = 0

    @property
    def counted_bytes(self) -> int:
        """Memory as maxmemory counts it: a write is refused when this is over ``max_bytes``."""
        return max(0, self.used_bytes - self.not_counted_bytes)

    @property
    def used_ratio(self) -> float | None:
        """Used / maxmemory, None without a limit."""
        return self.used_bytes / self.max_bytes if self.max_bytes else None


@dataclass(frozen=True)
class Vitals:
    """One app's scrape-time readings (see the module docstring)."""

    #: Due time of the oldest request waiting to be sent, None when nothing is due.
    oldest_due_ms: int | None
    workers_alive: int
    #: Share of the rate limit used lately (1.0 or more: callers queue for slots).
    limiter_use: float
    #: None where INFO is not allowed.
    memory: RedisMemory | None
    now_ms: int

    @property
    def oldest_due_age_s(self) -> float:
        """Seconds the oldest due request has waited past its due time (0 when nothing is due)."""
        return 0.0 if self.oldest_due_ms is None else max(0, self.now_ms - self.oldest_due_ms) / 1000


def oldest_due_ms(client: redis.Redis, keys: Keys, now_ms: int, groups: int = HEAD_GROUPS) -> int | None:
    """Due time of the oldest request waiting to be sent: the ready heads of the first waiting groups,
    and the head of the schedule when it is overdue (not promoted yet)."""
    with translated("oldest due"):
        waiting = cast(list[str], client.zrange(keys.groups, 0, groups - 1))
        pipe = client.pipeline(transaction=False)
        for group in waiting:
            pipe.zrange(keys.ready(group), 0, 0, withscores=True)
        pipe.zrange(keys.schedidx, 0, 0, withscores=True)
        heads = pipe.execute()
    dues = [_due(int(head[0][1])) for head in heads[:-1] if head]
    sched_head = heads[-1]
    if sched_head and int(sched_head[0][1]) <= now_ms:
        dues.append(int(sched_head[0][1]))
    return min(dues) if dues else None


def _due(score: int) -> int:
    """A ready score as a due time (a high-priority member sorts HIGH_BAND_MS earlier)."""
    return score + HIGH_BAND_MS if score < 0 else score


def workers_alive(client: redis.Redis, keys: Keys, now_ms: int) -> int:
    """Workers whose heartbeat is recent (heartbeat.ALIVE_MS)."""
    return sum(1 for beat in workers(client, keys, now_ms) if beat.alive)


#: Stats fields of the limiter's pace (``pace_count`` in lua/_lib.lua), in the order :func:`pace_share` takes.
PACE_FIELDS = ("pace_us", "pace", "pace_interval_us", "pace_booked_us")


def pace_share(fields: Sequence[str | None], now_ms: int) -> float | None:
    """Share of the limit used lately from the :data:`PACE_FIELDS` values; None before the first reservation."""
    t_us, count, interval_us, booked_us = fields
    if not t_us or not count or not interval_us:
        return None
    now_us = now_ms * 1000
    return pace_use(
        float(count), (now_us - float(t_us)) / 1e6, float(interval_us) / 1e6, (float(booked_us or 0) - now_us) / 1e6
    )


def limiter_use(client: redis.Redis, keys: Keys, now_ms: int) -> float:
    """Share of the limit used lately, from the pace the limiter script keeps in the stats hash (linger.py)."""
    with translated("limiter use"):
        fields = cast(list[str | None], client.hmget(keys.stats, list(PACE_FIELDS)))
    share = pace_share(fields, now_ms)
    return 0.0 if share is None else share  # no reservation yet


def redis_memory(client: redis.Redis, key: str) -> RedisMemory | None:
    """``INFO memory`` of the node holding ``key`` (on a Redis Cluster each app's node); None where INFO is
    not allowed (a managed Redis may forbid it): the other readings do not depend on it."""
    try:
        info = info_memory(client, key)
    except redis.exceptions.ResponseError:
        return None
    used, most = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    return RedisMemory(used, most, int(info.get("mem_not_counted_for_evict", 0)))


def read_vitals(client: redis.Redis, keys: Keys, now_ms: int) -> Vitals:
    """Every reading of one app at ``now_ms`` (the app node's clock)."""
    return Vitals(
        oldest_due_ms=oldest_due_ms(client, keys, now_ms),
        workers_alive=workers_alive(client, keys, now_ms),
        limiter_use=limiter_use(client, keys, now_ms),
        memory=redis_memory(client, keys.stats),
        now_ms=now_ms,
    )
