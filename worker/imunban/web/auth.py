"""Who is asking, and may they: tokens, signed session cookies, CSRF and same-origin checks.

Roles: ``viewer`` may look (``IMUNBAN_WEB_VIEWER_TOKEN``), ``operator`` may also act
(``IMUNBAN_WEB_OPERATOR_TOKEN``). With neither token set the console is ``local``: it listens on
loopback only (see :func:`check_bind`), everyone who reaches it may act, and the Host header must
name loopback (a DNS-rebinding page cannot borrow the browser).

A browser signs in once at ``/login``; the cookie then holds only the role, a CSRF token and an
expiry, signed with HMAC-SHA256 under a key made at start (never the token itself: a restarted
console signs everyone out). API clients send ``Authorization: Bearer TOKEN`` on every request.
A POST that relies on the cookie must come from the console's own origin and carry the session's
CSRF token; a bearer request cannot be forged by another site, so it needs neither.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
from dataclasses import dataclass

from starlette.requests import Request

from imunban.errors import ConfigError
from imunban.settings import PREFIX, Secret, Settings

COOKIE = "imunban_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
#: A session lasts a working shift; then the operator signs in again.
SESSION_S = 12 * 3600
VIEWER, OPERATOR, LOCAL = "viewer", "operator", "local"
#: Roles that may act (POST).
ACTORS = (OPERATOR, LOCAL)
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")
TOKEN_VARIABLES = {OPERATOR: f"{PREFIX}WEB_OPERATOR_TOKEN", VIEWER: f"{PREFIX}WEB_VIEWER_TOKEN"}
#: A token shorter than this, or with fewer distinct characters than TOKEN_VARIETY, is warned about at start
#: (Settings refuses under 16; `openssl rand -hex 24` makes 48 characters of 16 kinds).
STRONG_TOKEN_CHARS = 32
TOKEN_VARIETY = 10
GUESSABLE = "anyone who can reach the console may guess it; use a random one, e.g. `openssl rand -hex 24`"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """The caller: its role, how it proved it, and the CSRF token of its session (cookie callers)."""

    role: str
    via: str  # "session", "bearer" or "loopback"
    csrf: str = ""
    #: A cookie session's id (what signing out revokes) and its expiry, Unix seconds.
    session_id: str = ""
    expires_s: int = 0

    @property
    def may_act(self) -> bool:
        return self.role in ACTORS


class Authority:
    """Checks tokens and sessions for one console."""

    def __init__(self, viewer: Secret | None, operator: Secret | None, *, key: bytes | None = None) -> None:
        self._tokens = [(OPERATOR, operator), (VIEWER, viewer)]
        self.open = viewer is None and operator is None
        self._key = key or secrets.token_bytes(32)

    @classmethod
    def from_settings(cls, settings: Settings) -> Authority:
        return cls(settings.web_viewer_token, settings.web_operator_token)

    def role_for_token(self, given: str) -> str | None:
        """The role a presented token grants, compared in constant time against every configured token."""
        found = None
        given_bytes = given.encode("utf-8", "replace")
        for role, secret in self._tokens:
            # Every configured token is compared (no early exit), so timing tells nothing about which matched.
            if secret is not None and hmac.compare_digest(given_bytes, secret.reveal().encode()) and found is None:
                found = role
        return found

    def weak_token_warnings(self) -> list[str]:
        """What is weak about the configured tokens, naming their variables (never a token)."""
        found = []
        for role, secret in self._tokens:
            if secret is None:
                continue
            token, name = secret.reveal(), TOKEN_VARIABLES[role]
            if len(token) < STRONG_TOKEN_CHARS:
                found.append(
                    f"{name} is {len(token)} characters (at least {STRONG_TOKEN_CHARS} recommended): {GUESSABLE}"
                )
            elif len(set(token)) < TOKEN_VARIETY:
                found.append(f"{name} has little variety ({len(set(token))} distinct characters): {GUESSABLE}")
        return found

    def warn_weak_tokens(self) -> None:
        """Log :meth:`weak_token_warnings` (the console does it once, when it starts)."""
        for warning in self.weak_token_warnings():
            log.warning("%s", warning)

    # -- sessions ----------------------------------------------------------------------------

    def new_session(self, role: str, now: float | None = None) -> tuple[str, str]:
        """(cookie value, csrf token) for a fresh session of ``role``, with an id of its own to revoke it by."""
        csrf = secrets.token_urlsafe(24)
        payload = {"r": role, "c": csrf, "i": secrets.token_urlsafe(16), "e": int((now or time.time()) + SESSION_S)}
        body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{body}.{self._sign(body)}", csrf

    def read_session(self, cookie: str | None, now: float | None = None) -> Principal | None:
        if not cookie or "." not in cookie:
            return None
        body, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            role, csrf, expires = str(payload["r"]), str(payload["c"]), int(payload["e"])
            session_id = str(payload["i"])
        except (ValueError, KeyError, TypeError):
            return None
        if expires < (now or time.time()) or role not in (VIEWER, OPERATOR, LOCAL):
            return None
        if role == LOCAL and not self.open:
            return None  # a session from a token-less run does not survive tokens being configured
        return Principal(role, "session", csrf, session_id, expires)

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    # -- requests ----------------------------------------------------------------------------

    def principal(self, request: Request) -> Principal | None:
        """Who sent ``request``: a bearer token, else the session cookie, else (no tokens) loopback."""
        header = request.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            role = self.role_for_token(header[7:].strip())
            return Principal(role, "bearer") if role else None
        session = self.read_session(request.cookies.get(COOKIE))
        if session is not None:
            return session
        if self.open:
            return Principal(LOCAL, "loopback")
        return None

    def host_allowed(self, request: Request) -> bool:
        """Without tokens only loopback Host names are served (defeats DNS rebinding)."""
        if not self.open:
            return True
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name in LOOPBACK_NAMES


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site (Sec-Fetch-Site, else Origin)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True  # a non-browser client, or a browser that sent Sec-Fetch-Site: same-origin above
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def csrf_ok(principal: Principal, request: Request, form_token: str | None) -> bool:
    """A cookie session's POST carries its CSRF token (header or form field); bearer callers need none."""
    if principal.via == "bearer":
        return True
    if principal.via == "loopback":
        # No session yet (a script on this machine): only a request no browser would send passes.
        return "origin" not in request.headers and "sec-fetch-site" not in request.headers
    given = request.headers.get(CSRF_HEADER) or form_token or ""
    return bool(principal.csrf) and hmac.compare_digest(given.encode(), principal.csrf.encode())


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: Settings) -> None:
    """Refuse to listen beyond loopback when no token is configured (anyone could act otherwise)."""
    if settings.web_viewer_token is None and settings.web_operator_token is None and not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host!r} without a token: anyone who reaches it could replay, purge and "
            f"cancel. Set {PREFIX}WEB_OPERATOR_TOKEN (and {PREFIX}WEB_VIEWER_TOKEN for read-only access), "
            "or listen on 127.0.0.1"
        )
