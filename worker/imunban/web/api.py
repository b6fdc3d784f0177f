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
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from imunban.deadletter import ReplayResult
from imunban.errors import ImunbanError, StoreError
from imunban.livelimit import validate_rate
from imunban.pause import validate_reason
from imunban.validation import validate_version
from imunban.web import actions, data, params
from imunban.web.common import (
    app_ctx,
    check_action,
    client_address,
    console,
    fmt_ms,
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
    """Exactly the document ``imunban status --json`` prints: the totals (with the worst app's state) and each
    app's document and state under ``apps``; with ``?app=NAME``, that app's alone (``imunban status --app NAME``)."""
    if params.raw(request, "app"):
        return _ok(await run_in_threadpool(data.app_status, app_ctx(request)))
    return _ok(await run_in_threadpool(data.all_status, console(request).deployment))


async def api_overview(request: Request) -> Response:
    return _ok(await run_in_threadpool(data.overview, app_ctx(request)))


async def api_throughput(request: Request) -> Response:
    """The per-minute throughput of the last 24 h, kept in Redis (the same on every replica), and the limit."""
    return _ok(await run_in_threadpool(data.throughput, app_ctx(request)))


async def api_trace(request: Request) -> Response:
    """``imunban trace --json``: one request with ``group_id`` and ``member``; with ``member`` alone, the
    member's requests in every group (``imunban trace --member M --json``)."""
    ctx = app_ctx(request)
    group, member = params.group_id(request), params.member(request)
    if member is None:
        raise params.BadParam("member", "required")
    if group is None:
        return _ok(await run_in_threadpool(data.member_requests, ctx, member))
    return _ok(await run_in_threadpool(data.member_trace, ctx, group, member))


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


#: An action's work: (count for the audit, what the audit says was chosen, the JSON answer).
ActionRun = Callable[[AppContext, dict[str, Any]], tuple[int, str, dict[str, Any]]]


async def _act(request: Request, action: str, run: ActionRun) -> Response:
    who = check_action(request)  # a cookie session needs X-CSRF-Token; bearer callers do not
    body = await read_json(request)
    ctx = app_ctx(request, body.get("app"))
    try:
        n, detail, answer = await run_in_threadpool(run, ctx, body)
    except actions.StoppedPartWay as exc:
        # What was applied before the error is audited with it: the stream says what really changed.
        await run_in_threadpool(actions.audit_stopped, ctx, who, action, exc, client_address(request))
        raise HTTPException(503, str(exc)) from None
    except ImunbanError as exc:
        raise params.bad_request(exc) from None
    await run_in_threadpool(actions.audit, ctx, who, action, n, detail, client_address(request))
    return _ok(answer)


def _version(body: dict[str, Any]) -> tuple[int | None, str]:
    """The optional ``version`` of a cancel or reschedule (validated, 400 naming it), and its audit text."""
    version = validate_version(body.get("version"), "version")
    return version, "" if version is None else f", version {version}"


def _dead_run(verb: str) -> ActionRun:
    def run(ctx: AppContext, body: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
        if body.get("all") is True:
            flt = dead_filter(body.get("code"), body.get("group_id"))
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
            raise params.BadParam("at", "give Unix seconds or ISO-8601 text")
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


async def api_pause(request: Request) -> Response:
    """``{"reason": TEXT[, "app": NAME]}``: stop delivery of the app until resumed (audited in the same step)."""
    who = check_action(request)
    body = await read_json(request)
    ctx = app_ctx(request, body.get("app"))
    try:
        reason = validate_reason(body.get("reason"))
        newly = await run_in_threadpool(actions.pause, ctx, who, reason, client_address(request))
    except StoreError as exc:
        raise HTTPException(503, str(exc)) from None
    except ImunbanError as exc:
        raise params.bad_request(exc) from None
    return _ok({"paused": 1, "newly": int(newly), "reason": reason, "app": ctx.name})


async def api_resume(request: Request) -> Response:
    """``{["app": NAME]}``: restart delivery of a paused app at once (audited in the same step)."""
    who = check_action(request)
    body = await read_json(request)
    ctx = app_ctx(request, body.get("app"))
    try:
        ended = await run_in_threadpool(actions.resume, ctx, who, client_address(request))
    except StoreError as exc:
        raise HTTPException(503, str(exc)) from None
    if ended is None:
        return _ok({"resumed": 0, "app": ctx.name, "message": "delivery was not paused"})
    paused_ms = ended.end_ms - ended.since_ms
    return _ok(
        {"resumed": 1, "app": ctx.name, "since_ms": ended.since_ms, "paused_ms": paused_ms, "reason": ended.reason}
    )


async def api_limit(request: Request) -> Response:
    """``{"rate": CALLS_PER_S | "reset": true[, "app": NAME]}``: set or revert the app's live rate limit (audited)."""
    who = check_action(request)
    body = await read_json(request)
    ctx = app_ctx(request, body.get("app"))
    reset = body.get("reset") is True
    try:
        rate = None if reset else validate_rate(body.get("rate"))
        before = await run_in_threadpool(actions.set_limit, ctx, who, rate, client_address(request))
    except StoreError as exc:
        raise HTTPException(503, str(exc)) from None
    except ImunbanError as exc:
        raise params.bad_request(exc) from None
    state = await run_in_threadpool(ctx.engine.limit.get)
    return _ok({"app": ctx.name, "replaced_per_s": before, **state.as_dict()})


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
    Route("/api/throughput", api_throughput),
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
    Route("/api/pause", api_pause, methods=["POST"]),
    Route("/api/limit", api_limit, methods=["POST"]),
    Route("/api/resume", api_resume, methods=["POST"]),
    Route("/events/overview", events_overview),
    Route("/events/outcomes", events_outcomes),
]
