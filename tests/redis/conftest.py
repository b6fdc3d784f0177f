"""Fixtures of the redis tier that several modules share: a private redis-server the full-Redis tests fill up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from imunban.local.redis_server import RedisServer


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server per module (noeviction, as RedisServer configures it): tests change its maxmemory."""
    server = RedisServer(Path(tmp_path_factory.mktemp("full-redis")), appendonly=False).start()
    yield server
    server.stop()


@pytest.fixture
def fr(small_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of the private server, empty and with no memory limit at the start and the end of each test."""
    client = redis.Redis.from_url(small_server.url, decode_responses=True)
    client.config_set("maxmemory", 0)
    client.flushall()
    yield client
    client.config_set("maxmemory", 0)
    client.flushall()
    client.close()
