"""Redis plumbing for the engine: the client, the one clock, and error translation at the boundary.

The engine connects to the URL in :class:`~imunban.settings.Settings`; resolving an unset URL to the
embedded server is the entry points' job (:func:`imunban.local.embedded.resolve_settings`), so no
library call here ever starts a process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from imunban.errors import ConfigError, StoreError
from imunban.settings import Settings


def connect(settings: Settings, *, url: str | None = None) -> redis.Redis:
    """A client with decode_responses (ids are ASCII) that rides out a short Redis restart."""
    url = url or settings.redis_url
    if url is None:
        raise ConfigError("IMUNBAN_REDIS_URL is not set (entry points resolve it to the embedded server first)")
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=5,
        socket_timeout=30,
        socket_keepalive=True,
        health_check_interval=30,
        # A restart (with AOF) takes a second or two: retry instead of failing the batch.
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=20),
        retry_on_error=[
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            redis.exceptions.BusyLoadingError,
        ],
    )


@contextmanager
def translated(operation: str) -> Iterator[None]:
    """Run a block of Redis calls; a redis-py error becomes StoreError naming the operation."""
    try:
        yield
    except redis.exceptions.RedisError as exc:
        raise StoreError(f"redis: {operation} failed: {exc}") from exc


def server_time_ms(client: redis.Redis) -> int:
    """The one clock: the Redis server's ``TIME`` in epoch milliseconds, never a host's."""
    with translated("time"):
        seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000
