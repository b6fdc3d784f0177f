"""Redis plumbing for the engine: the client, the one clock, and error translation at the boundary.

The engine connects to the URL in :class:`~imunban.settings.Settings`; resolving an unset URL to the
embedded server is the entry points' job (:func:`imunban.local.embedded.resolve_settings`), so no
library call here ever starts a process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterError, SlotNotCoveredError
from redis.retry import Retry

from imunban.errors import ConfigError, RedisFullError, StoreError
from imunban.ha import RETRY_ON, FailoverRetry, failover_retry, sentinel_client
from imunban.redis_url import is_cluster_url, is_sentinel_url, parse_cluster_url
from imunban.settings import Settings

#: Each command's retries while Redis is away (a restart, a failover): backoff up to this, this many times.
RETRY_CAP_S = 1.0
RETRIES = 20


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
    retry = failover_retry(cap_s=RETRY_CAP_S, retries=RETRIES)
    # IMUNBAN_REDIS_PASSWORD_FILE is read now, and only for the configured URL (never the embedded server's).
    password = settings.redis_password() if url == settings.redis_url else None
    if password is not None:
        options["password"] = password.reveal()
    if is_sentinel_url(url):
        return sentinel_client(url, settings.sentinel_auth(), options=options, retry=retry)
    if is_cluster_url(url):
        # The same backoff and count, also on the cluster's own failover errors.
        backoff = ExponentialBackoff(cap=RETRY_CAP_S, base=0.05)
        ride_out = FailoverRetry(backoff, retries=RETRIES, supported_errors=CLUSTER_RETRY_ON)
        return cluster_client(url, options=options, retry=ride_out)
    return redis.Redis.from_url(url, retry=retry, **options)


#: What a cluster command is retried on, after a wait: a dead master, the cluster failing over
#: (CLUSTERDOWN, an uncovered slot) or a slot migrating for longer than redis-py's own TRYAGAIN loop.
CLUSTER_RETRY_ON = (*RETRY_ON, ClusterError, SlotNotCoveredError)


class FollowingCluster(RedisCluster):
    """redis-py's RedisCluster, except that a command retried after a dead node or CLUSTERDOWN waits first.

    redis-py re-sends such a command at once, reading the slot map again each time: all its retries
    are spent within milliseconds of a master's death, long before the cluster has noticed it
    (cluster-node-timeout) and promoted its replica. Here each retry waits (``failover``: exponential
    backoff) and is routed afresh, so a command in flight rides out a cluster failover, as it does
    through Sentinel. A command sent to nodes named by the caller is not retried here: its caller
    picks the node again (:func:`server_time_ms`).
    """

    def __init__(self, *args: Any, failover: Retry, **kwargs: Any) -> None:
        self.ride_out = failover  # before redis-py's constructor, which sends commands
        super().__init__(*args, **kwargs)

    def set_retry(self, retry: Retry) -> None:
        """``retry`` paces each command's retries (a CLI fails sooner than a worker); one immediate re-route inside."""
        retry.update_supported_errors(CLUSTER_RETRY_ON)
        self.ride_out = retry

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        run: Callable[..., Any] = super().execute_command
        if kwargs.get("target_nodes") is not None:
            return run(*args, **kwargs)
        return self.ride_out.call_with_retry(lambda: run(*args, **kwargs), lambda _error: None)


def cluster_client(url: str, *, options: dict[str, Any], retry: Retry) -> redis.Redis:
    """A Redis Cluster client; every script runs on the node of its first key (all keys of one app: one slot).

    It is typed as a ``redis.Redis``: the engine uses only commands both clients have, and
    :func:`imunban.pipelines.run_scripts` runs scripts in one pipeline per node on a cluster
    (redis-py's cluster pipeline refuses EVALSHA). ``retry``'s backoff and count apply to each
    command (:class:`FollowingCluster`); redis-py's own immediate retry is kept to one re-route.
    """
    parsed = parse_cluster_url(url)
    cluster_options = {k: v for k, v in options.items() if k != "health_check_interval"}
    client = FollowingCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in parsed.nodes],  # type: ignore[no-untyped-call]
        username=parsed.username,
        password=parsed.password or cluster_options.pop("password", None),
        retry=Retry(NoBackoff(), 1),
        failover=retry,
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

            def node_time() -> Any:  # the node that serves the key now: after a failover, its successor
                return cluster.time(target_nodes=cluster.get_node_from_key(key))  # type: ignore[no-untyped-call]

            ride_out: Retry | None = getattr(cluster, "ride_out", None)
            seconds, micros = ride_out.call_with_retry(node_time, lambda _e: None) if ride_out else node_time()
        else:
            seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000
