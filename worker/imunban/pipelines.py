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
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script

from imunban.connection import is_cluster, translated
from imunban.errors import ConfigError, DurabilityError
from imunban.settings import Durability

log = logging.getLogger("imunban.redis")

#: (script, KEYS, ARGV) of one call.
ScriptCall = tuple[Script, Sequence[str], Sequence[str | int]]
#: Reloads before giving up: a cache emptied again right after a reload means something is wrong.
NOSCRIPT_RELOADS = 3


def require_durability_support(client: redis.Redis, durability: Durability | None) -> Durability:
    """``durability`` (default: none), or ConfigError if ``client`` cannot honour it.

    WAIT counts one connection's writes; a cluster client spreads an app's scripts over its own
    connections, so ``replicas > 0`` on a Redis Cluster would skip WAIT silently: refuse instead
    (as :meth:`imunban.settings.Settings.from_env` does for IMUNBAN_DURABLE_REPLICAS).
    """
    durability = durability or Durability()
    if durability.replicas and is_cluster(client):
        raise ConfigError(
            f"durability with {durability.replicas} replica(s) (IMUNBAN_DURABLE_REPLICAS) is not supported on a "
            "Redis Cluster client: WAIT cannot confirm writes spread over the cluster's connections"
        )
    return durability


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
        # redis-py's cluster pipeline refuses EVALSHA: one call at a time, each routed by its first
        # key (all keys of one call belong to one app, so one slot). Settings refuse WAIT here.
        return _run_one_by_one(calls, operation=operation, raise_on_error=raise_on_error)
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
        confirmed = replies.pop()
        if isinstance(confirmed, Exception):  # only with raise_on_error=False
            raise DurabilityError(f"redis: {operation}: WAIT failed: {confirmed}") from confirmed
        confirmed = int(confirmed)
        if confirmed < replicas:
            raise DurabilityError(
                f"redis: {operation}: the primary stored it, but only {confirmed} of {replicas} replica(s) "
                f"confirmed within {durability.timeout_ms} ms (IMUNBAN_DURABLE_REPLICAS); the request may or "
                "may not be stored: re-sending it is safe"
            )
    return replies


def _run_one_by_one(calls: Sequence[ScriptCall], *, operation: str, raise_on_error: bool) -> list[Any]:
    """Each call by itself (Script reloads on NOSCRIPT); errors raised, or returned in place."""
    replies: list[Any] = []
    with translated(operation):
        for script, keys, args in calls:
            try:
                replies.append(script(keys=list(keys), args=list(args)))
            except redis.exceptions.ResponseError as exc:
                if raise_on_error:
                    raise
                replies.append(exc)
    return replies


def _raise_noscript(replies: Sequence[Any]) -> None:
    for reply in replies:
        if isinstance(reply, redis.exceptions.NoScriptError):
            raise reply
