"""The console refuses a request body over 1 MB without buffering it: on Content-Length, and while streaming."""

from __future__ import annotations

import socket
from typing import Any

import anyio
import pytest
import redis
from starlette.applications import Starlette

from imunban.web.common import MAX_BODY
from web_helpers import BASE, OPERATOR, console_app, console_client, serving

CHUNK = 64 * 1024


class CountingBody:
    """A request body (8 MB) served as ASGI ``http.request`` messages, counting the bytes the app pulled."""

    def __init__(self, total: int = 8 * MAX_BODY, chunk: int = CHUNK) -> None:
        self.chunk = b"t" * chunk
        self.left = total
        self.bytes_read = 0

    async def receive(self) -> dict[str, Any]:
        if self.left <= 0:
            return {"type": "http.disconnect"}
        self.left -= len(self.chunk)
        self.bytes_read += len(self.chunk)
        return {"type": "http.request", "body": self.chunk, "more_body": self.left > 0}


def call(app: Starlette, path: str, headers: dict[str, str], body: CountingBody) -> tuple[int, bytes]:
    """Run one POST through the ASGI app in-process; (status, response body)."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(k.encode(), v.encode()) for k, v in {"host": "127.0.0.1:8321", **headers}.items()],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8321),
    }  # fmt: skip

    async def run() -> None:
        await app(scope, body.receive, send)

    anyio.run(run)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


@pytest.fixture
def app(r: redis.Redis, redis_url: str) -> Starlette:
    return console_app(r, redis_url)


def test_declared_large_body_is_refused_before_reading(app: Starlette) -> None:
    """A 300 MB Content-Length on POST /login (no credentials) is 413 with a clear message, nothing read."""
    body = CountingBody()
    headers = {"content-length": str(300_000_000), "content-type": "application/x-www-form-urlencoded", "origin": BASE}
    status, text = call(app, "/login", headers, body)
    assert status == 413 and b"1 MB" in text
    assert body.bytes_read == 0


def test_chunked_body_is_cut_off_at_the_limit(app: Starlette) -> None:
    """An 8 MB chunked body (no Content-Length) is read only up to the 1 MB limit, then refused with 413."""
    body = CountingBody()
    status, text = call(app, "/login", {"content-type": "application/x-www-form-urlencoded", "origin": BASE}, body)
    assert status == 413 and b"1 MB" in text
    assert body.bytes_read <= MAX_BODY + CHUNK


def test_json_api_body_is_cut_off_too(app: Starlette) -> None:
    """The JSON API reads its body the same bounded way (an operator's 8 MB body is refused, not buffered)."""
    body = CountingBody()
    headers = {"content-type": "application/json", "authorization": f"Bearer {OPERATOR}"}
    status, text = call(app, "/api/probe", headers, body)
    assert status == 413 and b'"error"' in text
    assert body.bytes_read <= MAX_BODY + CHUNK


def test_bodies_under_the_limit_still_work(r: redis.Redis, redis_url: str) -> None:
    """A sign-in form and a JSON action just under the limit are read as before."""
    client = console_client(r, redis_url)
    padding = "x" * (MAX_BODY - 200)
    response = client.post("/login", data={"token": OPERATOR, "next": "/", "pad": padding}, headers={"origin": BASE})
    assert response.status_code == 303
    answer = client.post("/api/probe", json={"pad": padding}, headers={"authorization": f"Bearer {OPERATOR}"})
    assert answer.json()["probe"] == 0


def test_over_a_socket_the_connection_is_closed_after_the_413(r: redis.Redis, redis_url: str) -> None:
    """Under uvicorn a 300 MB upload gets 413 and the server closes the connection: the client cannot keep sending."""
    with serving(console_app(r, redis_url)) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            head = (
                f"POST /login HTTP/1.1\r\nHost: {host}:{port}\r\nOrigin: {base}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 300000000\r\n\r\n"
            )
            sock.sendall(head.encode() + b"t" * CHUNK)
            answer = b""
            while chunk := sock.recv(65536):  # b"": the server closed the connection
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 ") and b"connection: close" in answer.lower()
