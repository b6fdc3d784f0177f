"""The HTTP client for ``v4/group_open_http_svc/unban_group_member``.

One :class:`ApiClient` per worker process, shared by its threads: a pooled keep-alive session
(the docs ask for it), a cached admin UserSig, and region failover to the backup domain on DNS or
connect failures only. Every failure is raised as a :class:`imunban.errors.ApiError` subclass that
says what to do; the client retries nothing itself (the delivery engine owns retries and rate).
"""

from __future__ import annotations

import json
import logging
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError
from urllib3.util.retry import Retry

from imunban.classify import classify
from imunban.errors import ApiError, ConnectError, RetryableError, TransportError, ValidationError
from imunban.keys import MAX_MEMBERS
from imunban.logredact import scrub_exception
from imunban.settings import Settings
from imunban.usersig import UserSigCache

__all__ = ["FAILOVER_S", "MAX_MEMBERS", "UNBAN_PATH", "ApiClient"]

#: The unban API's path under the region's base URL.
UNBAN_PATH = "/v4/group_open_http_svc/unban_group_member"

#: After a connect failure on the primary domain, keep using the backup this long before retrying it.
FAILOVER_S = 60.0

#: random is a 32-bit unsigned integer.
_RANDOM_RANGE = 2**32

log = logging.getLogger(__name__)


def _default_rng() -> int:
    return secrets.randbelow(_RANDOM_RANGE)


def _is_connect_failure(exc: requests.ConnectionError) -> bool:
    """True only for a failure before the request was sent: the one kind that may fail over.

    The backup domain is tried at once, without a limiter slot, so a request that may already have
    reached the API must not take this path. Pre-send are: DNS and TCP connect failures (urllib3's
    NewConnectionError, NameResolutionError is one), a certificate refused in the TLS handshake, and
    a proxy error whose chain shows the connection to the proxy failed. Anything else (an SSL EOF
    while reading the answer, a proxy error after sending, a reset) is a plain TransportError.
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


class ApiClient:
    """Calls unban_group_member; thread-safe; raises the classified ApiError on any failure."""

    def __init__(
        self,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        sig_cache: UserSigCache | None = None,
        rng: Callable[[], int] | None = None,
        base_urls: Sequence[str] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        failover_s: float = FAILOVER_S,
    ) -> None:
        sdkappid, identifier, secret = settings.require_credentials()
        self.sdkappid = sdkappid
        self.identifier = identifier
        urls = tuple(base_urls) if base_urls is not None else settings.api_urls()
        if not urls:
            raise ValueError("base_urls must not be empty")
        self.base_urls: tuple[str, ...] = tuple(u.rstrip("/") for u in urls)
        self._timeout = (settings.connect_timeout_s, settings.read_timeout_s)
        self._sigs = sig_cache or UserSigCache(sdkappid, identifier, secret)
        self._rng = rng or _default_rng
        self._monotonic = monotonic
        self._failover_s = failover_s
        self._lock = threading.Lock()
        self._preferred = 0  # index into base_urls used first
        self._preferred_until = 0.0
        self._own_session = session is None
        self._session = session or self._make_session(max(10, settings.concurrency * 2))

    @staticmethod
    def _make_session(pool_size: int) -> requests.Session:
        session = requests.Session()
        # No urllib3 retries: a silent resend would bypass the shared rate limiter and our accounting.
        adapter = HTTPAdapter(
            pool_connections=4,
            pool_maxsize=pool_size,
            max_retries=Retry(total=0, connect=0, read=False, redirect=False, status=0),
        )
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers.update({"Content-Type": "application/json", "Accept": "application/json"})
        return session

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
        if self._own_session:
            self._session.close()

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
        for position, index in enumerate(order):
            try:
                self._call(self.base_urls[index], body, group_id, len(unique))
            except ConnectError:
                if position == len(order) - 1:
                    raise
                log.warning(
                    "connect to %s failed; trying %s",
                    self.base_urls[index],
                    self.base_urls[order[position + 1]],
                )
                continue
            if position > 0:
                self._prefer(index)
            return

    def _url_order(self) -> list[int]:
        with self._lock:
            preferred = self._preferred if self._monotonic() < self._preferred_until else 0
        return [preferred] + [i for i in range(len(self.base_urls)) if i != preferred]

    def _prefer(self, index: int) -> None:
        with self._lock:
            self._preferred = index
            self._preferred_until = self._monotonic() + self._failover_s
        log.warning("using %s for the next %.0f s", self.base_urls[index], self._failover_s)

    def _call(self, base_url: str, body: bytes, group_id: str, n_members: int) -> None:
        params = {
            "sdkappid": str(self.sdkappid),
            "identifier": self.identifier,
            "usersig": self._sigs.get(),
            "random": str(self._rng()),
            "contenttype": "json",
        }
        started = time.monotonic()
        try:
            response = self._session.post(
                base_url + UNBAN_PATH,
                params=params,
                data=body,
                timeout=self._timeout,
                verify=True,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            # The library's message quotes the URL with the usersig: never let it out.
            scrub_exception(exc)
            raise self._transport_error(exc) from exc
        elapsed_ms = (time.monotonic() - started) * 1000.0
        error = self._check(response)
        log.debug(
            "unban group=%s members=%d http=%d code=%s in %.1f ms",
            group_id,
            n_members,
            response.status_code,
            0 if error is None else error.code,
            elapsed_ms,
        )
        if error is not None:
            raise error

    @staticmethod
    def _transport_error(exc: requests.RequestException) -> ApiError:
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
    def _check(response: requests.Response) -> ApiError | None:
        if response.status_code != 200:
            return classify(0, f"HTTP {response.status_code} {response.reason or ''}".strip(), response.status_code)
        try:
            payload: Any = response.json()
        except ValueError:
            return RetryableError(60013, "response is not JSON")
        code = payload.get("ErrorCode") if isinstance(payload, dict) else None
        if not isinstance(code, int) or isinstance(code, bool):
            return RetryableError(60013, "response has no integer ErrorCode")
        info = payload.get("ErrorInfo")
        return classify(code, info if isinstance(info, str) else "", 200)
