"""``imunban worker`` and ``imunban redis status|stop``."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import socket

from imunban.local import embedded
from imunban.logs import config_line, effective_config, json_line, setup_logging
from imunban.settings import Settings
from imunban.version import VERSION


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("worker", help="deliver unbans: Celery worker + pump; run as many as you like")
    p.add_argument("--concurrency", "-c", type=int, default=None,
                   help="delivery threads in this process (default IMUNBAN_CONCURRENCY, 8)")  # fmt: skip
    p.add_argument("--name", default=None, help="Celery node name (default imunban-PID@HOST)")
    p.set_defaults(handler=run_worker)

    r = sub.add_parser("redis", help="the embedded Redis server used when IMUNBAN_REDIS_URL is unset")
    r.add_argument("action", choices=("status", "stop"))
    r.set_defaults(handler=run_redis)


def run_worker(args: argparse.Namespace) -> int:
    # Celery and kombu load here, for this command only: `imunban status` and the others start without them.
    import celery.apps.worker as celery_worker
    from celery import signals

    from imunban_celery.app import create_celery
    from imunban_celery.broker import DELIVERY_GATE
    from imunban_celery.context import context_of
    from imunban_celery.names import INTAKE_THREADS

    # Missing credentials or a bad apps file stop the command before the embedded Redis starts, every
    # missing or bad variable named at once.
    settings = Settings.from_env(for_delivery=True)
    if args.concurrency is not None:
        if args.concurrency < 1:
            raise SystemExit("imunban: error: --concurrency must be >= 1")
        settings = dataclasses.replace(settings, concurrency=args.concurrency)
    setup_logging(settings)
    # Our handlers stay as they are: Celery configures logging only when nobody answers this signal.
    signals.setup_logging.connect(_keep_imunban_logging, weak=False)
    celery = create_celery(settings)
    # Opened now, not at the first task: missing credentials, a Redis that cannot be used (unreachable,
    # or an evicting maxmemory-policy) stop the command here with a clear error instead of inside
    # Celery's start-up.
    context = context_of(celery)
    context.deployment  # noqa: B018
    name = args.name or f"imunban-{os.getpid()}@{socket.gethostname()}"
    config = effective_config(context.settings, context.apps, worker=name, concurrency=settings.concurrency)
    logging.getLogger("imunban.worker").info(config_line(config), extra={"config": config, "version": VERSION})
    # JSON lines only in JSON mode: Celery's banner is plain text on stdout, and so are its shutdown notices.
    quiet = ["--quiet"] if settings.log_format == "json" else []
    if quiet:
        celery_worker.safe_say = _say_as_json
    DELIVERY_GATE.cap = settings.concurrency
    celery.worker_main(
        [
            *quiet,
            "worker",
            "--pool=threads",
            # IMUNBAN_CONCURRENCY delivery runs at most, and INTAKE_THREADS more threads that only intake
            # gets: a producer's message never waits for a thread held by a delivery run (broker.DELIVERY_GATE).
            f"--concurrency={settings.concurrency + INTAKE_THREADS}",
            f"--queues={','.join(context.worker_queues())}",
            f"--hostname={name}",
            f"--loglevel={settings.log_level}",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )
    return 0


def _keep_imunban_logging(**kwargs: object) -> None:
    """Celery's setup_logging signal: logging is configured already (imunban.logs.setup_logging)."""


def _say_as_json(msg: str, f: object = None) -> None:
    """Celery's ``safe_say`` (it writes "worker: Warm shutdown" straight to stdout) as a JSON line on stderr.

    Called from a signal handler: one os.write, no logging lock.
    """
    with contextlib.suppress(OSError):
        os.write(2, json_line("celery.apps.worker", logging.INFO, msg).encode())


def run_redis(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if settings.redis_url is not None:
        print("IMUNBAN_REDIS_URL is set: imunban does not manage that server.")
        return 0
    if args.action == "stop":
        stopped = embedded.stop(settings.data_dir)
        folder, _ = embedded.status(settings.data_dir)
        print(f"embedded redis {'stopped' if stopped else 'was not running'} (data in {folder})")
        return 0
    folder, url = embedded.status(settings.data_dir)
    print(f"embedded redis: {'running at ' + url if url else 'not running'} (data in {folder})")
    return 0
