"""The console's HTML pages (GET, read-only) and sign-in; the form actions behind their buttons are forms.py."""

from __future__ import annotations

import asyncio
import math
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from imunban.trace import kept_text
from imunban.validation import validate_group_id
from imunban.web import data, params
from imunban.web.auth import COOKIE, LOCAL, SESSION_S, csrf_ok, same_origin
from imunban.web.common import (
    app_ctx,
    client_address,
    console,
    first,
    fmt_ms,
    form_token,
    principal_of,
    read_form,
)
from imunban.web.context import AppContext
from imunban.web.params import MAX_EPOCH_MS
from imunban.web.prefix import root_of

#: What a finished action says on the page it returns to (fixed texts: nothing from the query is echoed).
DONE = {
    "replay": "replayed {n} dead letter(s): due now, through the normal path",
    "purge": "purged {n} dead letter(s)",
    "cancel": "cancelled {n} request(s)",
    "reschedule": "rescheduled {n} request(s)",
    "send-now": "sent {n} request(s) now: due at once, through the normal path and the rate limit",
    "probe": "next probe allowed at {at}: the pump sends it then (never sooner than the last probe plus the "
    "hold's minimum interval)",
    "noprobe": "there is no hold to probe",
    "pause": "paused delivery of this app: nothing is sent until someone resumes it; its requests stay queued",
    "repause": "delivery was paused already: the reason is updated",
    "resume": "resumed delivery: due requests go out now",
    "noresume": "delivery was not paused",
    "limit": "rate limit set: every worker applies it within 1 s",
    "unlimit": "rate limit back to the configured one: every worker applies it within 1 s",
}
#: Added to the replay's flash when dead letters were skipped (``skipped`` in the query, a number).
SKIPPED = "; skipped {k}: cancelled, superseded or pending again since they died (nothing ended comes back)"
PAGE = 50
FAILED_SIGN_IN_DELAY_S = 0.5


def _cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        COOKIE, value, max_age=SESSION_S, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


async def render(request: Request, template: str, ctx: AppContext, page: str, **context: Any) -> Response:
    """A page with what every page shows: the app, who you are, the hold and state banners, the CSRF token."""
    con = console(request)
    who = principal_of(request)
    csrf, new_cookie = who.csrf, None
    if who.via == "loopback":
        # No tokens configured: give the browser a session so its actions carry a CSRF token too.
        new_cookie, csrf = con.authority.new_session(LOCAL)
    done = params.choice(request, "done", tuple(DONE))
    n = params.integer(request, "n", 0)
    if "state" not in context and not request.headers.get("hx-request"):  # htmx fragments show no banner
        context["state"] = (await run_in_threadpool(data.app_status, ctx))["state"]  # the overview passes its own
    context["banner"] = data.banner(context.get("state"))
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
    text = DONE[done].format(n=n, at=fmt_ms(params.integer(request, "at", 0, high=MAX_EPOCH_MS)))
    skipped = params.integer(request, "skipped", 0)
    return text + SKIPPED.format(k=skipped) if done == "replay" and skipped else text


async def overview_page(request: Request) -> Response:
    ctx = app_ctx(request)
    doc = await run_in_threadpool(data.overview, ctx)
    con = console(request)
    totals = None
    if len(con.apps) > 1:  # every app side by side, and their totals (the document of `imunban status --json`)
        totals = await run_in_threadpool(data.all_status, con.deployment)
    return await render(request, "overview.html", ctx, "overview", doc=doc, totals=totals, state=doc["state"])


async def trace_page(request: Request) -> Response:
    """One request (group and member), or the member alone: its requests in every group."""
    ctx = app_ctx(request)
    group, member = params.group_id(request), params.member(request)
    result = found = None
    if group and member:
        result = await run_in_threadpool(data.member_trace, ctx, group, member)
    elif member:
        found = await run_in_threadpool(data.member_requests, ctx, member)
    elif group:
        raise params.BadParam("member", "give the member too (or only the member, to find it in every group)")
    template = "trace_result.html" if request.headers.get("hx-request") else "trace.html"
    return await render(
        request,
        template,
        ctx,
        "trace",
        group_id=group or "",
        member=member or "",
        result=result,
        found=found,
        kept=kept_text(ctx.settings.trace_ttl_s),
    )


async def scheduled_page(request: Request) -> Response:
    ctx = app_ctx(request)
    offset, group = params.integer(request, "offset", 0), params.group_id(request)
    if group:
        page = await run_in_threadpool(data.group_page, ctx, group, offset, PAGE)
        return await render(request, "group.html", ctx, "scheduled", view=page, offset=offset, size=PAGE)
    groups = await run_in_threadpool(data.scheduled_groups, ctx, offset, PAGE)
    return await render(request, "scheduled.html", ctx, "scheduled", view=groups, offset=offset, size=PAGE)


def dead_filter(code: object, group: object) -> data.DeadFilter:
    """The dead-letter filter of a query, a form or a JSON body (``code``, ``group_id``; empty: any)."""
    group_id = None if group in (None, "") else params.checked(validate_group_id, group, "group_id")
    return data.DeadFilter(params.code(code), group_id)


async def dead_page(request: Request) -> Response:
    ctx = app_ctx(request)
    flt = dead_filter(params.raw(request, "code"), params.raw(request, "group_id"))
    cursor = params.integer(request, "cursor", 0)
    view = await run_in_threadpool(data.dead_page, ctx, flt, cursor, PAGE)
    template = "dead_table.html" if request.headers.get("hx-request") else "dead.html"
    return await render(request, template, ctx, "dead", view=view, flt=flt)


async def holds_page(request: Request) -> Response:
    ctx = app_ctx(request)
    view = await run_in_threadpool(data.holds, ctx)
    return await render(request, "holds.html", ctx, "holds", view=view)


async def outcomes_page(request: Request) -> Response:
    ctx = app_ctx(request)
    view = await run_in_threadpool(data.outcomes, ctx, None, 100)
    return await render(request, "outcomes.html", ctx, "outcomes", view=view)


# -- sign-in ------------------------------------------------------------------------------------


async def login(request: Request) -> Response:
    con = console(request)
    templates = con.templates
    context = {"error": None, "next": params.next_path(request), "open": con.authority.open}
    if request.method != "POST":
        return templates.TemplateResponse(request, "login.html", context)
    address = client_address(request)
    if (wait_s := con.throttle.blocked_for(address)) > 0:  # before reading the form: a blocked guess learns nothing
        retry_after = str(math.ceil(wait_s))
        context["error"] = (
            f"Too many failed sign-ins from this address or on this console: try again in {retry_after} s."
        )
        return templates.TemplateResponse(request, "login.html", context, 429, {"retry-after": retry_after})
    form = await read_form(request)
    cross_site = not same_origin(request)
    role = None if cross_site else con.authority.role_for_token(first(form, "token"))
    if role is not None:
        target = first(form, "next", "/")
        response = RedirectResponse(root_of(request.scope) + (target if params.local_path(target) else "/"), 303)
        cookie, _ = con.authority.new_session(role)
        _cookie(response, request, cookie)
        return response
    if not cross_site:  # another site's form posted through a visitor's browser is not this address guessing
        con.throttle.failed(address)
    await asyncio.sleep(FAILED_SIGN_IN_DELAY_S)  # a wrong token costs time as well
    context["error"] = "That token is not valid for this console."
    return templates.TemplateResponse(request, "login.html", context, status_code=401)


async def logout(request: Request) -> Response:
    """Sign out: the session is revoked on the server (a copy of the cookie stops working), then forgotten."""
    form = await read_form(request)
    check_action_or_viewer(request, form)
    who = principal_of(request)
    if who.via == "session":
        await run_in_threadpool(console(request).revocations.revoke, who.session_id)
    response = RedirectResponse(root_of(request.scope) + "/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


def check_action_or_viewer(request: Request, form: dict[str, list[str]]) -> None:
    """Signing out needs the CSRF token but not the operator role."""
    if not csrf_ok(principal_of(request), request, form_token(form)):
        raise HTTPException(403, "missing or wrong CSRF token")


ROUTES = [
    Route("/", overview_page),
    Route("/trace", trace_page),
    Route("/scheduled", scheduled_page),
    Route("/dead", dead_page),
    Route("/holds", holds_page),
    Route("/outcomes", outcomes_page),
    Route("/login", login, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
]
