"""``imunban web``: serve the operator console and its JSON API (docs/console.md)."""

from __future__ import annotations

import argparse
import sys

from imunban.cli.common import bounded_int, open_deployment
from imunban.errors import ConfigError
from imunban.logs import setup_logging
from imunban.settings import Settings, check_root_path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8321


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "web",
        help="the operator console in the browser, and its JSON API",
        description=(
            "Serves the console: overview (live), trace, scheduled, dead letters, holds, outcomes. "
            "IMUNBAN_WEB_VIEWER_TOKEN may look, IMUNBAN_WEB_OPERATOR_TOKEN may also act; without a token "
            "it listens on loopback only."
        ),
    )
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    p.add_argument("--port", type=bounded_int(1, 65_535, what="a port"), default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT})")  # fmt: skip
    p.add_argument("--root-path", metavar="PREFIX", default=None,
                   help="path prefix when a reverse proxy serves the console under one, e.g. /imunban "
                        "(default IMUNBAN_WEB_ROOT_PATH; the proxy may strip it or pass it on)")  # fmt: skip
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn  # imported here: every other command starts without the web stack

    from imunban.web.app import create_app
    from imunban.web.auth import check_bind

    settings = Settings.from_env()
    check_bind(args.host, settings)  # before anything listens
    if args.root_path is not None:
        try:
            root = check_root_path(args.root_path)
        except ValueError as exc:
            raise ConfigError(f"--root-path: {exc}") from None
    else:
        root = settings.web_root_path
    setup_logging(settings)  # the console's warnings (weak tokens at start, failed stream reads) in the log format
    app = create_app(open_deployment(settings), root_path=root)
    roles = "open on loopback (no token set)" if settings.web_operator_token is None and \
        settings.web_viewer_token is None else "token sign-in"  # fmt: skip
    print(f"imunban web: http://{args.host}:{args.port}{root}/ ({roles})", file=sys.stderr)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,  # query strings carry group and member ids; the outcome stream has the audit trail
        timeout_graceful_shutdown=3,  # live streams never end by themselves
        server_header=False,
    )
    return 0
