"""Redis plumbing for the engine: the client, the one clock, and error translation at the boundary.

The engine connects to the URL in :class:`~imunban.settings.Settings`; resolving an unset URL to the
embedded server is the entry points' job (:func:`imunban.local.embedded.resolve_settings`), so no
library call here ever starts a process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import redis
from redis.cluster import ClusterNode, RedisCluster

from imunban.errors import ConfigError, RedisFullError, StoreError
from imunban.ha import RETRY_ON, failover_retry, sentinel_client
from imunban.redis_url import is_cluster_url, is_sentinel_url, parse_cluster_url
from imunban.settings import Settings


def connect(settings: Settings, *, url: str | None = None) -> redis.Redis:
    """A client with decode_responses (ids are ASCII) that rides out a short Redis restart."""
    url = url or settings.redis_url
    if url is None:
        raise ConfigError("IMUNBAN_REDIS_URL is not set (entry points resolve it to the embedded server first)")
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": 5,
        "socket_timeout": 30,
        "socket_keepalive": True,
        "health_check_interval": 30,
        "retry_on_error": list(RETRY_ON),
    }
    # A restart (with AOF) or a Sentinel failover takes seconds: retry (about 17 s in all) instead of
    # failing the batch; past that the caller gets a StoreError, and the pump or producer tries again.
    retry = failover_retry(cap_s=1.0, retries=20)
    # IMUNBAN_REDIS_PASSWORD_FILE is read now, and only for the configured URL (never the embedded server's).
    password = settings.redis_password() if url == settings.redis_url else None
    if password is not None:
        options["password"] = password.reveal()
    if is_sentinel_url(url):
        return sentinel_client(url, settings.sentinel_auth(), options=options, retry=retry)
    if is_cluster_url(url):
        return cluster_client(url, options=options, retry=retry)
    return redis.Redis.from_url(url, retry=retry, **options)


def cluster_client(url: str, *, options: dict[str, Any], retry: Any) -> redis.Redis:
    """A Redis Cluster client; every script runs on the node of its first key (all keys of one app: one slot).

    It is typed as a ``redis.Redis``: the engine uses only commands both clients have, and
    :func:`imunban.pipelines.run_scripts` runs scripts without a pipeline on a cluster (redis-py's
    cluster pipeline refuses EVALSHA).
    """
    parsed = parse_cluster_url(url)
    cluster_options = {k: v for k, v in options.items() if k != "health_check_interval"}
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in parsed.nodes],  # type: ignore[no-untyped-call]
        username=parsed.username,
        password=parsed.password or cluster_options.pop("password", None),
        retry=retry,
        **cluster_options,
    )
    return cast(redis.Redis, client)


def is_cluster(client: object) -> bool:
    """Whether ``client`` talks to a Redis Cluster (scripts then run one by one, never in a pipeline)."""
    return isinstance(client, RedisCluster)


@contextmanager
def translated(operation: str) -> Iterator[None]:
    """Run a block of Redis calls; a redis-py error becomes StoreError naming the operation."""
    try:
        yield
    except redis.exceptions.RedisError as exc:
        if is_redis_full(exc):
            raise RedisFullError(operation) from exc
        raise StoreError(f"redis: {operation} failed: {exc}") from exc


def is_redis_full(exc: BaseException) -> bool:
    """Whether Redis refused a command for ``maxmemory`` (a plain command, or a script's first write)."""
    # From a script, Redis 6.2 wraps the OOM error in an "ERR Error running script" reply.
    return isinstance(exc, redis.exceptions.OutOfMemoryError) or "OOM command not allowed" in str(exc)


def require_reachable(client: redis.Redis, variable: str = "IMUNBAN_REDIS_URL") -> None:
    """At a command's or a worker's start: one line naming ``variable`` when Redis cannot be reached, no traceback."""
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        raise StoreError(f"{variable}: cannot reach Redis: {exc}") from None


def server_time_ms(client: redis.Redis, key: str | None = None) -> int:
    """The one clock: the Redis server's ``TIME`` in epoch milliseconds, never a host's.

    On a Redis Cluster each node has its own clock: pass a ``key`` of the app (or deployment) whose
    due times are compared, and its node's clock is read, the one its scripts use.
    """
    with translated("time"):
        if key is not None and is_cluster(client):
            cluster = cast(RedisCluster, client)
            seconds, micros = cluster.time(target_nodes=cluster.get_node_from_key(key))  # type: ignore[no-untyped-call]
        else:
            seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000
