"""Which transport failures may fail over to the backup domain: only those before the request was sent.

The exception chains are built the way requests and urllib3 build them (requests error -> MaxRetryError
-> reason -> the socket/ssl error), so no network is needed. ApiClient posts through urllib3 itself,
which raises the inner part of those chains (MaxRetryError, or a read error as it is): both are classified.
"""

from __future__ import annotations

import socket
import ssl

import pytest
import requests
from urllib3.connection import HTTPConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.exceptions import ProxyError as Urllib3ProxyError
from urllib3.exceptions import SSLError as Urllib3SSLError

from imunban.api import ApiClient, _is_connect_failure
from imunban.errors import ConnectError, TransportError

URL = "https://console.tim.qq.com/v4/group_open_http_svc/unban_group_member"
CONN = HTTPConnection("console.tim.qq.com", 443)


def wrapped(cls: type[requests.ConnectionError], reason: BaseException) -> requests.ConnectionError:
    """``cls`` as requests raises it: around urllib3's MaxRetryError whose ``reason`` is the failure."""
    inner = MaxRetryError(None, URL, reason)  # type: ignore[arg-type]
    outer = cls(inner)
    outer.__cause__ = inner
    return outer


def ssl_error(cause: ssl.SSLError) -> Urllib3SSLError:
    err = Urllib3SSLError(cause)
    err.__cause__ = cause
    return err


PRE_SEND = {
    "dns": wrapped(
        requests.ConnectionError,
        NameResolutionError("console.tim.qq.com", CONN, socket.gaierror(-2, "Name or service not known")),
    ),
    "refused": wrapped(requests.ConnectionError, NewConnectionError(CONN, "Connection refused")),
    "certificate": wrapped(
        requests.exceptions.SSLError, ssl_error(ssl.SSLCertVerificationError(1, "certificate verify failed"))
    ),
    "proxy unreachable": wrapped(
        requests.exceptions.ProxyError,
        Urllib3ProxyError("Unable to connect to proxy", NewConnectionError(CONN, "Connection refused")),
    ),
}

AFTER_SEND = {
    "ssl eof while reading": wrapped(
        requests.exceptions.SSLError, ssl_error(ssl.SSLEOFError(8, "EOF occurred in violation of protocol"))
    ),
    "proxy error after sending": wrapped(
        requests.exceptions.ProxyError,
        Urllib3ProxyError("Unable to connect to proxy", OSError("Tunnel connection failed: 502 Bad Gateway")),
    ),
    "reset": requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))),
    "bare ssl error": requests.exceptions.SSLError("something went wrong"),
}


@pytest.mark.parametrize("exc", PRE_SEND.values(), ids=PRE_SEND.keys())
def test_failures_before_sending_may_fail_over(exc: requests.ConnectionError) -> None:
    """DNS, TCP connect, a certificate refused in the handshake, or no connection to the proxy: nothing was sent."""
    assert _is_connect_failure(exc)
    assert isinstance(ApiClient._transport_error(exc), ConnectError)


@pytest.mark.parametrize("exc", AFTER_SEND.values(), ids=AFTER_SEND.keys())
def test_failures_that_may_follow_sending_are_plain_transport_errors(exc: requests.ConnectionError) -> None:
    """An SSL or proxy error that may come after the request went out is retried normally, never failed over."""
    assert not _is_connect_failure(exc)
    error = ApiClient._transport_error(exc)
    assert isinstance(error, TransportError) and not isinstance(error, ConnectError)


def test_a_cycle_in_the_chain_ends_the_walk() -> None:
    """__context__ pointing back up the chain does not loop forever."""
    exc = requests.exceptions.SSLError("outer")
    inner = ValueError("inner")
    exc.__context__ = inner
    inner.__context__ = exc
    assert not _is_connect_failure(exc)


def retried(reason: BaseException) -> MaxRetryError:
    """What urllib3 raises with retries of total 0 for a connect or other error: MaxRetryError(reason)."""
    err = MaxRetryError(None, URL, reason)  # type: ignore[arg-type]
    err.__context__ = reason
    return err


URLLIB3_PRE_SEND = {
    "dns": retried(NameResolutionError("console.tim.qq.com", CONN, socket.gaierror(-2, "Name or service not known"))),
    "refused": retried(NewConnectionError(CONN, "Connection refused")),
    "certificate": retried(ssl_error(ssl.SSLCertVerificationError(1, "certificate verify failed"))),
    "proxy unreachable": retried(
        Urllib3ProxyError("Unable to connect to proxy", NewConnectionError(CONN, "Connection refused"))
    ),
    "connect timeout": retried(ConnectTimeoutError(CONN, "Connection to console.tim.qq.com timed out")),
}

URLLIB3_AFTER_SEND = {
    "ssl eof while reading": retried(ssl_error(ssl.SSLEOFError(8, "EOF occurred in violation of protocol"))),
    "proxy error after sending": retried(
        Urllib3ProxyError("Unable to connect to proxy", OSError("Tunnel connection failed: 502 Bad Gateway"))
    ),
    # Read errors are not retried (read=False): urllib3 raises them as they are.
    "reset": ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
    "read timeout": ReadTimeoutError(None, URL, "Read timed out. (read timeout=2.0)"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("exc", URLLIB3_PRE_SEND.values(), ids=URLLIB3_PRE_SEND.keys())
def test_urllib3_failures_before_sending_may_fail_over(exc: HTTPError) -> None:
    """The same rule for urllib3's own exceptions (what ApiClient sees): nothing was sent, the backup may help."""
    assert isinstance(ApiClient._transport_error(exc), ConnectError)


@pytest.mark.parametrize("exc", URLLIB3_AFTER_SEND.values(), ids=URLLIB3_AFTER_SEND.keys())
def test_urllib3_failures_that_may_follow_sending_are_plain_transport_errors(exc: HTTPError) -> None:
    error = ApiClient._transport_error(exc)
    assert isinstance(error, TransportError) and not isinstance(error, ConnectError)


def test_urllib3_read_timeout_is_a_timeout() -> None:
    """A read timeout says so (and is retried normally); a refused connect is not a timeout."""
    assert ApiClient._transport_error(URLLIB3_AFTER_SEND["read timeout"]).info == "timeout"
    assert ApiClient._transport_error(URLLIB3_PRE_SEND["refused"]).info != "timeout"
    assert ApiClient._transport_error(URLLIB3_PRE_SEND["connect timeout"]).info == "connect timeout"
