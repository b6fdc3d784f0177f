"""Signing in cannot be brute-forced: failed token checks throttled per address and in all, weak tokens warned about."""

from __future__ import annotations

import logging

import pytest
import redis
from starlette.applications import Starlette
from starlette.testclient import TestClient

from imunban.web import pages
from imunban.web.auth import COOKIE
from imunban.web.throttle import Throttle
from web_helpers import BASE, OPERATOR, VIEWER, bearer, console_app

ORIGIN = {"origin": BASE}


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture(autouse=True)
def _no_sign_in_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "FAILED_SIGN_IN_DELAY_S", 0)


def _client(app: Starlette, address: str) -> TestClient:
    return TestClient(app, base_url=BASE, follow_redirects=False, client=(address, 50000))


def test_login_guesses_are_throttled_per_address(r: redis.Redis, redis_url: str) -> None:
    """After 5 wrong tokens from one address its sign-ins are 429 with Retry-After (even the right token) for a
    minute; another address signs in; a session already signed in keeps working."""
    clock = Clock()
    app = console_app(r, redis_url, throttle=Throttle(clock=clock))
    guesser, other = _client(app, "192.0.2.10"), _client(app, "192.0.2.11")
    signed_in = _client(app, "192.0.2.10")
    assert signed_in.post("/login", data={"token": VIEWER}, headers=ORIGIN).status_code == 303
    for _ in range(5):
        assert guesser.post("/login", data={"token": "wrong-token-wrong-token"}, headers=ORIGIN).status_code == 401
    blocked = guesser.post("/login", data={"token": OPERATOR}, headers=ORIGIN)
    assert blocked.status_code == 429 and blocked.headers["retry-after"] == "60"
    assert "Too many failed sign-ins" in blocked.text and COOKIE not in blocked.cookies
    assert other.post("/login", data={"token": OPERATOR}, headers=ORIGIN).status_code == 303
    assert signed_in.get("/api/status").status_code == 200
    clock.now_s = 60.0
    assert guesser.post("/login", data={"token": OPERATOR}, headers=ORIGIN).status_code == 303


def test_bearer_guesses_are_throttled_too(r: redis.Redis, redis_url: str) -> None:
    """Wrong bearer tokens count like wrong sign-ins: the 6th request from that address is 429, the right token too."""
    app = console_app(r, redis_url)
    guesser = _client(app, "192.0.2.20")
    for _ in range(5):
        assert guesser.get("/api/status", headers=bearer("x" * 24)).status_code == 401
    blocked = guesser.get("/api/status", headers=bearer(VIEWER))
    assert blocked.status_code == 429 and blocked.headers["retry-after"] == "60"
    assert "too many failed sign-ins" in blocked.json()["error"]
    assert _client(app, "192.0.2.21").get("/api/status", headers=bearer(VIEWER)).status_code == 200


def test_many_addresses_are_capped_in_all(r: redis.Redis, redis_url: str) -> None:
    """Guesses spread over many addresses meet the console's overall cap."""
    app = console_app(r, redis_url, throttle=Throttle(total=8, clock=Clock()))
    for i in range(8):
        _client(app, f"198.51.100.{i}").get("/api/status", headers=bearer("y" * 24))
    assert _client(app, "198.51.100.200").get("/api/status", headers=bearer(VIEWER)).status_code == 429


def test_weak_tokens_are_warned_about_once_at_start(
    r: redis.Redis, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The test tokens (23 and 25 characters) each get one warning when the console starts, naming the variable."""
    app = console_app(r, redis_url)
    with caplog.at_level(logging.WARNING, logger="imunban.web"), TestClient(app, base_url=BASE) as client:
        client.get("/healthz")
        client.get("/healthz")
    warnings = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[0].startswith("IMUNBAN_WEB_OPERATOR_TOKEN is 25 characters (at least 32 recommended)")
    assert warnings[1].startswith("IMUNBAN_WEB_VIEWER_TOKEN is 23 characters")
    assert OPERATOR not in caplog.text and VIEWER not in caplog.text
