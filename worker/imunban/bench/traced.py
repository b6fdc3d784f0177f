"""Part of the ``scale`` scenario: Redis bytes per traced request (imunban.trace) at N ended requests.

N requests (one distinct member each, 20 per group: the worst case for the member-sharded records,
one member per record) are delivered the way a worker ends them: enqueue, claim, ``ack`` delivered,
which writes each one's trace record. Everything else the drain leaves (counters, the capped outcome
stream, call replies) is then deleted, so ``used_memory`` after minus before, over N, is what the
records cost, their shards' key overhead and expiry included.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from imunban.bench.util import Log
from imunban.keys import Keys
from imunban.settings import LingerPolicy
from imunban.store import Batch, Store
from imunban.validation import UnbanRequest

#: Members per group (one claim and one ack each).
PER_GROUP = 20
#: Groups per enqueue call.
ENQUEUE_GROUPS = 500
#: The same id shapes as the scheduled requests of ``scale`` (bench.redis_scenarios).
GROUP_FMT = "@TGS#2T{:07d}"
MEMBER_FMT = "user_{:07d}"


def traced_memory(client: redis.Redis, n: int, log: Log, prefix: str = "traced") -> dict[str, Any]:
    """Deliver ``n`` requests under ``prefix`` and measure the Redis bytes their trace records take."""
    keys = Keys(prefix)
    store = Store(client, keys, linger=LingerPolicy(0), outcome_maxlen=1)
    groups = (n + PER_GROUP - 1) // PER_GROUP
    before = int(client.info("memory")["used_memory"])
    started = time.perf_counter()
    for first in range(0, groups, ENQUEUE_GROUPS):
        batch_groups = range(first, min(groups, first + ENQUEUE_GROUPS))
        store.enqueue(
            UnbanRequest(
                GROUP_FMT.format(g),
                tuple(MEMBER_FMT.format(i) for i in range(g * PER_GROUP, min(n, (g + 1) * PER_GROUP))),
            )
            for g in batch_groups
        )
        for g in batch_groups:
            batch = store.claim(GROUP_FMT.format(g))
            if not isinstance(batch, Batch):
                raise RuntimeError(f"could not claim {GROUP_FMT.format(g)}")
            store.ack(batch, "delivered")
    drain_s = time.perf_counter() - started
    shards = set(client.scan_iter(match=keys.trace_pattern(), count=10_000))
    leftovers = [key for key in client.scan_iter(match=keys.app_pattern(), count=10_000) if key not in shards]
    if leftovers:
        client.delete(*leftovers)
    after = int(client.info("memory")["used_memory"])
    traced = sum(int(client.hlen(shard)) for shard in shards) - len(shards)  # each shard's "" field is no record
    per = (after - before) / traced if traced else None
    log(f"  {traced:,} traced requests in {len(shards):,} shards: {per or 0:.1f} bytes each ({drain_s:.0f} s to end)")
    return {
        "traced": traced,
        "shards": len(shards),
        "used_memory_delta": after - before,
        "bytes_per_traced_request": per,
        "drain_s": round(drain_s, 1),
        "distinct_members": True,
    }
