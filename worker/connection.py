"""Redis clients for imunban: from IMUNBAN_REDIS_URL, or the embedded default when it is unset."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from worker import embedded
from worker.settings import Settings


def redis_url(settings: Settings) -> str:
    """The configured URL, or the embedded server's (started on first use)."""
    if settings.redis_url is not None:
        return settings.redis_url
    return embedded.ensure_running(settings.data_dir)


def connect(settings: Settings, *, url: str | None = None) -> redis.Redis:
    """A client with decode_responses (ids are ASCII) that rides out a short Redis restart."""
    return redis.Redis.from_url(
        url or redis_url(settings),
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
