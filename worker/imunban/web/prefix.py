"""The console under a path prefix (``imunban web --root-path /imunban``, IMUNBAN_WEB_ROOT_PATH).

Behind a reverse proxy at ``https://ops.example/imunban/`` every link, form action, asset, stream and
redirect must carry the prefix. :class:`RootPath` sets the ASGI ``root_path`` so Starlette routes on
the path below it, and the pages build every URL from ``R`` (the prefix; see
:func:`imunban.web.app.templates`). It takes both kinds of proxy: one that strips the prefix
(nginx ``proxy_pass http://console/;``) and one that passes it on.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class RootPath:
    """ASGI middleware: serve the app under ``root`` ('' = at the root, nothing changes)."""

    def __init__(self, app: ASGIApp, root: str = "") -> None:
        self.app = app
        self.root = root.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.root and scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            if not (path == self.root or path.startswith(self.root + "/")):
                path = self.root + path  # the proxy stripped the prefix: ASGI's path includes root_path
            scope = {**scope, "root_path": self.root, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)


def root_of(scope: Scope) -> str:
    """The prefix every URL of a page starts with ('' at the root); the same inside a mount (static files)."""
    found: str = scope.get("app_root_path", scope.get("root_path", ""))
    return found


def route_path(scope: Scope) -> str:
    """The request's path below the prefix (what the routes and the guard compare with)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root) :] or "/"
    return path
