"""Shared fixtures: a real redis-server per session, a clean database per test, fakeredis for unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest
import redis

from imunban.keys import Keys
from imunban.local.redis_server import RedisServer
from imunban.schedule import Scheduler
from imunban.store import Store


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, stopped at the end of the session."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of the session server, flushed before and after each test."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    yield redis_server.url
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the real server with a clean database."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    """An in-memory fake for fast unit tests that need no Lua or server semantics."""
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def tmp_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def store(r: redis.Redis) -> Store:
    """A store on the real server under the test prefix ``t``, no linger."""
    return Store(r, Keys("t"), linger_ms=0)


@pytest.fixture
def sched(r: redis.Redis) -> Scheduler:
    return Scheduler(r, Keys("t"), linger_ms=0)
