"""The test tiers and the fixtures they share.

Each folder under tests/ is a tier, and a test's tier is its folder, never a decorator:

    unit         no I/O: no connection, no process, no real Redis (fake_redis at most)
    redis        a real redis-server (the session's), for Lua, leases and the server clock
    integration  sockets and files: the simulator over loopback, the CLI in-process, the embedded Redis
    e2e          processes: `imunban worker` clusters, `imunban demo`, clients in other interpreters
    browser      the console in a real browser (Debian's chromium + chromium-driver with Selenium)
    repo         the repository itself: docs, compose file, layering

``pytest -m unit`` (or redis, integration, e2e, repo) selects a tier; ``make test-fast`` runs unit and
redis. Every test gets a timeout from its tier unless it sets its own.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import fakeredis
import pytest
import redis

from imunban.keys import Keys
from imunban.local.redis_server import RedisServer
from imunban.schedule import Scheduler
from imunban.settings import LingerPolicy
from imunban.store import Store

TESTS = Path(__file__).resolve().parent
#: Seconds a test of each tier may take (setup and teardown included) unless it sets its own timeout.
TIER_TIMEOUT_S = {"unit": 30, "redis": 30, "integration": 30, "e2e": 180, "browser": 180, "repo": 30}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its folder's tier and give it that tier's timeout; a test outside a tier is an error."""
    for item in items:
        try:
            tier = item.path.resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue  # a file given on the command line from elsewhere: not ours to sort
        if tier not in TIER_TIMEOUT_S:
            raise pytest.UsageError(f"{item.nodeid}: a test lives in one of tests/{{{','.join(TIER_TIMEOUT_S)}}}/")
        item.add_marker(getattr(pytest.mark, tier))
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TIER_TIMEOUT_S[tier]))


@pytest.fixture(autouse=True)
def _no_imunban_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with no IMUNBAN_* variable: the developer's shell never leaks into a result."""
    for name in [n for n in os.environ if n.startswith("IMUNBAN_")]:
        monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _unit_tests_do_no_io(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the unit tier, opening a connection or starting a process fails the test: it belongs to another tier."""
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError(
            "a unit test opened a connection or started a process; use fake_redis, or move it to "
            "tests/redis, tests/integration or tests/e2e"
        )

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse)


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
def fake_redis() -> Iterator[fakeredis.FakeRedis]:
    """An in-memory Redis of its own for unit tests that read and write plain keys (no Lua, no timing)."""
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def store(r: redis.Redis) -> Store:
    """A store on the real server under the test prefix ``t``, no linger."""
    return Store(r, Keys("t"), linger=LingerPolicy(0))


@pytest.fixture
def sched(r: redis.Redis) -> Scheduler:
    return Scheduler(r, Keys("t"), linger=LingerPolicy(0))
