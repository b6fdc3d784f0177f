"""Build the console: a Starlette app over the apps of one :class:`~imunban.deployment.Deployment`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import redis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from imunban import runbook
from imunban.deployment import Deployment
from imunban.errors import StoreError, ValidationError
from imunban.keys import Keys
from imunban.state import fmt_bytes, two_units
from imunban.version import VERSION
from imunban.web import api, forms, guide, pages
from imunban.web.auth import SESSION_S, Authority
from imunban.web.common import Console, Guard, fmt_ms
from imunban.web.context import app_contexts
from imunban.web.outage import outage_page, readyz
from imunban.web.params import BadParam
from imunban.web.prefix import RootPath, root_of, route_path
from imunban.web.sampler import SamplerThread
from imunban.web.sessions import Revocations
from imunban.web.streams import StreamHub
from imunban.web.throttle import Throttle

HERE = Path(str(resources.files("imunban.web")))


def fmt_span(ms: Any) -> str:
    """A duration in ms as ``850 ms``, ``12.5 s``, ``3m 20s``, ``2h 5m``, ``3d 4h``; '-' for nothing."""
    if ms is None or isinstance(ms, jinja2.Undefined):
        return "-"
    ms = int(ms)
    if abs(ms) < 1000:
        return f"{ms} ms"
    seconds = abs(ms) / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    return two_units(int(seconds))


def fmt_num(value: Any) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def _prefix(request: Request) -> dict[str, Any]:
    """``R``: what every URL of a page starts with (the console's path prefix, '' at the root)."""
    return {"R": root_of(request.scope)}


def fmt_size(value: Any, zero: str = "no limit") -> str:
    """Bytes as Redis counts them (``3.4 MiB``); '-' for nothing, ``zero`` for 0 (maxmemory 0: no limit)."""
    if value is None or isinstance(value, jinja2.Undefined):
        return "-"
    return zero if int(value) == 0 else fmt_bytes(int(value))


def templates() -> Jinja2Templates:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True)
    env.filters.update(ms=fmt_ms, span=fmt_span, num=fmt_num, bytes=fmt_size)
    env.globals["version"] = VERSION  # the footer's
    env.globals["runbook_for_code"] = runbook.for_code  # a hold's or a dead letter's entry (anchor, action)
    return Jinja2Templates(env=env, context_processors=[_prefix])


async def _http_error(request: Request, exc: Exception) -> Response:
    """JSON ``{error[, field]}`` for the API and the streams, the message alone for htmx, else a styled page."""
    if isinstance(exc, ValidationError):  # raised by the engine under a route that did not catch it
        exc = BadParam(exc.field, exc.reason)
    assert isinstance(exc, HTTPException)
    field = exc.field if isinstance(exc, BadParam) else None
    if route_path(request.scope).startswith(("/api/", "/events/")):
        body = {"error": exc.detail} if field is None else {"error": exc.detail, "field": field}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
    if request.headers.get("hx-request"):  # console.js shows it as text above the page
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code, headers=exc.headers)
    context = {"status": exc.status_code, "message": exc.detail, "field": field}
    templates: Jinja2Templates = request.app.state.console.templates
    return templates.TemplateResponse(request, "error.html", context, status_code=exc.status_code, headers=exc.headers)


async def _healthz(request: Request) -> Response:
    """Liveness: the process answers (whatever Redis does; /readyz checks Redis)."""
    return PlainTextResponse("ok")


async def _favicon(request: Request) -> Response:
    """The icon at the root, for browsers that ask there whatever the page's <link rel=icon> says."""
    return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")


def create_app(
    deployment: Deployment,
    authority: Authority | None = None,
    *,
    sample: bool = True,
    streams: StreamHub | None = None,
    throttle: Throttle | None = None,
    root_path: str | None = None,
) -> Starlette:
    """The console for the apps of ``deployment``; ``sample`` runs the background sampler of the rate chart.

    ``authority`` (who may look, who may act) defaults to the deployment's web tokens. ``streams`` counts
    and feeds the live streams, ``throttle`` counts failed sign-ins (tests pass their own caps and clocks).
    ``root_path`` is the path prefix behind a reverse proxy (default: the settings' IMUNBAN_WEB_ROOT_PATH).
    """
    apps = app_contexts(deployment)
    authority = authority or Authority.from_settings(deployment.settings)
    throttle = throttle or Throttle()
    # Sign-outs are deployment keys (the deployment's hash tag, no app's).
    revocations = Revocations(deployment.client, Keys(deployment.settings.key_prefix), SESSION_S)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        authority.warn_weak_tokens()  # once, as the console starts
        sampler = SamplerThread([ctx.sampler for ctx in apps.values()]) if sample else None
        if sampler:
            sampler.start()
        try:
            yield
        finally:
            if sampler:
                sampler.stop()

    app = Starlette(
        routes=[
            *pages.ROUTES,
            *forms.ROUTES,
            *api.ROUTES,
            *guide.ROUTES,
            Route("/healthz", _healthz),
            Route("/readyz", readyz),
            Route("/favicon.ico", _favicon),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ],
        middleware=[
            Middleware(RootPath, root=deployment.settings.web_root_path if root_path is None else root_path),
            Middleware(Guard, authority=authority, throttle=throttle, revocations=revocations),
        ],
        exception_handlers={
            HTTPException: _http_error,
            ValidationError: _http_error,
            # Redis unreachable or refusing where a route did not expect it: a styled 503, one log line.
            StoreError: outage_page,
            redis.exceptions.RedisError: outage_page,
        },
        lifespan=lifespan,
    )
    app.state.console = Console(deployment, apps, authority, templates(), streams or StreamHub(), throttle, revocations)
    return app
