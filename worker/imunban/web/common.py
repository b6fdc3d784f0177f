"""Shared by the console's routes: its state, the guard middleware, and the checks every action passes."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imunban.deployment import Deployment
from imunban.web import params
from imunban.web.auth import CSRF_FIELD, LOCAL, Authority, Principal, csrf_ok, same_origin
from imunban.web.context import AppContext
from imunban.web.outage import OutageLog
from imunban.web.prefix import root_of, route_path
from imunban.web.sessions import Revocations
from imunban.web.streams import StreamHub
from imunban.web.throttle import Throttle

#: No inline script or style anywhere (htmx's own indicator style is switched off in base.html),
#: no framing, nothing loaded from elsewhere: the console works offline and cannot be embedded.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}
#: Reachable without signing in (the sign-in page itself, its assets, the icon, liveness and readiness probes
#: that say nothing about the data).
PUBLIC = ("/login", "/healthz", "/readyz", "/favicon.ico")
#: The largest request body the console reads (forms and JSON actions are a few kB).
MAX_BODY = 1_000_000
TOO_LARGE = f"request body too large: the console reads at most 1 MB ({MAX_BODY:,} bytes)"
#: Sent with a 413: the connection ends there (the rest of the body is never read).
CLOSE = {"connection": "close"}


@dataclass
class Console:
    """Everything the routes share, kept on ``app.state.console``."""

    deployment: Deployment
    #: One context per app of the deployment, by name, in its order.
    apps: dict[str, AppContext]
    authority: Authority
    templates: Jinja2Templates
    streams: StreamHub
    throttle: Throttle
    revocations: Revocations
    #: Rate-limits the log lines of a Redis that cannot be reached (one per kind per minute).
    outages: OutageLog = field(default_factory=OutageLog)


def console(request: Request) -> Console:
    found: Console = request.app.state.console
    return found


def principal_of(request: Request) -> Principal:
    found: Principal | None = request.scope.get("state", {}).get("principal")
    if found is None:  # the guard lets no unauthenticated request reach a route that asks
        raise HTTPException(401)
    return found


def app_ctx(request: Request, name: object = None) -> AppContext:
    """The app this request is about: ``name`` (a form or JSON body's ``app``), else ``?app=NAME``; 400 for a
    malformed name, 404 for one this console does not serve.

    Without a name, the page shows the deployment's first app (the switcher in the header offers the
    others).
    """
    con = console(request)
    given = params.app_name(name) if name not in (None, "") else params.app_name(params.raw(request, "app"))
    ctx = con.apps.get(given or con.deployment.names[0])
    if ctx is None:
        raise params.BadParam("app", "this console serves no such app", status_code=404)
    return ctx


class Guard:
    """ASGI middleware: host check, who is asking (bearer guesses throttled), sign-in gate, viewer/cross-site
    refusal, headers, timing."""

    def __init__(self, app: ASGIApp, authority: Authority, throttle: Throttle, revocations: Revocations) -> None:
        self.app = app
        self.authority = authority
        self.throttle = throttle
        self.revocations = revocations

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request = Request(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if not scope["path"].startswith("/static/"):
                    headers.setdefault("cache-control", "no-store")
                # Server time up to the response head: what the bench reads (a stream's body comes later).
                headers["server-timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
            await send(message)

        refusal = await self._refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    async def _refusal(self, request: Request) -> Response | None:
        path = route_path(request.scope)
        if not self.authority.host_allowed(request):
            return PlainTextResponse("this console answers to localhost / 127.0.0.1 only", status_code=421)
        address = client_address(request)
        bearer = request.headers.get("authorization", "")[:7].lower() == "bearer "
        if bearer and (wait_s := self.throttle.blocked_for(address)) > 0:
            return throttled(request, wait_s)  # before the token is compared: a blocked guess learns nothing
        who = self.authority.principal(request)
        if bearer and who is None:
            self.throttle.failed(address)
        session = who.session_id if who is not None and who.via == "session" else None
        if session is not None and await run_in_threadpool(self.revocations.revoked, session):
            who = Principal(LOCAL, "loopback") if self.authority.open else None  # signed out: a copied cookie
        request.scope.setdefault("state", {})["principal"] = who
        public = path in PUBLIC or path.startswith("/static/")
        if who is None and not public:
            if path.startswith(("/api/", "/events/")):
                return JSONResponse(
                    {"error": "unauthorized: send Authorization: Bearer TOKEN"},
                    status_code=401,
                    headers={"www-authenticate": "Bearer"},
                )
            return RedirectResponse(root_of(request.scope) + "/login?next=" + quote(path), status_code=303)
        if request.method not in ("GET", "HEAD"):
            if not same_origin(request):
                return forbidden(request, "cross-site request refused")
            if who is not None and not who.may_act and path not in ("/logout", "/login"):
                return forbidden(request, "this action needs the operator token (you are signed in as a viewer)")
        return None


def throttled(request: Request, wait_s: float) -> Response:
    """429 for a client that may not try a token now (see :mod:`imunban.web.throttle`)."""
    retry_after = str(math.ceil(wait_s))
    reason = f"too many failed sign-ins from this address or on this console: try again in {retry_after} s"
    headers = {"retry-after": retry_after}
    if route_path(request.scope).startswith(("/api/", "/events/")):
        return JSONResponse({"error": reason}, status_code=429, headers=headers)
    return PlainTextResponse(reason, status_code=429, headers=headers)


def forbidden(request: Request, reason: str) -> Response:
    """403: JSON for the API, the text alone for htmx, else the console's styled error page."""
    if route_path(request.scope).startswith("/api/"):
        return JSONResponse({"error": reason}, status_code=403)
    if request.headers.get("hx-request"):
        return PlainTextResponse(reason, status_code=403)
    templates: Jinja2Templates = request.app.state.console.templates
    context = {"status": 403, "message": reason, "field": None}
    return templates.TemplateResponse(request, "error.html", context, status_code=403)


async def read_body(request: Request) -> bytes:
    """The request body, refused with 413 once it is over :data:`MAX_BODY` (1 MB).

    Refused on a Content-Length over the limit before a byte is read, and while streaming (a chunked
    body has none): at most the limit plus one chunk is ever held, whatever the client sends.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400, "Content-Length: not a number of bytes")
        if int(declared) > MAX_BODY:
            raise HTTPException(413, TOO_LARGE, headers=CLOSE)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, TOO_LARGE, headers=CLOSE)
    return bytes(body)


async def read_form(request: Request) -> dict[str, list[str]]:
    """An urlencoded body as {name: [values]} (the console's forms are urlencoded; no multipart)."""
    body = await read_body(request)
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


async def read_json(request: Request) -> dict[str, Any]:
    body = await read_body(request)
    if not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise HTTPException(400, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return data


def check_action(request: Request, form_token: str | None = None) -> Principal:
    """The caller may act: an operator (or local), and a cookie session's CSRF token matches (403 otherwise)."""
    who = principal_of(request)
    if not who.may_act:
        raise HTTPException(403, "this action needs the operator token")
    if not same_origin(request) or not csrf_ok(who, request, form_token):
        raise HTTPException(403, "missing or wrong CSRF token")
    return who


def fmt_ms(ms: Any) -> str:
    """Epoch ms as ``2026-01-01 08:00:00Z``; '-' for nothing (the pages' ``ms`` filter, and action answers)."""
    if not ms or ms == "0":  # None, 0, "" and a field the document lacks (jinja2's Undefined)
        return "-"
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def first(form: dict[str, list[str]], name: str, default: str = "") -> str:
    values = form.get(name)
    return values[0] if values else default


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def stream_owner(request: Request) -> str:
    """Whose streams a request's count against: its browser session, else its token's role from its address."""
    who = principal_of(request)
    if who.via == "session":
        return f"session:{who.csrf}"  # one per sign-in, random
    return f"{who.via}:{who.role}:{client_address(request)}"


def form_token(form: dict[str, list[str]]) -> str:
    return first(form, CSRF_FIELD)
