"""Helpers for the console's tests: a console over a real Redis, and dead letters made the engine's way."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
import uvicorn
from starlette.applications import Starlette
from starlette.testclient import TestClient

from imunban.apps import AppConfig
from imunban.deployment import open_deployment
from imunban.keys import DEFAULT_APP, Keys
from imunban.settings import LingerPolicy, Secret, Settings
from imunban.store import HELD, Store
from imunban.validation import UnbanRequest
from imunban.web.app import create_app

VIEWER = "viewer-token-0123456789"
OPERATOR = "operator-token-0123456789"
#: Never shown anywhere: the tests look for it in every page.
SECRET_KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
BASE = "http://127.0.0.1:8321"


def console_settings(redis_url: str, *, tokens: bool = True) -> Settings:
    return Settings(
        redis_url=redis_url,
        single_app=AppConfig(DEFAULT_APP, sdkappid=1400000000, secret_key=Secret(SECRET_KEY)),
        linger_ms=0,
        web_viewer_token=Secret(VIEWER) if tokens else None,
        web_operator_token=Secret(OPERATOR) if tokens else None,
    )


def console_app(
    r: redis.Redis, redis_url: str, *, tokens: bool = True, sample: bool = False, **options: Any
) -> Starlette:
    """The console of the test deployment on ``r``, as `imunban web` builds it; ``options`` go to create_app."""
    settings = console_settings(redis_url, tokens=tokens)
    return create_app(open_deployment(settings, client=r), sample=sample, **options)


def console_client(r: redis.Redis, redis_url: str, *, tokens: bool = True, **options: Any) -> TestClient:
    """A TestClient for a console on ``r`` (no background sampler), as if reached at 127.0.0.1:8321."""
    return TestClient(console_app(r, redis_url, tokens=tokens, **options), base_url=BASE, follow_redirects=False)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def make_dead(r: redis.Redis, group: str, members: list[str], code: int = 10004, info: str = "bad member") -> None:
    """Dead letters the way delivery makes them: enqueue, claim under a lease, ack as ``dead``."""
    store = Store(r, Keys(), linger=LingerPolicy(0))
    store.enqueue([UnbanRequest(group, tuple(members))])
    while True:
        batch = store.claim(group)
        if batch is None or batch is HELD:
            break
        assert not isinstance(batch, type(HELD))
        store.ack(batch, "dead", code=code, info=info)


def sign_in(client: TestClient, token: str) -> str:
    """Sign in through /login; returns the session's CSRF token (read from the page it leads to)."""
    response = client.post("/login", data={"token": token, "next": "/"}, headers={"origin": BASE})
    assert response.status_code == 303, response.text
    return csrf_from_headers(client.get("/holds").text)


def csrf_from_headers(page: str) -> str:
    """The token in the body's hx-headers attribute (pages without a form)."""
    marker = "X-CSRF-Token&#34;: &#34;"
    if marker in page:
        return page.split(marker, 1)[1].split("&#34;", 1)[0]
    marker = '"X-CSRF-Token": "'
    return page.split(marker, 1)[1].split('"', 1)[0]


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port, as `imunban web` serves it; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class AsgiGet:
    """One GET through an ASGI app in the test's own event loop, recording the response as it arrives.

    For live streams: many run at once in one loop (no sockets, no threads), and the test decides
    when a client goes away (:meth:`leave`).
    """

    def __init__(self, app: Starlette, target: str, headers: dict[str, str], client: str = "127.0.0.1") -> None:
        path, _, query = target.partition("?")
        self.scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
            "root_path": "", "client": (client, 50000), "server": ("127.0.0.1", 8321),
            "headers": [(k.encode(), v.encode()) for k, v in {"host": "127.0.0.1:8321", **headers}.items()],
        }  # fmt: skip
        self.app = app
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.body = b""
        self._asked = False
        self._gone = asyncio.Event()

    async def run(self) -> None:
        await self.app(self.scope, self._receive, self._send)

    def leave(self) -> None:
        """The client goes away (the server hears ``http.disconnect``)."""
        self._gone.set()

    @property
    def events(self) -> list[tuple[str, Any]]:
        """The server-sent events received so far, as (name, decoded data)."""
        found = []
        for block in self.body.decode().split("\n\n"):
            if block.startswith("event: "):
                name, _, data = block.partition("\ndata: ")
                found.append((name[len("event: ") :], json.loads(data)))
        return found

    async def _receive(self) -> dict[str, Any]:
        if not self._asked:
            self._asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")
            if not message.get("more_body", False):
                self._gone.set()


async def until(condition: Callable[[], bool], what: str = "the condition") -> None:
    """Let the event loop run until ``condition()`` holds (fails after 10 s: a hang, not a timing check)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never reached: {what}")


class Ticks:
    """The clock of the console's stream readers in a test: a reader's sleep ends when the test calls :meth:`tick`."""

    def __init__(self) -> None:
        self._go: asyncio.Event | None = None

    async def sleep(self, _seconds: float) -> None:
        if self._go is None:
            self._go = asyncio.Event()
        await self._go.wait()
        self._go.clear()

    def tick(self) -> None:
        if self._go is None:
            self._go = asyncio.Event()
        self._go.set()
