"""Run script calls in one pipeline that survives an emptied script cache and can wait for replicas.

NOSCRIPT: a new primary after a failover, a restart or ``SCRIPT FLUSH`` empties the script cache.
redis-py's :class:`~redis.commands.core.Script` reloads on NOSCRIPT for a direct call, but not for a
call inside a pipeline, where the error reaches the caller. :func:`run_scripts` reloads the
scripts and runs the whole pipeline again. That is only safe because every script is idempotent
(enqueue and cancel by nature; claim/ack/requeue by request id and lease token): a call that
already ran before the cache was emptied runs a second time without effect.

Durability: with ``Durability.replicas > 0`` the pipeline ends with ``WAIT replicas timeout_ms``. WAIT
counts the replicas that acknowledged this *connection's* writes, so it must travel on the same
connection as the writes: a pipeline is sent on one connection, also when redis-py retries it after
a connection error (the writes are then sent again before the WAIT). Too few replicas in time is a
:class:`~imunban.errors.DurabilityError`, never a silent success.

On a Redis Cluster the calls go as one pipeline per node, WAIT on each (:mod:`imunban.cluster_scripts`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

import redis
from redis.cluster import RedisCluster

from imunban.cluster_scripts import ScriptCall, confirm_replicas, run_on_cluster
from imunban.connection import is_cluster, translated
from imunban.settings import Durability

log = logging.getLogger("imunban.redis")

#: Reloads before giving up: a cache emptied again right after a reload means something is wrong.
NOSCRIPT_RELOADS = 3


def run_scripts(
    client: redis.Redis,
    calls: Sequence[ScriptCall],
    *,
    operation: str,
    durability: Durability | None = None,
    raise_on_error: bool = True,
) -> list[Any]:
    """EVALSHA every call in one pipeline (no MULTI); reload on NOSCRIPT; WAIT if durable. Returns the replies.

    Redis errors become :class:`~imunban.errors.StoreError` naming ``operation``; with
    ``raise_on_error=False`` a call's error reply comes back in its place instead (as redis-py's
    ``Pipeline.execute`` does), except NOSCRIPT, which is always handled here.
    """
    replicas = durability.replicas if durability is not None else 0
    if is_cluster(client):
        # redis-py's cluster pipeline refuses EVALSHA: one pipeline per node, WAIT on that node.
        with translated(operation):
            return run_on_cluster(
                cast(RedisCluster, client),
                calls,
                operation=operation,
                durability=durability,
                raise_on_error=raise_on_error,
            )
    with translated(operation):
        for attempt in range(NOSCRIPT_RELOADS + 1):
            pipe = client.pipeline(transaction=False)
            for script, keys, args in calls:
                # EVALSHA only: Pipeline.load_scripts would cost a SCRIPT EXISTS round trip per pipeline.
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            if replicas:
                assert durability is not None
                pipe.wait(replicas, durability.timeout_ms)
            try:
                replies: list[Any] = pipe.execute(raise_on_error=raise_on_error)
                if not raise_on_error:
                    _raise_noscript(replies)
            except redis.exceptions.NoScriptError:
                if attempt == NOSCRIPT_RELOADS:
                    raise
                # Also the first use on a server: the scripts are loaded on demand, never up front.
                log.info(
                    "redis: %s: scripts not in the server's cache (first use, failover, restart or SCRIPT FLUSH); "
                    "loading them",
                    operation,
                )
                for script in {id(call[0]): call[0] for call in calls}.values():
                    script.sha = client.script_load(script.script)
                continue
            break
    if replicas:
        assert durability is not None
        confirm_replicas(replies.pop(), durability, operation)
    return replies


def _raise_noscript(replies: Sequence[Any]) -> None:
    for reply in replies:
        if isinstance(reply, redis.exceptions.NoScriptError):
            raise reply
