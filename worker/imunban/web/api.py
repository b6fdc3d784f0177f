"""The JSON API under ``/api/`` (the same data as the pages, the same auth) and the live streams.

GET reads, POST acts (operator only; a cookie session also needs ``X-CSRF-Token``). Server-sent
events under ``/events/`` push the overview every 2 s and new outcome entries every second.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from imunban.deadletter import ReplayResult
from imunban.errors import ImunbanError
from imunban.stats import status, status_of_apps
from imunban.validation import validate_group_id, validate_member, validate_version
from imunban.web import actions, data
from imunban.web.common import app_ctx, check_action, client_address, console, fmt_ms, int_param, read_json
from imunban.web.context import AppContext
from imunban.web.pages import dead_filter

OVERVIEW_EVERY_S = 2.0
OUTCOMES_EVERY_S = 1.0


def _ok(payload: Any) -> JSONResponse:
    return JSONResponse(payload)


async def api_status(request: Request) -> Response:
    """Exactly the document ``imunban status --json`` prints: the totals with each app's under ``apps``;
    with ``?app=NAME``, that app's alone (``imunban status --app NAME --json``)."""
    if request.query_params.get("app"):
        ctx = app_ctx(request)
        return _ok(await run_in_threadpool(status, ctx.client, ctx.keys))
    deployment = console(request).deployment
    return _ok(await run_in_threadpool(status_of_apps, deployment.client, [app.keys for app in deployment]))


async def api_overview(request: Request) -> Response:
    return _ok(await run_in_threadpool(data.overview, app_ctx(request)))


async def api_trace(request: Request) -> Response:
    ctx = app_ctx(request)
    q = request.query_params
    try:
        group, member = validate_group_id(q.get("group_id")), validate_member(q.get("member"))
    except ImunbanError as exc:
        raise HTTPException(400, str(exc)) from None
    deep = q.get("deep") == "1"  # search 10,000 outcome entries instead of the newest 1,000
    return _ok(await run_in_threadpool(partial(data.member_trace, deep=deep), ctx, group, member))


async def api_scheduled(request: Request) -> Response:
    ctx = app_ctx(request)
    q = request.query_params
    offset, limit = int_param(q.get("offset"), 0), int_param(q.get("limit"), 50, low=1, high=data.PAGE_MAX)
    if q.get("group_id"):
        return _ok(await run_in_threadpool(data.group_page, ctx, validate_group_id(q.get("group_id")), offset, limit))
    return _ok(await run_in_threadpool(data.scheduled_groups, ctx, offset, limit))


async def api_dead(request: Request) -> Response:
    ctx = app_ctx(request)
    q = request.query_params
    flt = dead_filter(q.get("code"), q.get("group_id"))
    cursor, limit = int_param(q.get("cursor"), 0), int_param(q.get("limit"), 100, low=1, high=data.PAGE_MAX)
    return _ok(await run_in_threadpool(data.dead_page, ctx, flt, cursor, limit))


async def api_holds(request: Request) -> Response:
    return _ok(await run_in_threadpool(data.holds, app_ctx(request)))


async def api_outcomes(request: Request) -> Response:
    q = request.query_params
    limit = int_param(q.get("limit"), 100, low=1, high=data.PAGE_MAX)
    return _ok(await run_in_threadpool(data.outcomes, app_ctx(request), q.get("after") or None, limit))


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
        raise HTTPException(400, 'give "requests": [{"group_id": ..., "member": ...}] (or "all": true where allowed)')
    return actions.parse_pairs(items)


#: An action's work: (count for the audit, what the audit says was chosen, the JSON answer).
ActionRun = Callable[[AppContext, dict[str, Any]], tuple[int, str, dict[str, Any]]]


async def _act(request: Request, action: str, run: ActionRun) -> Response:
    who = check_action(request)  # a cookie session needs X-CSRF-Token; bearer callers do not
    body = await read_json(request)
    ctx = app_ctx(request, body.get("app") if isinstance(body.get("app"), str) else None)
    try:
        n, detail, answer = await run_in_threadpool(run, ctx, body)
    except actions.StoppedPartWay as exc:
        # What was applied before the error is audited with it: the stream says what really changed.
        await run_in_threadpool(actions.audit_stopped, ctx, who, action, exc, client_address(request))
        raise HTTPException(503, str(exc)) from None
    except ImunbanError as exc:
        raise HTTPException(400, str(exc)) from None
    await run_in_threadpool(actions.audit, ctx, who, action, n, detail, client_address(request))
    return _ok(answer)


def _version(body: dict[str, Any]) -> tuple[int | None, str]:
    """The optional ``version`` of a cancel or reschedule (validated, 400 naming it), and its audit text."""
    version = validate_version(body.get("version"), "version")
    return version, "" if version is None else f", version {version}"


def _dead_run(verb: str) -> ActionRun:
    def run(ctx: AppContext, body: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
        if body.get("all") is True:
            code = body.get("code")
            flt = dead_filter(None if code is None else str(code), body.get("group_id"))
            chosen = f"all matching code={flt.code} group={flt.group_id or ''}"
            if verb == "purge":
                purged = actions.purge_matching(ctx, flt)
                return purged, chosen, {"purged": purged}
            return _replayed(actions.replay_matching(ctx, flt), chosen)
        pairs = _pairs(body)
        if verb == "purge":
            purged = actions.purge(ctx, pairs)
            return purged, f"{len(pairs)} selected", {"purged": purged}
        return _replayed(actions.replay(ctx, pairs), f"{len(pairs)} selected")

    return run


def _replayed(result: ReplayResult, chosen: str) -> tuple[int, str, dict[str, Any]]:
    skipped = f"; {result.skipped_text()}" if result.skipped else ""
    return result.replayed, chosen + skipped, result.as_dict()


async def api_replay(request: Request) -> Response:
    return await _act(request, "dead.replay", _dead_run("replay"))


async def api_purge(request: Request) -> Response:
    return await _act(request, "dead.purge", _dead_run("purge"))


async def api_cancel(request: Request) -> Response:
    def run(ctx: AppContext, body: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
        pairs = _pairs(body)
        version, said = _version(body)
        cancelled = actions.cancel(ctx, pairs, version)
        return cancelled, f"{len(pairs)} selected{said}", {"cancelled": cancelled}

    return await _act(request, "cancel", run)


async def api_reschedule(request: Request) -> Response:
    def run(ctx: AppContext, body: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
        pairs = _pairs(body)
        at = body.get("at")
        if not isinstance(at, str | int | float) or isinstance(at, bool):
            raise HTTPException(400, 'give "at": Unix seconds or ISO-8601 text')
        version, said = _version(body)
        moved = actions.reschedule(ctx, pairs, at, version)
        return moved, f"{len(pairs)} selected, at {at}{said}", {"rescheduled": moved}

    return await _act(request, "reschedule", run)


async def api_probe(request: Request) -> Response:
    def run(ctx: AppContext, body: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
        due_ms = actions.probe_now(ctx)
        if due_ms is None:
            return 0, "probe now: no hold", {"probe": 0, "message": "there is no hold to probe"}
        at = fmt_ms(due_ms)
        answer = {"probe": 1, "next_probe_ms": due_ms, "next_probe_at": at, "message": f"next probe allowed at {at}"}
        return 1, f"probe now: next probe allowed at {at}", answer

    return await _act(request, "probe", run)


# -- server-sent events -------------------------------------------------------------------------


def _event(name: str, payload: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


def _stream(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers={"x-accel-buffering": "no"})


async def events_overview(request: Request) -> Response:
    ctx = app_ctx(request)
    limit = int_param(request.query_params.get("limit"), 0)  # 0: until the client goes away

    async def gen() -> AsyncIterator[str]:
        sent = 0
        while not await request.is_disconnected():
            yield _event("overview", await run_in_threadpool(data.overview, ctx))
            sent += 1
            if limit and sent >= limit:
                return
            await asyncio.sleep(OVERVIEW_EVERY_S)

    return _stream(gen())


async def events_outcomes(request: Request) -> Response:
    ctx = app_ctx(request)
    limit = int_param(request.query_params.get("limit"), 0)
    after = request.query_params.get("after") or None

    async def gen() -> AsyncIterator[str]:
        last, sent = after, 0
        if last is None:
            last = (await run_in_threadpool(data.outcomes, ctx, None, 1))["last_id"] or "0-0"
        while not await request.is_disconnected():
            page = await run_in_threadpool(data.outcomes, ctx, last, 200)
            last = page["last_id"]
            yield _event("outcomes", page["entries"])
            sent += 1
            if limit and sent >= limit:
                return
            await asyncio.sleep(OUTCOMES_EVERY_S)

    return _stream(gen())


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
