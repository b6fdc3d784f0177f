"""A bad day for the console: Redis unreachable or refusing. A styled 503 page, one log line, a readiness probe.

Before this, a page whose Redis read failed answered a bare "Internal Server Error" and logged the
whole traceback (hundreds of lines per request, again for every request). Now a page says which Redis
it tried (never the password) and what to check, the API answers ``{"error": ...}`` with 503, and the
log gets one line per kind of failure per :data:`LOG_EVERY_S` (:class:`OutageLog`), with how many
were not logged since. ``/readyz`` answers 503 while Redis does not answer a PING (``/healthz`` stays
liveness only: a console that cannot reach Redis is alive, just not ready).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.templating import Jinja2Templates

from imunban.errors import StoreError
from imunban.logredact import redact_url
from imunban.settings import Settings
from imunban.web.prefix import route_path

log = logging.getLogger(__name__)

#: One log line per kind of failure at most this often (the rest are counted and reported with the next).
LOG_EVERY_S = 60.0
#: What an operator checks first when the console cannot reach Redis.
CHECKS = (
    "Is Redis running? (docker compose ps redis; redis-cli -u URL ping)",
    "Does IMUNBAN_REDIS_URL name it, as the workers' does? (host, port, database, TLS)",
    "Is the password right? (IMUNBAN_REDIS_URL or its password file; Redis logs a failed AUTH)",
    "Can this host reach it? (firewall, network policy, DNS of the host name)",
)


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was translated from) says Redis could not be reached or did not answer."""
    seen: BaseException | None = exc
    for _ in range(5):  # a StoreError from translated(): the redis-py error is its cause
        if seen is None:
            return False
        if isinstance(seen, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, ConnectionError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def redis_target(settings: Settings, client: redis.Redis) -> str:
    """The Redis the console uses, as an operator recognises it, without a password."""
    if settings.redis_url:
        return redact_url(settings.redis_url)
    kwargs = getattr(client, "connection_pool", None)
    found = getattr(kwargs, "connection_kwargs", {}) if kwargs is not None else {}
    if "path" in found:
        return f"unix://{found['path']} (the embedded Redis)"
    return f"{found.get('host', '?')}:{found.get('port', '?')} (IMUNBAN_REDIS_URL unset: the embedded Redis)"


class OutageLog:
    """Logs a failure kind at most once per ``every_s``; the next line says how many were left out."""

    def __init__(self, every_s: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}
        self._lock = threading.Lock()

    def should_log(self, kind: str) -> int | None:
        """None: stay quiet; else log now, and this many were left out since the last line."""
        now = self._clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.every_s:
                self._skipped[kind] = self._skipped.get(kind, 0) + 1
                return None
            self._last[kind] = now
            return self._skipped.pop(kind, 0)

    def failure(self, kind: str, message: str) -> None:
        """One WARNING line (no traceback) for this kind of failure, unless one was logged lately."""
        skipped = self.should_log(kind)
        if skipped is None:
            return
        more = f" ({skipped} more since the last report)" if skipped else ""
        log.warning("%s: %s%s", kind, message, more)


def failure_kind(exc: BaseException) -> str:
    return "redis unreachable" if unreachable(exc) else "redis error"


async def outage_page(request: Request, exc: Exception) -> Response:
    """503 for a Redis that cannot be reached or refused: JSON for the API, text for htmx, else a styled page."""
    con = request.app.state.console
    kind = failure_kind(exc)
    target = redis_target(con.deployment.settings, con.deployment.client)
    # The message of a StoreError is ours (operation and redis-py's reason); a password never appears in it.
    con.outages.failure(kind, f"{request.method} {request.url.path}: {exc} (Redis: {target})")
    title = "Redis unreachable" if kind == "redis unreachable" else "Redis refused a command"
    headers = {"retry-after": "5"}
    if route_path(request.scope).startswith(("/api/", "/events/")):
        return JSONResponse({"error": f"{title}: {exc}", "redis": target}, status_code=503, headers=headers)
    if request.headers.get("hx-request"):
        return PlainTextResponse(f"{title} ({target}): {exc}", status_code=503, headers=headers)
    context = {"title": title, "target": target, "detail": str(exc), "checks": CHECKS, "unreachable": kind}
    templates: Jinja2Templates = con.templates
    return templates.TemplateResponse(request, "outage.html", context, status_code=503, headers=headers)


async def readyz(request: Request) -> Response:
    """200 "ready" when Redis answers a PING, else 503 (what a load balancer or compose healthcheck asks)."""
    con = request.app.state.console
    try:
        await run_in_threadpool(con.deployment.client.ping)
    except (redis.exceptions.RedisError, StoreError, OSError) as exc:
        con.outages.failure(failure_kind(exc), f"readiness check: {exc}")
        return PlainTextResponse("not ready: Redis unreachable", status_code=503)
    return PlainTextResponse("ready")
