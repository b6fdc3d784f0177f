"""Scheduled requests: promote the due ones into their groups' ready sets; reap expired leases.

Scheduled unbans live in per-group ``sched:{group}`` sorted sets, indexed by their earliest due time
in ``schedidx`` (never in Celery ETA/countdown, which Celery keeps in worker memory). Promotion reads
the due groups from the index, then a Lua script re-reads each group's due head against the server
clock and moves it atomically, so concurrent promoters on many hosts are safe.
"""

from __future__ import annotations

from typing import cast

import redis

from imunban.connection import server_time_ms, translated
from imunban.keys import Keys, split_request_id
from imunban.scripts import register
from imunban.store import linger_arg

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

    def _promote_chunk(self, limit: int) -> tuple[bool, int]:
        """One promote round: (whether more may be due, requests moved)."""
        k = self.keys
        now_ms = self.server_time_ms()
        with translated("promote"):
            groups = cast(list[str], self.client.zrange(k.schedidx, "-inf", now_ms, byscore=True, offset=0, num=limit))
            if not groups:
                return False, 0
            # Two keys per group, in the groups' order: sched:{group}, ready:{group} (see promote.lua).
            per_group = [key for g in groups for key in (k.sched_group(g), k.ready(g))]
            taken, moved = self._promote(
                keys=[k.schedidx, k.groups, k.stats, k.high, *per_group],
                args=[self.linger_arg, limit, len(groups), *groups],
            )
        return len(groups) >= limit or int(taken) >= limit, int(moved)

    def promote_all(self, *, max_rounds: int = 1_000) -> int:
        """Promote until nothing due is left (or ``max_rounds`` chunks); returns how many moved."""
        total = 0
        for _ in range(max_rounds):
            # Stop on a short read, not a short move: a concurrent promoter may have taken this chunk
            # (moved 0) while more due requests wait behind it.
            more, moved = self._promote_chunk(PROMOTE_CHUNK)
            total += moved
            if not more:
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
            # Each group's ready and sched sets are passed (in that order, see reap.lua): the reaped
            # request goes to sched:{group}, and a newer pending copy is seen and never duplicated.
            per_group = [key for g in groups for key in (k.ready(g), k.sched_group(g))]
            reaped = self._reap(
                keys=[k.inflight, k.leases, k.schedidx, k.stats, k.high, *per_group],
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
