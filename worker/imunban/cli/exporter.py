"""``imunban exporter``: the deployment's Redis-read metrics, served by a process that delivers nothing.

Every worker serves the same Redis-read series, but when every worker is down nobody does: the
exporter keeps reporting queue depths, the oldest due age and ``imunban_workers_alive 0``, so the
"no live worker while work is due" alert can fire (deploy/monitoring/alerts.yml). It reads no secret key.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

from imunban.settings import Settings

#: The exporter's port unless told otherwise (the workers' is IMUNBAN_METRICS_PORT, 9464 in compose).
DEFAULT_PORT = 9465


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "exporter", help="serve the Redis-read metrics without delivering: a watcher that outlives the workers"
    )
    p.add_argument("--host", default=None, help="address to bind (default IMUNBAN_METRICS_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to serve /metrics on (default {DEFAULT_PORT})")
    p.set_defaults(handler=run_exporter)


def run_exporter(args: argparse.Namespace) -> int:
    from imunban.cli.common import open_deployment
    from imunban.logs import config_line, effective_config, setup_logging
    from imunban.metrics import new_registry, serve
    from imunban.version import VERSION

    if not 0 <= args.port <= 65_535:
        raise SystemExit("imunban: error: --port must be between 0 and 65535")
    settings = Settings.from_env()
    setup_logging(settings)
    deployment = open_deployment(settings)
    host = args.host or settings.metrics_host
    config = effective_config(deployment.settings, deployment.catalog, role="exporter")
    log = logging.getLogger("imunban.exporter")
    log.info(config_line(config), extra={"config": config, "version": VERSION})
    serve(new_registry(), deployment, host, args.port)  # logs where it listens
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    stop.wait()  # Ctrl-C ends it too (imunban.cli.main)
    return 0
