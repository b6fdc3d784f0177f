"""Signing out revokes the session on the server: a copied cookie stops working, in this console and in another."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import redis
from starlette.applications import Starlette
from starlette.testclient import TestClient

from imunban.deployment import open_deployment
from imunban.keys import Keys
from imunban.web.app import create_app
from imunban.web.auth import COOKIE, SESSION_S, Authority
from imunban.web.streams import StreamHub
from web_helpers import BASE, OPERATOR, AsgiGet, Ticks, console_settings, csrf_from_headers, until

KEY = b"k" * 32  # one signing key for two consoles: a deployment that shares it across replicas


def _console(r: redis.Redis, redis_url: str, **options: Any) -> TestClient:
    settings = console_settings(redis_url)
    authority = Authority(settings.web_viewer_token, settings.web_operator_token, key=KEY)
    app = create_app(open_deployment(settings, client=r), authority, sample=False, **options)
    return TestClient(app, base_url=BASE, follow_redirects=False)


def test_the_record_is_a_deployment_key() -> None:
    """Built in keys.py under the deployment's tag: the same key whichever app's Keys builds it."""
    assert Keys("p1", "cn").web_revoked("s1") == Keys("p1", "intl").web_revoked("s1") == "{p1}:web:revoked:s1"


def _session_id(cookie: str) -> str:
    body = cookie.rpartition(".")[0]
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    session_id: str = payload["i"]
    return session_id


def _sign_in(client: TestClient) -> tuple[str, str]:
    """(cookie, CSRF token) of a fresh operator session."""
    response = client.post("/login", data={"token": OPERATOR}, headers={"origin": BASE})
    assert response.status_code == 303
    return response.cookies[COOKIE], csrf_from_headers(client.get("/holds").text)


def test_a_copied_cookie_stops_working_after_sign_out(r: redis.Redis, redis_url: str) -> None:
    """After "Sign out" the same cookie, sent by anyone to this console or another sharing the key, is refused."""
    browser, thief, other_console = _console(r, redis_url), _console(r, redis_url), _console(r, redis_url)
    cookie, csrf = _sign_in(browser)
    thief.cookies.set(COOKIE, cookie)
    other_console.cookies.set(COOKIE, cookie)
    assert thief.get("/api/status").status_code == 200 and other_console.get("/api/status").status_code == 200
    out = browser.post("/logout", data={"csrf_token": csrf}, headers={"origin": BASE})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert thief.get("/api/status").status_code == 401
    assert thief.get("/dead").status_code == 303  # to /login
    assert thief.post("/api/probe", json={}, headers={"x-csrf-token": csrf, "origin": BASE}).status_code == 401
    assert other_console.get("/api/status").status_code == 401  # the record is in Redis, not only in memory
    record = f"{{imunban}}:web:revoked:{_session_id(cookie)}"
    assert r.exists(record) and SESSION_S - 60 < r.ttl(record) <= SESSION_S
    again, _ = _sign_in(browser)  # signing in again makes a new session
    assert again != cookie and browser.get("/api/status").status_code == 200


def test_sign_out_holds_when_redis_refuses_the_record(r: redis.Redis, redis_url: str) -> None:
    """If Redis refuses the record (full), the console that signed out still refuses the cookie."""
    client = _console(r, redis_url)
    cookie, csrf = _sign_in(client)
    r.config_set("maxmemory", "1")
    try:
        assert client.post("/logout", data={"csrf_token": csrf}, headers={"origin": BASE}).status_code == 303
    finally:
        r.config_set("maxmemory", "0")
    assert not r.keys("{imunban}:web:revoked:*")
    client.cookies.set(COOKIE, cookie)
    assert client.get("/api/status").status_code == 401


def test_an_open_stream_of_a_signed_out_session_ends(r: redis.Redis, redis_url: str) -> None:
    """A live stream opened with the cookie ends at its next event once the session signed out."""
    ticks = Ticks()
    client = _console(r, redis_url, streams=StreamHub(sleep=ticks.sleep))
    cookie, csrf = _sign_in(client)
    app: Starlette = client.app  # type: ignore[assignment]

    async def main() -> None:
        stream = AsgiGet(app, "/events/overview", {"cookie": f"{COOKIE}={cookie}"})
        task = asyncio.create_task(stream.run())
        await until(lambda: len(stream.events) == 1, "the first document")
        out = await asyncio.to_thread(client.post, "/logout", data={"csrf_token": csrf}, headers={"origin": BASE})
        assert out.status_code == 303
        ticks.tick()
        await task
        assert len(stream.events) == 1

    asyncio.run(main())
