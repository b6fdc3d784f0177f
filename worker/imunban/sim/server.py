"""A local fake of the unban_group_member API, served over HTTP on the loopback interface.

Use it in-process (tests) or as ``imunban simulate`` (demo, benchmark)::

    sim = Simulator(settings.single_app, SimConfig(latency_ms=30))
    with SimulatorServer(sim) as server:      # port 0 = any free port
        ApiClient(settings, base_urls=[server.url]).unban("@TGS#a1", ["u1"])
        sim.configure(hang_rate=0.1)          # or POST {server.url}/_admin/config
        print(sim.snapshot())                 # or GET {server.url}/_stats

The request checks, faults and counters live in :mod:`imunban.sim.core`; this module is only
the HTTP/1.1 keep-alive transport, so that requests' connection pooling behaves as in production.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Protocol

from imunban.sim.core import AV_CHAT_ROOM, SimConfig, SimResponse, Simulator

__all__ = ["AV_CHAT_ROOM", "SimConfig", "SimResponse", "Simulator", "SimulatorServer"]

log = logging.getLogger(__name__)


class Endpoint(Protocol):
    """What the server serves: a :class:`Simulator`, or a :class:`~imunban.sim.multi.MultiSimulator` of several apps."""

    def handle(self, method: str, target: str, body: bytes) -> SimResponse: ...


#: A real unban body is under 1 KB; refuse anything absurd instead of buffering it.
_MAX_BODY_BYTES = 1 << 20


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's pool reuses connections
    disable_nagle_algorithm = True  # small responses must not wait for delayed ACKs
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        if self.headers.get("Transfer-Encoding"):
            self._send(SimResponse(411, b"chunked bodies are not supported", "text/plain"), close=True)
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY_BYTES:
            self._send(SimResponse(413, b"bad Content-Length", "text/plain"), close=True)
            return
        body = self.rfile.read(length) if length else b""
        response = self.server.simulator.handle(method, self.path, body)
        # Event.wait instead of sleep: stop() wakes every delayed answer at once.
        if response.delay_s > 0 and self.server.stopping.wait(response.delay_s):
            self.close_connection = True
            return
        self._send(response)

    def _send(self, response: SimResponse, *, close: bool = False) -> None:
        reason = http.client.responses.get(response.status, "")
        head = (
            f"HTTP/1.1 {response.status} {reason}\r\n"
            f"Content-Type: {response.content_type}\r\n"
            f"Content-Length: {len(response.body)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n"
        )
        # One write: headers and body in a single segment.
        self.wfile.write(head.encode("latin-1") + response.body)
        if close:
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request stderr line (it would dominate the cost of a call)."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # listen backlog: a burst of new connections must not be refused
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: Endpoint) -> None:
        self.simulator = simulator
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup; we stay on loopback.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_connections(self) -> None:
        """Shut idle keep-alive connections so their handler threads end now, not at exit."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients hanging up (timeouts, shutdown) are normal here; do not print tracebacks.
        log.debug("simulator: error while handling a request from %s", client_address, exc_info=True)


class SimulatorServer:
    """Serves a :class:`Simulator` on ``host:port`` from a background thread."""

    def __init__(self, simulator: Endpoint, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self._address = (host, port)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SimulatorServer:
        if self._httpd is not None:
            raise RuntimeError("simulator server already started")
        self._httpd = _HTTPServer(self._address, self.simulator)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="imunban-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("simulator server not started")
        return self._httpd.server_port

    @property
    def url(self) -> str:
        host = self._address[0]
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start() if self._httpd is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
