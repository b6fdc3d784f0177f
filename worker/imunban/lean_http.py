"""The unban POST on a persistent ``http.client`` connection per thread (no proxy in the way).

urllib3's pool costs about twice the CPU of ``http.client`` for this one POST (issue 20: 1.00 against
0.53 ms per call at one worker's rate): per call it builds a response object, a header dict, a
timeout object, re-encodes the URL and checks the pool out and in. A delivery thread makes the same
POST to the same host over and over, so each thread keeps its own connection to each base URL and
reuses it while the server keeps it open.

Failures are classified as ApiClient classified urllib3's: a failure before the request was sent
(DNS, TCP connect, connect timeout, a certificate refused in the handshake) is a ConnectError, the
one kind that may fail over; anything later (a reset, a read timeout, a malformed answer) is a
TransportError, and the connection is dropped so the next call connects afresh. Certificates are
verified against the CA bundle requests would use; no redirect is followed; nothing is retried.
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
import threading
import weakref
from dataclasses import dataclass
from urllib.parse import urlsplit

from imunban.errors import ConnectError, TransportError

__all__ = ["HEADERS", "LeanRoute", "Response", "tls_context"]

#: The POST's headers (http.client adds Host, Content-Length and Accept-Encoding: identity).
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


@dataclass(frozen=True)
class Response:
    """What the API answered: status, reason and the whole body."""

    status: int
    reason: str
    data: bytes


def tls_context(bundle: str | None) -> ssl.SSLContext:
    """Certificates and host names verified against ``bundle`` (a CA file or folder; None: the system's)."""
    if bundle is None:
        return ssl.create_default_context()
    if os.path.isdir(bundle):
        return ssl.create_default_context(capath=bundle)
    return ssl.create_default_context(cafile=bundle)


def _dropped(sock: socket.socket) -> bool:
    """True if a kept-alive socket is readable while idle: the server closed it (or sent garbage)."""
    try:
        poller = select.poll()  # not select(): a worker may hold descriptors above FD_SETSIZE
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def _close_all(conns: set[http.client.HTTPConnection], lock: threading.Lock) -> None:
    """Close and forget every connection in ``conns`` (the set is emptied in place)."""
    with lock:
        todo = list(conns)
        conns.clear()
    for conn in todo:
        conn.close()


class LeanRoute:
    """POSTs to one base URL, one persistent connection per calling thread; thread-safe."""

    def __init__(
        self,
        base_url: str,
        path: str,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        ca_bundle: str | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base URL must be http(s)://host[:port][/path], got scheme {parts.scheme!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        #: Where the POST goes: the base URL's own path, then ``path``; a call's target (its query) follows.
        self.path = parts.path.rstrip("/") + path
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        #: The CA certificates https connections verify against (None: the system's); loaded on first connect.
        self.ca_bundle = ca_bundle
        self._context: ssl.SSLContext | None = None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: set[http.client.HTTPConnection] = set()  # every thread's connection, for close()
        # A route dropped without close() still closes its sockets (as urllib3's pools do when collected).
        weakref.finalize(self, _close_all, self._all, self._lock)

    def __repr__(self) -> str:
        return f"LeanRoute({'https' if self.https else 'http'}://{self.host}:{self.port}{self.path})"

    def post(self, target: str, body: bytes) -> Response:
        """POST ``body`` to the path + ``target`` ("?query"); ConnectError before sending, else TransportError."""
        conn = self._connection()
        try:
            conn.request("POST", self.path + target, body=body, headers=HEADERS)
            response = conn.getresponse()
            data = response.read()
        except TimeoutError as exc:
            self._drop(conn)
            raise TransportError(0, "timeout") from exc
        except (OSError, http.client.HTTPException) as exc:
            self._drop(conn)
            raise TransportError(0, f"connection error ({type(exc).__name__})") from exc
        if response.will_close:
            self._drop(conn)  # the server said Connection: close; the next call connects afresh
        return Response(response.status, response.reason or "", data)

    def close(self) -> None:
        """Close every thread's connection (a thread's next call connects again)."""
        _close_all(self._all, self._lock)

    def _connection(self) -> http.client.HTTPConnection:
        """This thread's open connection: the kept one if the server has not closed it, else a new one."""
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None and not _dropped(conn.sock):
            return conn
        if conn is not None:
            self._drop(conn)
        try:
            conn = self._new()
        except (OSError, ValueError) as exc:  # an unreadable CA bundle (ssl.SSLError is an OSError)
            raise TransportError(0, f"TLS setup failed ({type(exc).__name__})") from exc
        try:
            conn.connect()
        except ssl.SSLCertVerificationError as exc:
            self._drop(conn)
            raise ConnectError(0, f"connect failed ({type(exc).__name__})") from exc
        except ssl.SSLError as exc:
            # As with urllib3, a refused certificate is the one TLS failure that counts as "not sent".
            self._drop(conn)
            raise TransportError(0, f"connection error ({type(exc).__name__})") from exc
        except TimeoutError as exc:
            self._drop(conn)
            raise ConnectError(0, "connect timeout") from exc
        except OSError as exc:  # DNS (gaierror), refused, unreachable
            self._drop(conn)
            raise ConnectError(0, f"connect failed ({type(exc).__name__})") from exc
        assert conn.sock is not None
        conn.sock.settimeout(self._read_timeout_s)  # connect had its own; each read now waits this long
        return conn

    def tls_context(self) -> ssl.SSLContext:
        """The context https connections use: certificates and host names verified; made once."""
        with self._lock:
            if self._context is None:
                self._context = tls_context(self.ca_bundle)
            return self._context

    def _new(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self.https:
            conn = http.client.HTTPSConnection(
                self.host, self.port, timeout=self._connect_timeout_s, context=self.tls_context()
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self._connect_timeout_s)
        self._local.conn = conn
        with self._lock:
            self._all.add(conn)
        return conn

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        self._local.conn = None
        with self._lock:
            self._all.discard(conn)
