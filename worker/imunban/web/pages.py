"""The console's HTML pages (GET, read-only) and the form actions behind their buttons (POST)."""

from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from imunban.deadletter import ReplayResult
from imunban.errors import ImunbanError
from imunban.stats import status_of_apps
from imunban.validation import validate_group_id, validate_member
from imunban.web import actions, data
from imunban.web.auth import COOKIE, LOCAL, SESSION_S, csrf_ok, same_origin
from imunban.web.common import (
    app_ctx,
    check_action,
    client_address,
    console,
    first,
    fmt_ms,
    form_token,
    int_param,
    principal_of,
    read_form,
)
from imunban.web.context import AppContext

#: What a finished action says on the page it returns to (fixed texts: nothing from the query is echoed).
DONE = {
    "replay": "replayed {n} dead letter(s): due now, through the normal path",
    "purge": "purged {n} dead letter(s)",
    "cancel": "cancelled {n} request(s)",
    "reschedule": "rescheduled {n} request(s)",
    "probe": "next probe allowed at {at}: the pump sends it then (never sooner than the last probe plus the "
    "hold's minimum interval)",
    "noprobe": "there is no hold to probe",
}
#: Added to the replay's flash when dead letters were skipped (``skipped`` in the query, a number).
SKIPPED = "; skipped {k}: cancelled, superseded or pending again since they died (nothing ended comes back)"
PAGE = 50


def _cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        COOKIE, value, max_age=SESSION_S, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def render(request: Request, template: str, ctx: AppContext, page: str, **context: Any) -> Response:
    """A page with what every page shows: the app, who you are, the hold banner, the CSRF token."""
    con = console(request)
    who = principal_of(request)
    csrf, new_cookie = who.csrf, None
    if who.via == "loopback":
        # No tokens configured: give the browser a session so its actions carry a CSRF token too.
        new_cookie, csrf = con.authority.new_session(LOCAL)
    done = request.query_params.get("done")
    n = int_param(request.query_params.get("n"), 0)
    response = con.templates.TemplateResponse(
        request,
        template,
        {
            "ctx": ctx,
            "apps": list(con.apps.values()),
            # The app in every link's query (several apps only: a single-app console's links stay as they were).
            "aq": urlencode({"app": ctx.name}) if len(con.apps) > 1 else "",
            "who": who,
            "csrf": csrf,
            "page": page,
            "hold": ctx.hold.get(),
            "flash": _flash(request, done, n),
            **context,
        },
    )
    if new_cookie:
        _cookie(response, request, new_cookie)
    return response


def _flash(request: Request, done: str | None, n: int) -> str | None:
    """The fixed text of a finished action, with numbers from the query only (nothing else is echoed)."""
    if done not in DONE:
        return None
    q = request.query_params
    text = DONE[done].format(n=n, at=fmt_ms(int_param(q.get("at"), 0)))
    skipped = int_param(q.get("skipped"), 0)
    return text + SKIPPED.format(k=skipped) if done == "replay" and skipped else text


async def overview_page(request: Request) -> Response:
    ctx = app_ctx(request)
    doc = await run_in_threadpool(data.overview, ctx)
    apps = console(request).apps
    totals = None
    if len(apps) > 1:  # every app side by side, and their totals (the document of `imunban status --json`)
        totals = await run_in_threadpool(status_of_apps, ctx.client, [a.keys for a in apps.values()])
    return render(request, "overview.html", ctx, "overview", doc=doc, totals=totals)


async def trace_page(request: Request) -> Response:
    ctx = app_ctx(request)
    group, member = request.query_params.get("group_id", ""), request.query_params.get("member", "")
    result, error = None, None
    if group or member:
        try:
            deep = request.query_params.get("deep") == "1"
            found = partial(data.member_trace, deep=deep)
            result = await run_in_threadpool(found, ctx, validate_group_id(group), validate_member(member))
        except ImunbanError as exc:
            error = str(exc)
    template = "trace_result.html" if request.headers.get("hx-request") else "trace.html"
    return render(request, template, ctx, "trace", group_id=group, member=member, result=result, error=error)


async def scheduled_page(request: Request) -> Response:
    ctx = app_ctx(request)
    q = request.query_params
    offset = int_param(q.get("offset"), 0)
    group = q.get("group_id", "")
    if group:
        page = await run_in_threadpool(data.group_page, ctx, validate_group_id(group), offset, PAGE)
        return render(request, "group.html", ctx, "scheduled", view=page, offset=offset, size=PAGE)
    groups = await run_in_threadpool(data.scheduled_groups, ctx, offset, PAGE)
    return render(request, "scheduled.html", ctx, "scheduled", view=groups, offset=offset, size=PAGE)


def dead_filter(code: str | None, group: str | None) -> data.DeadFilter:
    try:
        parsed = int(code) if code else None
    except ValueError:
        raise HTTPException(400, f"code must be an integer, got {code!r}") from None
    return data.DeadFilter(parsed, validate_group_id(group) if group else None)


async def dead_page(request: Request) -> Response:
    ctx = app_ctx(request)
    q = request.query_params
    flt = dead_filter(q.get("code"), q.get("group_id"))
    cursor = int_param(q.get("cursor"), 0)
    view = await run_in_threadpool(data.dead_page, ctx, flt, cursor, PAGE)
    template = "dead_table.html" if request.headers.get("hx-request") else "dead.html"
    return render(request, template, ctx, "dead", view=view, flt=flt)


async def holds_page(request: Request) -> Response:
    ctx = app_ctx(request)
    view = await run_in_threadpool(data.holds, ctx)
    return render(request, "holds.html", ctx, "holds", view=view)


async def outcomes_page(request: Request) -> Response:
    ctx = app_ctx(request)
    view = await run_in_threadpool(data.outcomes, ctx, None, 100)
    return render(request, "outcomes.html", ctx, "outcomes", view=view)


# -- sign-in ------------------------------------------------------------------------------------


async def login(request: Request) -> Response:
    con = console(request)
    templates = con.templates
    error = None
    if request.method == "POST":
        form = await read_form(request)
        role = con.authority.role_for_token(first(form, "token")) if same_origin(request) else None
        if role is not None:
            target = first(form, "next", "/")
            response = RedirectResponse(target if target.startswith("/") and not target.startswith("//") else "/", 303)
            cookie, _ = con.authority.new_session(role)
            _cookie(response, request, cookie)
            return response
        await asyncio.sleep(0.5)  # a wrong token costs time: guessing stays slow
        error = "That token is not valid for this console."
    context = {"error": error, "next": request.query_params.get("next", "/"), "open": con.authority.open}
    return templates.TemplateResponse(request, "login.html", context, status_code=401 if error else 200)


async def logout(request: Request) -> Response:
    form = await read_form(request)
    check_action_or_viewer(request, form)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


def check_action_or_viewer(request: Request, form: dict[str, list[str]]) -> None:
    """Signing out needs the CSRF token but not the operator role."""
    if not csrf_ok(principal_of(request), request, form_token(form)):
        raise HTTPException(403, "missing or wrong CSRF token")


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
            raise HTTPException(400, "bad selection") from None
        if not (isinstance(pair, list) and len(pair) == 2):
            raise HTTPException(400, "bad selection")
        items.append({"group_id": pair[0], "member": pair[1]})
    return actions.parse_pairs(items)


def _back(path: str, done: str, n: int, **params: str) -> RedirectResponse:
    query = urlencode({**{k: v for k, v in params.items() if v}, "done": done, "n": n})
    return RedirectResponse(f"{path}?{query}", status_code=303)


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
        raise HTTPException(400, str(exc)) from None
    if isinstance(done, ReplayResult):
        n = done.replayed
        if done.skipped:
            detail += f"; {done.skipped_text()}"
            skipped = str(done.skipped)
    else:
        n = done
    await run_in_threadpool(actions.audit, ctx, who, f"dead.{verb}", n, detail, client_address(request))
    code = "" if flt.code is None else str(flt.code)
    return _back("/dead", verb, n, app=first(form, "app"), code=code, group_id=flt.group_id or "", skipped=skipped)


async def scheduled_action(request: Request) -> Response:
    form = await read_form(request)
    who = check_action(request, form_token(form))
    ctx = app_ctx(request, first(form, "app") or None)
    verb = request.path_params["verb"]
    if verb not in ("cancel", "reschedule"):
        raise HTTPException(404)
    try:
        group = validate_group_id(first(form, "group_id"))
        pairs = _selected(form, group)
        version = actions.form_version(first(form, "version"))
        if verb == "cancel":
            n = await run_in_threadpool(actions.cancel, ctx, pairs, version)
        else:
            n = await run_in_threadpool(actions.reschedule, ctx, pairs, first(form, "at"), version)
    except actions.StoppedPartWay as exc:
        await run_in_threadpool(actions.audit_stopped, ctx, who, verb, exc, client_address(request))
        raise HTTPException(503, str(exc)) from None
    except ImunbanError as exc:
        raise HTTPException(400, str(exc)) from None
    said = "" if version is None else f", version {version}"
    await run_in_threadpool(
        actions.audit, ctx, who, verb, n, f"group {group}: {len(pairs)} selected{said}", client_address(request)
    )
    return _back("/scheduled", verb, n, app=first(form, "app"), group_id=group)


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
    return _back("/holds", "probe" if held else "noprobe", int(held), app=first(form, "app"), at=at)


ROUTES = [
    Route("/", overview_page),
    Route("/trace", trace_page),
    Route("/scheduled", scheduled_page),
    Route("/dead", dead_page),
    Route("/holds", holds_page),
    Route("/outcomes", outcomes_page),
    Route("/login", login, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/actions/dead/{verb:str}", dead_action, methods=["POST"]),
    Route("/actions/scheduled/{verb:str}", scheduled_action, methods=["POST"]),
    Route("/actions/probe", probe_action, methods=["POST"]),
]
