"""The runbook page: every entry of :mod:`imunban.runbook` (states, then ErrorCode classes) under its anchor.

Holds, dead letters and state banners link here (``/runbook#code-hold``); docs/runbook.md is the long form.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from imunban import runbook
from imunban.web.common import app_ctx
from imunban.web.pages import render


async def runbook_page(request: Request) -> Response:
    states = [(name, runbook.STATE_ENTRIES[name]) for name in runbook.STATES]
    codes = [(name, runbook.CODE_ENTRIES[name]) for name in runbook.CODE_CLASSES]
    return await render(request, "runbook.html", app_ctx(request), "runbook", states=states, codes=codes,
                        doc=runbook.DOC)  # fmt: skip


ROUTES = [Route("/runbook", runbook_page)]
