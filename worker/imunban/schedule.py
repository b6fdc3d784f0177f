"""Scheduled requests: promote the due ones into their groups' ready sets; forget old versions.

Scheduled unbans live in per-group ``sched:{group}`` sorted sets, indexed by their earliest due time
in ``schedidx`` (never in Celery ETA/countdown, which Celery keeps in worker memory). Promotion reads
the due groups from the index, then a Lua script re-reads each group's due head against the server
clock and moves it atomically, so concurrent promoters on many hosts are safe.
"""

from __future__ import annotations

from typing import cast

import redis

from imunban.connection import server_time_ms, translated
from imunban.keys import Keys
from imunban.scripts import register, script_keys
from imunban.settings import DEFAULT_VERSION_MEMORY_S, LingerPolicy

#: Requests moved per promote script call: small enough that one call never stalls Redis.
PROMOTE_CHUNK = 1_000
#: Versions forgotten per forget_versions script call.
FORGET_CHUNK = 1_000


class Scheduler:
    """Promotion of due scheduled requests, and forgetting the versions of requests ended long ago."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        linger: LingerPolicy | None = None,
        version_memory_ms: int = DEFAULT_VERSION_MEMORY_S * 1000,
    ) -> None:
        self.client = client
        self.keys = keys
        self.linger_arg = (linger or LingerPolicy()).script_arg
        self.version_memory_ms = version_memory_ms
        self._promote = register(client, "promote")
        self._forget = register(client, "forget_versions")
        self._forget_replies = register(client, "forget_replies")

    def promote(self, *, limit: int = PROMOTE_CHUNK) -> int:
        """Move up to ``limit`` due scheduled requests to ready; returns how many moved."""
        return self._promote_chunk(limit)[1]

    def _promote_chunk(self, limit: int) -> tuple[bool, int]:
        """One promote round: (whether more may be due, requests moved)."""
        k = self.keys
        now_ms = server_time_ms(self.client, self.keys.schedidx)
        with translated("promote"):
            groups = cast(list[str], self.client.zrange(k.schedidx, "-inf", now_ms, byscore=True, offset=0, num=limit))
            if not groups:
                return False, 0
            taken, moved = self._promote(
                keys=script_keys(k, "promote", groups),
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

    def forget_replies(self, *, limit: int = FORGET_CHUNK, max_rounds: int = 10) -> int:
        """Forget expired replies of replayable calls (see forget_replies.lua); returns how many."""
        total = 0
        for _ in range(max_rounds):
            with translated("forget_replies"):
                forgotten = int(self._forget_replies(keys=script_keys(self.keys, "forget_replies"), args=[limit]))
            total += forgotten
            if forgotten < limit:
                break
        return total

    def forget_versions(self, *, limit: int = FORGET_CHUNK, max_rounds: int = 10) -> int:
        """Forget versions of requests that ended more than the version memory ago; returns how many.

        Up to ``max_rounds`` chunks per call, so forgetting keeps up with delivery at the API's full rate
        (4,000 requests/s) when the pump calls this every few hundred ms.
        """
        total = 0
        for _ in range(max_rounds):
            with translated("forget_versions"):
                forgotten = int(
                    self._forget(keys=script_keys(self.keys, "forget_versions"), args=[self.version_memory_ms, limit])
                )
            total += forgotten
            if forgotten < limit:
                break
        return total
