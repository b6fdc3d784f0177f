"""Scheduled requests: promote the due ones into their groups' ready sets; reap expired leases.

Scheduled unbans live in the ``sched`` sorted set (never in Celery ETA/countdown, which Celery keeps
in worker memory). Promotion reads due candidates, then a Lua script re-checks each against the
server clock and moves it atomically, so concurrent promoters on many hosts are safe.
"""

from __future__ import annotations

from typing import cast

import redis

from worker.clock import server_time_ms
from worker.keys import SEP, Keys, split_request_id
from worker.redis_errors import translated
from worker.scripts import register
from worker.store import linger_arg

#: Requests moved per promote script call: big enough for 400k+/s, small enough not to stall Redis.
PROMOTE_CHUNK = 1_000
REAP_CHUNK = 1_000


class Scheduler:
    """Promotion of due scheduled requests and return of expired leases."""

    def __init__(
        self, client: redis.Redis, keys: Keys, *, linger_ms: int = 150, max_linger_ms: int | None = None
    ) -> None:
        self.client = client
        self.keys = keys
        self.linger_arg = linger_arg(linger_ms, max_linger_ms)
        self._promote = register(client, "promote")
        self._reap = register(client, "reap")

    def server_time_ms(self) -> int:
        return server_time_ms(self.client)

    def promote(self, *, limit: int = PROMOTE_CHUNK) -> int:
        """Move up to ``limit`` due scheduled requests to ready; returns how many moved."""
        return self._promote_chunk(limit)[1]

    def _promote_chunk(self, limit: int) -> tuple[int, int]:
        """One promote round: (due candidates read, requests moved)."""
        k = self.keys
        now_ms = self.server_time_ms()
        with translated("promote"):
            rids = cast(list[str], self.client.zrange(k.sched, "-inf", now_ms, byscore=True, offset=0, num=limit))
            if not rids:
                return 0, 0
            groups = list(dict.fromkeys(rid.partition(SEP)[0] for rid in rids))
            moved = self._promote(
                keys=[k.sched, k.groups, k.stats, k.high, *(k.ready(g) for g in groups)],
                args=[self.linger_arg, len(rids), len(groups), *groups],
            )
        return len(rids), int(moved)

    def promote_all(self, *, max_rounds: int = 1_000) -> int:
        """Promote until nothing due is left (or ``max_rounds`` chunks); returns how many moved."""
        total = 0
        for _ in range(max_rounds):
            # Stop on a short read, not a short move: a concurrent promoter may have taken this chunk
            # (moved 0) while more due requests wait behind it.
            candidates, moved = self._promote_chunk(PROMOTE_CHUNK)
            total += moved
            if candidates < PROMOTE_CHUNK:
                break
        return total

    def reap(self, *, limit: int = REAP_CHUNK) -> int:
        """Return requests whose lease expired to the schedule, due at once; returns how many."""
        k = self.keys
        now_ms = self.server_time_ms()
        with translated("reap"):
            rids = cast(list[str], self.client.zrange(k.inflight, "-inf", now_ms, byscore=True, offset=0, num=limit))
            if not rids:
                return 0
            groups, pairs = _group_pairs(rids)
            # The ready sets are passed so that a newer pending copy is seen and never duplicated.
            reaped = self._reap(
                keys=[k.inflight, k.leases, k.sched, k.stats, k.high, *(k.ready(g) for g in groups)],
                args=[len(groups), *groups, *pairs],
            )
        return int(reaped)


def _group_pairs(rids: list[str]) -> tuple[dict[str, int], list[str | int]]:
    """Index the groups of request ids (1-based) and flatten them to (group index, member) pairs."""
    groups: dict[str, int] = {}
    pairs: list[str | int] = []
    for rid in rids:
        group_id, member = split_request_id(rid)
        pairs += (groups.setdefault(group_id, len(groups) + 1), member)
    return groups, pairs
