"""The one clock: every due-time comparison uses the Redis server's ``TIME``, never a host's."""

from __future__ import annotations

import redis

from worker.redis_errors import translated


def server_time_ms(client: redis.Redis) -> int:
    """The Redis server's clock in epoch milliseconds."""
    with translated("time"):
        seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000
