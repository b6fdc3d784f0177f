"""The JSON API under ``/api/`` (the same data as the pages, the same auth) and the live streams.

GET reads, POST acts (operator only; a cookie session also needs ``X-CSRF-Token``). Server-sent
events under ``/events/`` push the overview every 2 s and new outcome entries every second.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from imunban.errors import ImunbanError
from imunban.stats import status, status_of_apps
from imunban.web import actions, data, params
from imunban.web.common import (
    app_ctx,
    check_action,
    client_address,
    console,
    principal_of,
    read_json,
    stream_owner,
)
from imunban.web.context import AppContext
from imunban.web.pages import dead_filter
from imunban.web.streams import EventStream


def _ok(payload: Any) -> JSONResponse:
    return JSONResponse(payload)


async def api_status(request: Request) -> Response:
    """Exactly the document ``imunban status --json`` prints: the totals with each app's under ``apps``;
    with ``?app=NAME``, that app's alone (``imunban status --app NAME --json``)."""
    if params.raw(request, "app"):
        ctx = app_ctx(request)
        return _ok(await run_in_threadpool(status, ctx.client, ctx.keys))
    apps = console(request).apps
    first = apps.default
    return _ok(await run_in_threadpool(status_of_apps, first.client, first.settings.key_prefix, apps.names))


async def api_overview(request: Request) -> Response:
    return _ok(await run_in_threadpool(data.overview, app_ctx(request)))


async def api_trace(request: Request) -> Response:
    ctx = app_ctx(request)
    group, member = params.group_id(request), params.member(request)
    if group is None or member is None:
        raise params.BadParam("group_id" if group is None else "member", "required")
    deep = params.flag(request, "deep")  # search 10,000 outcome entries instead of the newest 500
    return _ok(await run_in_threadpool(partial(data.member_trace, deep=deep), ctx, group, member))


async def api_scheduled(request: Request) -> Response:
    ctx = app_ctx(request)
    offset = params.integer(request, "offset", 0)
    limit = params.integer(request, "limit", 50, low=1, high=data.PAGE_MAX)
    group = params.group_id(request)
    if group:
        return _ok(await run_in_threadpool(data.group_page, ctx, group, offset, limit))
    return _ok(await run_in_threadpool(data.scheduled_groups, ctx, offset, limit))


async def api_dead(request: Request) -> Response:
    ctx = app_ctx(request)
    flt = dead_filter(params.raw(request, "code"), params.raw(request, "group_id"))
    cursor = params.integer(request, "cursor", 0)
    limit = params.integer(request, "limit", 100, low=1, high=data.PAGE_MAX)
    return _ok(await run_in_threadpool(data.dead_page, ctx, flt, cursor, limit))


async def api_holds(request: Request) -> Response:
    return _ok(await run_in_threadpool(data.holds, app_ctx(request)))


async def api_outcomes(request: Request) -> Response:
    ctx = app_ctx(request)
    after, limit = params.stream_id(request), params.integer(request, "limit", 100, low=1, high=data.PAGE_MAX)
    return _ok(await run_in_threadpool(data.outcomes, ctx, after, limit))


# -- actions ------------------------------------------------------------------------------------


def _pairs(body: dict[str, Any]) -> list[actions.Pair]:
    """``{"requests": [{"group_id", "member"}, ...]}`` or ``{"group_id": g, "members": [...]}``."""
    if "requests" in body:
        items = body["requests"]
    else:
        members = body.get("members")
        items = (
            [{"group_id": body.get("group_id"), "member": m} for m in members] if isinstance(members, list) else None
        )
    if not isinstance(items, list) or not items:
        raise params.BadParam(
            "requests", 'give "requests": [{"group_id": ..., "member": ...}] (or "all": true where allowed)'
        )
    return actions.parse_pairs(items)


async def _act(
    request: Request, action: str, run: Callable[[AppContext, dict[str, Any]], tuple[int, str]], key: str
) -> Response:
    who = check_action(request)  # a cookie session needs X-CSRF-Token; bearer callers do not
    body = await read_json(request)
    ctx = app_ctx(request, body.get("app"))
    try:
        n, detail = await run_in_threadpool(run, ctx, body)
    except ImunbanError as exc:
        raise params.bad_request(exc) from None
    await run_in_threadpool(actions.audit, ctx, who, action, n, detail, client_address(request))
    return _ok({key: n})


def _dead_run(verb: str) -> Callable[[AppContext, dict[str, Any]], tuple[int, str]]:
    def run(ctx: AppContext, body: dict[str, Any]) -> tuple[int, str]:
        if body.get("all") is True:
            flt = dead_filter(body.get("code"), body.get("group_id"))
            matching = actions.replay_matching if verb == "replay" else actions.purge_matching
            return matching(ctx, flt), f"all matching code={flt.code} group={flt.group_id or ''}"
        pairs = _pairs(body)
        return (actions.replay if verb == "replay" else actions.purge)(ctx, pairs), f"{len(pairs)} selected"

    return run


async def api_replay(request: Request) -> Response:
    return await _act(request, "dead.replay", _dead_run("replay"), "replayed")


async def api_purge(request: Request) -> Response:
    return await _act(request, "dead.purge", _dead_run("purge"), "purged")


async def api_cancel(request: Request) -> Response:
    def run(ctx: AppContext, body: dict[str, Any]) -> tuple[int, str]:
        pairs = _pairs(body)
        return actions.cancel(ctx, pairs), f"{len(pairs)} selected"

    return await _act(request, "cancel", run, "cancelled")


async def api_reschedule(request: Request) -> Response:
    def run(ctx: AppContext, body: dict[str, Any]) -> tuple[int, str]:
        pairs = _pairs(body)
        at = body.get("at")
        if not isinstance(at, str | int | float) or isinstance(at, bool):
            raise params.BadParam("at", "give Unix seconds or ISO-8601 text")
        return actions.reschedule(ctx, pairs, at), f"{len(pairs)} selected, at {at}"

    return await _act(request, "reschedule", run, "rescheduled")


async def api_probe(request: Request) -> Response:
    def run(ctx: AppContext, body: dict[str, Any]) -> tuple[int, str]:
        return int(actions.probe_now(ctx)), "probe now"

    return await _act(request, "probe", run, "probe")


# -- server-sent events -------------------------------------------------------------------------


def _event(name: str, payload: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


def _admit(request: Request) -> Callable[[], None]:
    """A stream slot for the caller's session (429 with Retry-After past a cap)."""
    return console(request).streams.admit(stream_owner(request))


def _signed_in(request: Request) -> Callable[[], bool]:
    """Whether the stream's session still holds (not signed out here, not expired), asked before each event."""
    who, revocations = principal_of(request), console(request).revocations
    if who.via != "session":
        return lambda: True
    return lambda: who.expires_s > time.time() and not revocations.revoked_here(who.session_id)


async def events_overview(request: Request) -> Response:
    """The app's overview document every 2 s (the newest at once), from the app's one overview reader."""
    ctx = app_ctx(request)
    limit = params.integer(request, "limit", 0)  # 0: until the client goes away
    release = _admit(request)
    listener = console(request).streams.overview(ctx.name, lambda: data.overview(ctx)).listen()

    signed_in = _signed_in(request)

    async def gen() -> AsyncIterator[str]:
        sent = 0
        while not limit or sent < limit:
            document = await listener.next()
            if not signed_in():
                return
            yield _event("overview", document)
            sent += 1

    return EventStream(gen(), listener.close, release)


async def events_outcomes(request: Request) -> Response:
    """New outcome entries every second (after ``?after=ID``, else from now), from the app's one outcome tail."""
    ctx = app_ctx(request)
    limit, after = params.integer(request, "limit", 0), params.stream_id(request)
    release = _admit(request)
    listener = console(request).streams.outcomes(ctx.name, partial(_outcomes, ctx)).listen(after)

    signed_in = _signed_in(request)

    async def gen() -> AsyncIterator[str]:
        sent = 0
        while not limit or sent < limit:
            entries = await listener.next()
            if not signed_in():
                return
            yield _event("outcomes", entries)
            sent += 1

    return EventStream(gen(), listener.close, release)


def _outcomes(ctx: AppContext, after: str | None, limit: int) -> dict[str, Any]:
    return data.outcomes(ctx, after, limit)


ROUTES = [
    Route("/api/status", api_status),
    Route("/api/overview", api_overview),
    Route("/api/trace", api_trace),
    Route("/api/scheduled", api_scheduled),
    Route("/api/dead", api_dead),
    Route("/api/holds", api_holds),
    Route("/api/outcomes", api_outcomes),
    Route("/api/dead/replay", api_replay, methods=["POST"]),
    Route("/api/dead/purge", api_purge, methods=["POST"]),
    Route("/api/cancel", api_cancel, methods=["POST"]),
    Route("/api/reschedule", api_reschedule, methods=["POST"]),
    Route("/api/probe", api_probe, methods=["POST"]),
    Route("/events/overview", events_overview),
    Route("/events/outcomes", events_outcomes),
]
