"""Redis unreachable: a styled 503 page naming the Redis (never its password) and what to check, one log line per
kind of failure, /readyz 503 while /healthz stays ok; it recovers by itself."""

from __future__ import annotations

import logging
import socket

import pytest
import redis
from starlette.testclient import TestClient

from web_helpers import BASE, OPERATOR, bearer, console_app

PASSWORD = "hunter2-do-not-show"


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


@pytest.fixture
def down() -> TestClient:
    """A console whose Redis (with a password in its URL) cannot be reached."""
    url = f"redis://:{PASSWORD}@127.0.0.1:{_dead_port()}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5, decode_responses=True)
    return TestClient(console_app(client, url), base_url=BASE, follow_redirects=False)


def test_a_page_says_redis_unreachable_with_its_target_and_what_to_check(down: TestClient) -> None:
    """Every page answers a styled 503 naming host and port, with checks; the password appears nowhere."""
    for path in ("/", "/dead", "/scheduled", "/holds", "/outcomes"):
        page = down.get(path, headers=bearer(OPERATOR))
        assert page.status_code == 503, path
        assert page.headers["content-type"].startswith("text/html")
        assert "Redis unreachable" in page.text and "console.css" in page.text
        assert "127.0.0.1" in page.text and "IMUNBAN_REDIS_URL" in page.text
        assert PASSWORD not in page.text
    api = down.get("/api/status", headers=bearer(OPERATOR))
    assert api.status_code == 503 and api.json()["error"].startswith("Redis unreachable")
    assert PASSWORD not in api.text
    htmx = down.get("/dead", headers={**bearer(OPERATOR), "hx-request": "true"})
    assert htmx.status_code == 503 and htmx.headers["content-type"].startswith("text/plain")


def test_readiness_fails_while_liveness_holds(down: TestClient) -> None:
    """/readyz is 503 without Redis (no sign-in needed, nothing said about the data); /healthz stays 200."""
    ready = down.get("/readyz")
    assert ready.status_code == 503 and PASSWORD not in ready.text
    assert down.get("/healthz").status_code == 200


def test_one_log_line_per_failure_kind_without_traceback(down: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    """Ten failing pages log one WARNING line (no traceback, no password); nothing is logged as an ERROR."""
    with caplog.at_level(logging.DEBUG):
        for _ in range(10):
            assert down.get("/dead", headers=bearer(OPERATOR)).status_code == 503
    lines = [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
    assert len(lines) == 1, [rec.getMessage() for rec in lines]
    assert lines[0].exc_info is None and "redis unreachable" in lines[0].getMessage()
    assert PASSWORD not in caplog.text


def test_the_console_recovers_when_redis_answers(r: redis.Redis, redis_url: str) -> None:
    """The same console, its Redis back: pages and /readyz answer 200 again (no restart)."""
    client = TestClient(console_app(r, redis_url), base_url=BASE, follow_redirects=False)
    assert client.get("/", headers=bearer(OPERATOR)).status_code == 200
    assert client.get("/readyz").text == "ready"
