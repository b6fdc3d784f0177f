"""The console's form actions: the POSTs behind its buttons (operator role, CSRF-checked, audited), each
redirecting back to the page it came from with what it did."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from imunban.deadletter import ReplayResult
from imunban.errors import ImunbanError, StoreError
from imunban.livelimit import validate_rate
from imunban.pause import validate_reason
from imunban.validation import validate_group_id
from imunban.web import actions, data, params
from imunban.web.common import (
    app_ctx,
    check_action,
    client_address,
    first,
    fmt_ms,
    form_token,
    read_form,
)
from imunban.web.context import AppContext
from imunban.web.pages import dead_filter
from imunban.web.prefix import root_of

# -- form actions -------------------------------------------------------------------------------


def _selected(form: dict[str, list[str]], group: str | None = None) -> list[actions.Pair]:
    """The one row whose button was pressed, else the ticked rows (JSON [group, member], or members of ``group``)."""
    values = form.get("one") or form.get("sel") or []
    items: list[Any] = []
    for value in values:
        if group is not None:
            items.append({"group_id": group, "member": value})
            continue
        try:
            pair = json.loads(value)
        except ValueError:
            raise params.BadParam("sel", "each selected row is a JSON [group_id, member]") from None
        if not (isinstance(pair, list) and len(pair) == 2):
            raise params.BadParam("sel", "each selected row is a JSON [group_id, member]")
        items.append({"group_id": pair[0], "member": pair[1]})
    return actions.parse_pairs(items)


def _back(request: Request, path: str, done: str, n: int, **params: str) -> RedirectResponse:
    """Back to the page ``path`` (under the console's prefix) with what was done."""
    query = urlencode({**{k: v for k, v in params.items() if v}, "done": done, "n": n})
    return RedirectResponse(f"{root_of(request.scope)}{path}?{query}", status_code=303)


def _dead_verb(
    ctx: AppContext, verb: str, flt: data.DeadFilter, pairs: list[actions.Pair] | None
) -> ReplayResult | int:
    """Replay or purge the selected dead letters, or (``pairs`` None) all that match ``flt``."""
    if verb == "replay":
        return actions.replay_matching(ctx, flt) if pairs is None else actions.replay(ctx, pairs)
    return actions.purge_matching(ctx, flt) if pairs is None else actions.purge(ctx, pairs)


async def dead_action(request: Request) -> Response:
    form = await read_form(request)
    who = check_action(request, form_token(form))
    ctx = app_ctx(request, first(form, "app") or None)
    verb = request.path_params["verb"]
    if verb not in ("replay", "purge"):
        raise HTTPException(404)
    flt = dead_filter(first(form, "code") or None, first(form, "group_id") or None)
    skipped = ""
    try:
        pairs: list[actions.Pair] | None = None
        if first(form, "scope") == "matching" and not form.get("one"):
            detail = f"all matching code={flt.code} group={flt.group_id or ''}"
        else:
            pairs = _selected(form)
            detail = "selected " + ", ".join(f"{g}/{m}" for g, m in pairs[:5]) + (" ..." if len(pairs) > 5 else "")
        done = await run_in_threadpool(_dead_verb, ctx, verb, flt, pairs)
    except actions.StoppedPartWay as exc:
        await run_in_threadpool(actions.audit_stopped, ctx, who, f"dead.{verb}", exc, client_address(request))
        raise HTTPException(503, str(exc)) from None
    except ImunbanError as exc:
        raise params.bad_request(exc) from None
    if isinstance(done, ReplayResult):
        n = done.replayed
        if done.skipped:
            detail += f"; {done.skipped_text()}"
            skipped = str(done.skipped)
    else:
        n = done
    await run_in_threadpool(actions.audit, ctx, who, f"dead.{verb}", n, detail, client_address(request))
    code = "" if flt.code is None else str(flt.code)
    return _back(
        request, "/dead", verb, n, app=first(form, "app"), code=code, group_id=flt.group_id or "", skipped=skipped
    )


async def scheduled_action(request: Request) -> Response:
    form = await read_form(request)
    who = check_action(request, form_token(form))
    ctx = app_ctx(request, first(form, "app") or None)
    verb = request.path_params["verb"]
    if verb not in ("cancel", "reschedule", "send-now"):
        raise HTTPException(404)
    try:
        group = validate_group_id(first(form, "group_id"))
        pairs = _selected(form, group)
        version = actions.form_version(first(form, "version"))
        if verb == "cancel":
            n = await run_in_threadpool(actions.cancel, ctx, pairs, version)
        elif verb == "send-now":
            n = await run_in_threadpool(actions.send_now, ctx, pairs, version)
        else:
            n = await run_in_threadpool(actions.reschedule, ctx, pairs, first(form, "at"), version)
    except actions.StoppedPartWay as exc:
        await run_in_threadpool(actions.audit_stopped, ctx, who, verb, exc, client_address(request))
        raise HTTPException(503, str(exc)) from None
    except ImunbanError as exc:
        raise params.bad_request(exc) from None
    said = "" if version is None else f", version {version}"
    await run_in_threadpool(
        actions.audit, ctx, who, verb, n, f"group {group}: {len(pairs)} selected{said}", client_address(request)
    )
    return _back(request, "/scheduled", verb, n, app=first(form, "app"), group_id=group)


async def probe_action(request: Request) -> Response:
    form = await read_form(request)
    who = check_action(request, form_token(form))
    ctx = app_ctx(request, first(form, "app") or None)
    try:
        due_ms = await run_in_threadpool(actions.probe_now, ctx)
    except actions.StoppedPartWay as exc:
        await run_in_threadpool(actions.audit_stopped, ctx, who, "probe", exc, client_address(request))
        raise HTTPException(503, str(exc)) from None
    held = due_ms is not None
    said = f"probe now: next probe allowed at {fmt_ms(due_ms)}" if held else "probe now: no hold"
    await run_in_threadpool(actions.audit, ctx, who, "probe", int(held), said, client_address(request))
    at = str(due_ms) if held else ""
    return _back(request, "/holds", "probe" if held else "noprobe", int(held), app=first(form, "app"), at=at)


async def pause_action(request: Request) -> Response:
    form = await read_form(request)
    who = check_action(request, form_token(form))
    ctx = app_ctx(request, first(form, "app") or None)
    try:
        reason = validate_reason(first(form, "reason"))
        newly = await run_in_threadpool(actions.pause, ctx, who, reason, client_address(request))
    except StoreError as exc:
        raise HTTPException(503, str(exc)) from None
    except ImunbanError as exc:
        raise params.bad_request(exc) from None
    return _back(request, "/holds", "pause" if newly else "repause", 1, app=first(form, "app"))


async def resume_action(request: Request) -> Response:
    form = await read_form(request)
    who = check_action(request, form_token(form))
    ctx = app_ctx(request, first(form, "app") or None)
    try:
        ended = await run_in_threadpool(actions.resume, ctx, who, client_address(request))
    except StoreError as exc:
        raise HTTPException(503, str(exc)) from None
    back = first(form, "back") or "/holds"
    back = back if back in ("/", "/holds") else "/holds"
    return _back(request, back, "resume" if ended else "noresume", int(bool(ended)), app=first(form, "app"))


async def limit_action(request: Request) -> Response:
    """Set the app's live rate limit (``rate``), or revert to the configured one (``reset``); audited."""
    form = await read_form(request)
    who = check_action(request, form_token(form))
    ctx = app_ctx(request, first(form, "app") or None)
    reset = bool(first(form, "reset"))
    try:
        rate = None if reset else validate_rate(first(form, "rate"))
        await run_in_threadpool(actions.set_limit, ctx, who, rate, client_address(request))
    except StoreError as exc:
        raise HTTPException(503, str(exc)) from None
    except ImunbanError as exc:
        raise params.bad_request(exc) from None
    return _back(request, "/holds", "unlimit" if reset else "limit", 1, app=first(form, "app"))


ROUTES = [
    Route("/actions/dead/{verb:str}", dead_action, methods=["POST"]),
    Route("/actions/scheduled/{verb:str}", scheduled_action, methods=["POST"]),
    Route("/actions/probe", probe_action, methods=["POST"]),
    Route("/actions/pause", pause_action, methods=["POST"]),
    Route("/actions/resume", resume_action, methods=["POST"]),
    Route("/actions/limit", limit_action, methods=["POST"]),
]
