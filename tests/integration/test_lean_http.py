"""The lean HTTP route over loopback: kept connections, reconnects, timeouts and the pre-send rule.

Against the project simulator (imunban.sim) and, for failures the simulator does not make (a reset
mid-answer, a garbled answer), a one-shot raw socket server.
"""

from __future__ import annotations

import gc
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from imunban.api import UNBAN_PATH, ApiClient
from imunban.apps import AppConfig
from imunban.errors import ConnectError, FailoverError, TransportError
from imunban.lean_http import LeanRoute
from imunban.secret import Secret
from imunban.sim.server import Simulator, SimulatorServer

KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
GROUP = "@TGS#aJRGC4MH6"
BODY = b'{"GroupId":"g","Members_Account":["u1"]}'


def make_app(base_url: str | None = None) -> AppConfig:
    return AppConfig("default", 1400000000, "administrator", Secret(KEY), base_url=base_url)


def make_client(base_url: str | None = None, **options: Any) -> ApiClient:
    return ApiClient(make_app(base_url), connect_timeout_s=1.0, read_timeout_s=2.0, **options)


@pytest.fixture
def sim() -> Simulator:
    return Simulator(make_app())


@pytest.fixture
def server(sim: Simulator) -> Iterator[SimulatorServer]:
    with SimulatorServer(sim) as srv:
        yield srv


def route_to(url: str, *, read_timeout_s: float = 2.0) -> LeanRoute:
    return LeanRoute(url, UNBAN_PATH, connect_timeout_s=1.0, read_timeout_s=read_timeout_s)


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket], None]], str]]:
    """Start a loopback server whose every accepted connection is handed to ``handle``; returns its URL."""
    listeners: list[socket.socket] = []

    def start(handle: Callable[[socket.socket], None]) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def serve() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    handle(conn)

        threading.Thread(target=serve, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    yield start
    for listener in listeners:
        listener.close()


def _reset(conn: socket.socket) -> None:
    """Read the request, then reset the connection (RST, not FIN)."""
    conn.recv(65536)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_one_connection_per_thread_is_kept(server: SimulatorServer, sim: Simulator) -> None:
    """Calls of one thread reuse one connection; another thread gets its own."""
    with make_client(server.url) as api:
        api.unban(GROUP, ["u1"])
        route = api._routes[0]
        assert isinstance(route, LeanRoute)
        first = route._local.conn
        api.unban(GROUP, ["u2"])
        assert route._local.conn is first and first.sock is not None
        other: list[object] = []

        def call_from_another_thread() -> None:
            api.unban(GROUP, ["u3"])
            other.append(route._local.conn)

        thread = threading.Thread(target=call_from_another_thread)
        thread.start()
        thread.join()
        assert other[0] is not first and len(route._all) == 2
    assert sim.unbanned(GROUP) == {"u1", "u2", "u3"}
    assert first.sock is None  # close() closed every thread's connection


def test_connection_closed_by_the_server_while_idle_reconnects(server: SimulatorServer, sim: Simulator) -> None:
    """A kept connection the server shut while idle is noticed before sending: the call goes on a new one."""
    with make_client(server.url) as api:
        api.unban(GROUP, ["u1"])
        route = api._routes[0]
        assert isinstance(route, LeanRoute)
        first = route._local.conn
        assert server._httpd is not None
        server._httpd.close_connections()
        api.unban(GROUP, ["u2"])
        assert route._local.conn is not first
    assert sim.unbanned(GROUP) == {"u1", "u2"}


def test_reset_after_sending_is_a_transport_error_then_reconnects(
    raw_server: Callable[[Callable[[socket.socket], None]], str],
) -> None:
    """A reset after the request went out is a plain TransportError (no failover); the next call connects afresh."""
    route = route_to(raw_server(_reset))
    with pytest.raises(TransportError) as info:
        route.post("?x=1", BODY)
    assert type(info.value) is TransportError and info.value.info.startswith("connection error")
    assert getattr(route._local, "conn", None) is None and not route._all
    with pytest.raises(TransportError):  # a second call makes a new connection (the server resets it too)
        route.post("?x=1", BODY)


def test_garbled_answer_is_a_transport_error(raw_server: Callable[[Callable[[socket.socket], None]], str]) -> None:
    """An answer that is not HTTP is a TransportError and the connection is dropped."""

    def garble(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")

    route = route_to(raw_server(garble))
    with pytest.raises(TransportError) as info:
        route.post("?x=1", BODY)
    assert type(info.value) is TransportError
    assert not route._all


def test_connection_close_answer_drops_the_connection(
    raw_server: Callable[[Callable[[socket.socket], None]], str],
) -> None:
    """An answer with Connection: close is returned, and the next call opens a new connection."""
    accepted: list[int] = []

    def answer_and_close(conn: socket.socket) -> None:
        accepted.append(1)
        conn.recv(65536)
        body = b'{"ErrorCode":0}'
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    route = route_to(raw_server(answer_and_close))
    for _ in range(2):
        response = route.post("?x=1", BODY)
        assert (response.status, response.data) == (200, b'{"ErrorCode":0}')
    assert len(accepted) == 2 and not route._all


def test_read_timeout_is_a_timeout_and_drops_the_connection(server: SimulatorServer, sim: Simulator) -> None:
    """No answer within the read timeout: TransportError('timeout'); the next call is on a new connection."""
    sim.configure(hang_rate=1.0, hang_s=1.0)
    route = route_to(server.url, read_timeout_s=0.3)
    with pytest.raises(TransportError) as info:
        route.post("?x=1", BODY)
    assert (type(info.value), info.value.info) == (TransportError, "timeout")
    assert not route._all
    route.close()


def test_connect_refused_is_a_connect_error_and_fails_over(server: SimulatorServer, sim: Simulator) -> None:
    """A refused connect is a ConnectError (nothing sent): the client fails over, the backup serves the next call."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))  # bound, not listening: a connect is refused
        dead = f"http://127.0.0.1:{bound.getsockname()[1]}"
        with pytest.raises(ConnectError) as info:
            route_to(dead).post("?x=1", BODY)
        assert info.value.info == "connect failed (ConnectionRefusedError)"
        with make_client(base_urls=[dead, server.url]) as api:
            with pytest.raises(FailoverError):
                api.unban(GROUP, ["u1"])
            api.unban(GROUP, ["u1"])
    assert sim.unbanned(GROUP) == {"u1"}


def test_dns_failure_is_a_connect_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host name that does not resolve is a ConnectError (resolution stubbed: no traffic off loopback)."""

    def no_such_host(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    with pytest.raises(ConnectError) as info:
        route_to("http://imunban-test.invalid:8080").post("?x=1", BODY)
    assert info.value.info == "connect failed (gaierror)"


def test_base_url_path_is_kept(server: SimulatorServer) -> None:
    """A base URL with a path prefix posts under it; a bad scheme is refused at construction."""
    route = route_to(server.url + "/prefix/")
    assert route.path == "/prefix" + UNBAN_PATH
    with pytest.raises(ValueError, match="scheme"):
        route_to("ftp://127.0.0.1:1")


def test_client_uses_lean_route_without_proxy(server: SimulatorServer) -> None:
    """With no proxy in the environment, ApiClient posts through a LeanRoute."""
    api = ApiClient(make_app(server.url))
    with api:
        assert all(isinstance(r, LeanRoute) for r in api._routes)


def test_a_route_dropped_without_close_closes_its_sockets(server: SimulatorServer) -> None:
    """Garbage-collecting a route closes its kept connections (no socket left open, no ResourceWarning)."""
    route = route_to(server.url)
    route.post("?x=1", BODY)
    (conn,) = route._all
    del route
    gc.collect()
    assert conn.sock is None
