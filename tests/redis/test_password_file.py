"""A client connects with the password of IMUNBAN_REDIS_PASSWORD_FILE, read when it connects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imunban.connection import connect
from imunban.local.redis_server import RedisServer
from imunban.settings import Settings


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server that requires a password."""
    server = RedisServer(tmp_path_factory.mktemp("locked"), appendonly=False, password="f1lepassw0rd")
    server.start()
    yield server
    server.stop()


def test_the_password_comes_from_the_file(locked_server: RedisServer, tmp_path: Path) -> None:
    """A URL without a password plus IMUNBAN_REDIS_PASSWORD_FILE reaches a Redis that requires one."""
    secret = tmp_path / "redis_password"
    secret.write_text("f1lepassw0rd\n")
    url = f"redis://127.0.0.1:{locked_server.port}/0"
    client = connect(Settings.from_env({"IMUNBAN_REDIS_URL": url, "IMUNBAN_REDIS_PASSWORD_FILE": str(secret)}))
    try:
        assert client.ping() is True
    finally:
        client.close()
