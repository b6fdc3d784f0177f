"""The naive baseline ``imunban bench`` compares against: one Celery task per member.

Not part of imunban's delivery path. Each ``bench.naive_unban(group_id, member)`` task acquires the
SAME shared :class:`~worker.limiter.RedisRateLimiter` (same key, same rate) as imunban's workers and
calls :meth:`~worker.api.ApiClient.unban` with one member, so the two designs differ only in the
unit of work. Run it with::

    python -m celery -A tasks.naive:app worker -P threads -c 8

``python -m tasks.naive publish --task naive|unban --count N --groups G`` publishes N messages with
one ``apply_async`` per member (``bench.naive_unban``, or ``imunban.unban`` with ``members=[m]``)
and prints one JSON line ``{"task", "count", "seconds", "per_s"}``; the benchmark runs it in a
subprocess so that the ``worker`` package never imports Celery.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from celery import Celery

from worker.api import ApiClient
from worker.connection import connect, redis_url
from worker.errors import RateLimitedError, RetryableError
from worker.keys import Keys
from worker.limiter import RedisRateLimiter
from worker.settings import Settings

NAIVE_QUEUE = "bench.naive"
NAIVE_TASK = "bench.naive_unban"

_lock = threading.Lock()
_engines: dict[int, tuple[RedisRateLimiter, ApiClient]] = {}


def _engine(app: Celery) -> tuple[RedisRateLimiter, ApiClient]:
    """One limiter and one pooled API client per process, shared by the pool's threads."""
    key = id(app)
    found = _engines.get(key)
    if found is None:
        with _lock:
            found = _engines.get(key)
            if found is None:
                settings: Settings = app.conf.imunban_settings
                sdkappid, _, _ = settings.require_credentials()
                limiter = RedisRateLimiter(
                    connect(settings), Keys(settings.key_prefix), sdkappid, settings.rate_limit_per_s
                )
                found = _engines[key] = (limiter, ApiClient(settings))
    return found


def naive_unban(app: Celery, task: Any, group_id: str, member: str) -> None:
    """Reserve a slot of the shared limiter, then unban one member; retry transient failures."""
    limiter, api = _engine(app)
    limiter.acquire()
    try:
        api.unban(group_id, [member])
    except RateLimitedError as exc:
        limiter.penalize()
        raise task.retry(exc=exc, countdown=0) from exc
    except RetryableError as exc:
        raise task.retry(exc=exc, countdown=1) from exc


def create_naive_app(settings: Settings | None = None) -> Celery:
    """A Celery app with Celery's usual defaults and one task per member on queue ``bench.naive``."""
    settings = settings or Settings.from_env()
    app = Celery("imunban-naive", broker=redis_url(settings), set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=NAIVE_QUEUE,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        imunban_settings=settings,
    )

    def naive_task(task: Any, group_id: str, member: str) -> None:
        naive_unban(app, task, group_id, member)

    app.task(name=NAIVE_TASK, bind=True, max_retries=None, ignore_result=True)(naive_task)
    return app


def publish(task: str, count: int, groups: int, settings: Settings | None = None) -> dict[str, Any]:
    """Publish ``count`` messages, one ``apply_async`` per member, and time it (connection set up first)."""
    settings = settings or Settings.from_env()
    if task == "naive":
        app = create_naive_app(settings)
        target = app.tasks[NAIVE_TASK]

        def kwargs(group_id: str, member: str) -> dict[str, Any]:
            return {"group_id": group_id, "member": member}
    else:
        from tasks.app import create_app

        app = create_app(settings)
        target = app.tasks["imunban.unban"]

        def kwargs(group_id: str, member: str) -> dict[str, Any]:
            return {"group_id": group_id, "members": [member]}

    per_group = max(1, -(-count // groups))
    names = [(f"bench-{i // per_group}", f"user_{i % per_group:06d}") for i in range(count)]
    # The first message opens the connection and declares the queue; it is counted but not timed.
    target.apply_async(kwargs=kwargs(*names[0]))
    started = time.perf_counter()
    for group_id, member in names[1:]:
        target.apply_async(kwargs=kwargs(group_id, member))
    seconds = time.perf_counter() - started
    timed = max(1, count - 1)
    return {"task": task, "count": count, "seconds": seconds, "per_s": timed / seconds if seconds > 0 else None}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.naive", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("publish", help="publish N messages with one apply_async per member; print JSON")
    p.add_argument("--task", choices=("naive", "unban"), default="naive")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--groups", type=int, default=100)
    args = parser.parse_args(argv)
    if args.count < 1 or args.groups < 1:
        parser.error("--count and --groups must be >= 1")
    print(json.dumps(publish(args.task, args.count, args.groups)))
    return 0


def __getattr__(name: str) -> Any:
    # `celery -A tasks.naive:app` looks up `app`; build it on first use, not at import.
    if name == "app":
        globals()["app"] = created = create_naive_app()
        return created
    raise AttributeError(name)


if __name__ == "__main__":
    sys.exit(main())
