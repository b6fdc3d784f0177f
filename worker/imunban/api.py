"""The HTTP client for ``v4/group_open_http_svc/unban_group_member``.

One :class:`ApiClient` per worker process, shared by its threads: a kept-alive connection per thread
(the docs ask for it), a cached admin UserSig, and region failover to the backup domain on DNS or
connect failures only. Every failure is raised as a :class:`imunban.errors.ApiError` subclass that
says what to do; the client retries nothing itself (the delivery engine owns retries and rate).

The one POST goes, per thread, over a persistent ``http.client`` connection (:mod:`imunban.lean_http`):
requests' and then urllib3's per-call work (merging the session, the pool's check-out, response and
header objects, re-encoding the URL) cost more CPU than the rest of a delivery. Through a proxy it
goes through urllib3's ProxyManager. What requests read from the environment on every call
(HTTP(S)_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) is read once, when the client is made.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol
from urllib.parse import urlencode

import requests
import urllib3
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_auth_from_url, get_environ_proxies, select_proxy
from urllib3.exceptions import ConnectTimeoutError, HTTPError, MaxRetryError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError
from urllib3.util import make_headers
from urllib3.util.retry import Retry

from imunban.apps import AppConfig
from imunban.classify import classify
from imunban.errors import (
    ApiError,
    ConfigError,
    ConnectError,
    FailoverError,
    RetryableError,
    TransportError,
    ValidationError,
)
from imunban.keys import MAX_MEMBERS
from imunban.lean_http import HEADERS, LeanRoute, Response
from imunban.logredact import scrub_exception
from imunban.settings import CONNECT_TIMEOUT_S, READ_TIMEOUT_S
from imunban.usersig import UserSigCache

__all__ = ["FAILOVER_S", "MAX_MEMBERS", "UNBAN_PATH", "ApiClient", "Route", "Transport"]

#: The unban API's path under the region's base URL.
UNBAN_PATH = "/v4/group_open_http_svc/unban_group_member"

#: After a connect failure on the primary domain, keep using the backup this long before retrying it.
FAILOVER_S = 60.0

#: random is a 32-bit unsigned integer.
_RANDOM_RANGE = 2**32

#: No urllib3 retries: a silent resend would bypass the shared rate limiter and our accounting.
#: (total=0 rather than False: a failure comes wrapped in a MaxRetryError that quotes the URL,
#: which :func:`imunban.logredact.scrub_exception` then redacts.)
_NO_RETRIES = Retry(total=0, connect=0, read=False, redirect=False, status=0)

log = logging.getLogger(__name__)


class Transport(Protocol):
    """What ApiClient posts through: a urllib3 ``PoolManager`` (or ``ProxyManager``), or a test's stub.

    It gets the full URL and the keyword arguments of urllib3's ``urlopen`` (body, headers, timeout,
    retries, redirect, preload_content) and returns the response with its body read.
    """

    def urlopen(self, method: str, url: str, **kw: Any) -> urllib3.BaseHTTPResponse: ...


def _default_rng() -> int:
    return secrets.randbelow(_RANDOM_RANGE)


def _is_connect_failure(exc: BaseException) -> bool:
    """True only for a failure before the request was sent: the one kind that may fail over.

    The backup domain is tried at once, without a limiter slot, so a request that may already have
    reached the API must not take this path. Pre-send are: DNS and TCP connect failures (urllib3's
    NewConnectionError, NameResolutionError is one), a certificate refused in the TLS handshake, and
    a proxy error whose chain shows the connection to the proxy failed. Anything else (an SSL EOF
    while reading the answer, a proxy error after sending, a reset) is a plain TransportError.
    The same rule holds for requests' exceptions and for urllib3's own (what ApiClient sees now).
    """
    return any(isinstance(e, NewConnectionError | ssl.SSLCertVerificationError) for e in _exception_chain(exc))


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps (args, urllib3's ``reason``, __cause__, __context__), once each."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [*current.args, getattr(current, "reason", None), current.__cause__, current.__context__]
        todo += [n for n in nested if isinstance(n, BaseException)]


def _ca_bundle() -> str:
    """The CA bundle requests would use: REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE or certifi's."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or DEFAULT_CA_BUNDLE_PATH


def _tls_options() -> dict[str, Any]:
    """Certificates verified against the CA bundle requests would use (for urllib3's managers)."""
    bundle = _ca_bundle()
    return {"cert_reqs": "CERT_REQUIRED", ("ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"): bundle}


def _proxy_manager(proxy: str, pool_size: int) -> Transport:
    """A manager that sends through ``proxy`` (an http(s) or, with PySocks installed, a socks URL)."""
    options: dict[str, Any] = {"num_pools": 4, "maxsize": pool_size, "retries": _NO_RETRIES, **_tls_options()}
    if proxy.lower().startswith("socks"):
        try:
            from urllib3.contrib.socks import SOCKSProxyManager
        except ImportError as exc:  # pragma: no cover - depends on PySocks
            raise ConfigError(f"a SOCKS proxy is set in the environment but PySocks is not installed: {exc}") from exc
        username, password = get_auth_from_url(proxy)
        return SOCKSProxyManager(proxy, username=username or None, password=password or None, **options)
    username, password = get_auth_from_url(proxy)
    headers = make_headers(proxy_basic_auth=f"{username}:{password}") if username else None
    return urllib3.ProxyManager(proxy, proxy_headers=headers, **options)


class Route(Protocol):
    """One base URL's way to post: ``post(path and query, body)`` raises only classified ApiErrors."""

    def post(self, target: str, body: bytes) -> Response: ...

    def close(self) -> None: ...


class _Urllib3Route:
    """A POST through a urllib3 manager (a proxy) or a test's transport; ``url`` is prefixed to the target."""

    def __init__(self, transport: Transport, url: str, timeout: urllib3.Timeout, *, owned: bool) -> None:
        self.transport = transport
        self.url = url
        self._timeout = timeout
        self._owned = owned

    def post(self, target: str, body: bytes) -> Response:
        try:
            # Certificates are verified (the managers are made with CERT_REQUIRED); no redirect is followed.
            response = self.transport.urlopen(
                "POST",
                self.url + target,
                body=body,
                headers=HEADERS,
                timeout=self._timeout,
                retries=_NO_RETRIES,
                redirect=False,
                preload_content=True,
            )
        except HTTPError as exc:
            # The library's message quotes the URL with the usersig: never let it out.
            scrub_exception(exc)
            raise _urllib3_transport_error(exc) from exc
        return Response(response.status, response.reason or "", response.data)

    def close(self) -> None:
        if self._owned:
            clear = getattr(self.transport, "clear", None)
            if clear is not None:
                clear()


def _default_routes(base_urls: Sequence[str], pool_size: int, connect_s: float, read_s: float) -> list[Route]:
    """For each base URL, how the POST goes: a lean per-thread connection, or through the environment's proxy.

    The proxy (if any) is picked as requests picks it; one ProxyManager per proxy, shared by its routes.
    """
    timeout = urllib3.Timeout(connect=connect_s, read=read_s)
    managers: dict[str, Transport] = {}
    routes: list[Route] = []
    for base_url in base_urls:
        proxy = select_proxy(base_url, get_environ_proxies(base_url))
        if proxy:
            owned = proxy not in managers
            if owned:
                managers[proxy] = _proxy_manager(proxy, pool_size)
            routes.append(_Urllib3Route(managers[proxy], base_url + UNBAN_PATH, timeout, owned=owned))
        else:
            routes.append(
                LeanRoute(
                    base_url, UNBAN_PATH, connect_timeout_s=connect_s, read_timeout_s=read_s, ca_bundle=_ca_bundle()
                )
            )
    return routes


class ApiClient:
    """Calls unban_group_member; thread-safe; raises the classified ApiError on any failure."""

    def __init__(
        self,
        app: AppConfig,
        *,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
        pool_size: int = 16,
        transport: Transport | None = None,
        sig_cache: UserSigCache | None = None,
        rng: Callable[[], int] | None = None,
        base_urls: Sequence[str] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        failover_s: float = FAILOVER_S,
    ) -> None:
        sdkappid, identifier, secret = app.credentials()
        self.sdkappid = sdkappid
        self.identifier = identifier
        urls = tuple(base_urls) if base_urls is not None else app.api_urls()
        if not urls:
            raise ValueError("base_urls must not be empty")
        self.base_urls: tuple[str, ...] = tuple(u.rstrip("/") for u in urls)
        self._sigs = sig_cache or UserSigCache(sdkappid, identifier, secret)
        self._rng = rng or _default_rng
        self._monotonic = monotonic
        self._failover_s = failover_s
        self._lock = threading.Lock()
        self._preferred = 0  # index into base_urls used first
        self._preferred_until = 0.0
        #: (UserSig, the query string's first part with it, URL-encoded): re-encoded only when the sig changes.
        self._signed = ("", "")
        #: Per base URL: how the POST goes there (given the target "?query").
        self._routes: list[Route]
        if transport is None:
            self._routes = _default_routes(self.base_urls, pool_size, connect_timeout_s, read_timeout_s)
        else:
            timeout = urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s)
            self._routes = [_Urllib3Route(transport, url + UNBAN_PATH, timeout, owned=False) for url in self.base_urls]

    def __repr__(self) -> str:
        urls = ", ".join(self.base_urls)
        return f"ApiClient(sdkappid={self.sdkappid}, identifier={self.identifier!r}, base_urls=[{urls}])"

    @property
    def active_base_url(self) -> str:
        """The domain the next call will try first."""
        return self.base_urls[self._url_order()[0]]

    def renew_sig(self) -> None:
        """Force a fresh UserSig for the next call (after 70001/70052)."""
        self._sigs.invalidate()

    def close(self) -> None:
        for route in self._routes:
            route.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def unban(self, group_id: str, members: Sequence[str]) -> None:
        """Unban ``members`` (1-20 distinct accounts, duplicates dropped) from ``group_id``.

        Returns on ErrorCode 0; raises ValidationError for bad input and the classified ApiError
        for everything else.
        """
        if not isinstance(group_id, str) or not group_id:
            raise ValidationError("group_id", "must be a non-empty string")
        if isinstance(members, str):
            raise ValidationError("members", "must be a list of accounts, not a string")
        unique = list(dict.fromkeys(members))
        if not unique:
            raise ValidationError("members", "at least one member is required")
        if len(unique) > MAX_MEMBERS:
            raise ValidationError("members", f"at most {MAX_MEMBERS} distinct members per call, got {len(unique)}")
        if not all(isinstance(m, str) and m for m in unique):
            raise ValidationError("members", "every member must be a non-empty string")
        body = json.dumps({"GroupId": group_id, "Members_Account": unique}, separators=(",", ":")).encode()

        order = self._url_order()
        try:
            self._call(order[0], body, group_id, len(unique))
        except ConnectError as exc:
            if len(order) == 1:
                raise
            # Nothing was sent. The next domain is not tried here: the caller reserves a new slot first,
            # which re-checks the leases, so a cancel that returned while this connect failed still holds.
            self._prefer(order[1])
            raise FailoverError(exc.code, f"{exc.info}; next call to {self.base_urls[order[1]]}") from exc

    def _url_order(self) -> list[int]:
        with self._lock:
            preferred = self._preferred if self._monotonic() < self._preferred_until else 0
        return [preferred] + [i for i in range(len(self.base_urls)) if i != preferred]

    def _prefer(self, index: int) -> None:
        with self._lock:
            self._preferred = index
            self._preferred_until = self._monotonic() + self._failover_s
        log.warning("cannot connect; using %s for the next %.0f s", self.base_urls[index], self._failover_s)

    def _query(self) -> str:
        """The query string: sdkappid, identifier, usersig (encoded once per UserSig), a fresh random, contenttype."""
        sig = self._sigs.get()
        signed = self._signed  # one read: another thread may replace it meanwhile
        if signed[0] != sig:
            signed = self._signed = (
                sig,
                urlencode({"sdkappid": self.sdkappid, "identifier": self.identifier, "usersig": sig}),
            )
        return f"{signed[1]}&random={self._rng()}&contenttype=json"

    def _call(self, index: int, body: bytes, group_id: str, n_members: int) -> None:
        started = time.monotonic()
        response = self._routes[index].post("?" + self._query(), body)
        error = self._check(response)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "unban group=%s members=%d http=%d code=%s in %.1f ms",
                group_id,
                n_members,
                response.status,
                0 if error is None else error.code,
                (time.monotonic() - started) * 1000.0,
            )
        if error is not None:
            raise error

    @staticmethod
    def _transport_error(exc: requests.RequestException | HTTPError) -> ApiError:
        """The ApiError for a transport failure, from urllib3 (what the client uses) or requests."""
        if isinstance(exc, HTTPError):
            return _urllib3_transport_error(exc)
        kind = type(exc).__name__
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return ConnectError(0, "connect timeout")
        if isinstance(exc, requests.Timeout):
            return TransportError(0, "timeout")
        if isinstance(exc, requests.ConnectionError):
            if _is_connect_failure(exc):
                return ConnectError(0, f"connect failed ({kind})")
            return TransportError(0, f"connection error ({kind})")
        return TransportError(0, f"request failed ({kind})")

    @staticmethod
    def _check(response: Response) -> ApiError | None:
        if response.status != 200:
            return classify(0, f"HTTP {response.status} {response.reason}".strip(), response.status)
        try:
            payload: Any = json.loads(response.data)
        except ValueError:
            return RetryableError(60013, "response is not JSON")
        code = payload.get("ErrorCode") if isinstance(payload, dict) else None
        if not isinstance(code, int) or isinstance(code, bool):
            return RetryableError(60013, "response has no integer ErrorCode")
        info = payload.get("ErrorInfo")
        return classify(code, info if isinstance(info, str) else "", 200)


def _urllib3_transport_error(exc: HTTPError) -> ApiError:
    """urllib3's failures classified as requests' were: only a failure before sending is a ConnectError."""
    kind = type(exc).__name__
    reason = exc.reason if isinstance(exc, MaxRetryError) else exc
    # urllib3's NewConnectionError is a ConnectTimeoutError (and so a TimeoutError) too.
    if isinstance(reason, ConnectTimeoutError) and not isinstance(reason, NewConnectionError):
        return ConnectError(0, "connect timeout")
    if _is_connect_failure(exc):
        return ConnectError(0, f"connect failed ({kind})")
    if isinstance(reason, Urllib3TimeoutError):
        return TransportError(0, "timeout")
    return TransportError(0, f"connection error ({kind})")
