"""The naive baseline ``imunban bench`` compares against: one Celery task per member.

Not part of imunban's delivery path. Each ``bench.naive_unban(group_id, member)`` task acquires the
SAME shared :class:`~imunban.limiter.RedisRateLimiter` (same key, same rate) as imunban's workers and
calls :meth:`~imunban.api.ApiClient.unban` with one member, so the two designs differ only in the
unit of work. Run it with::

    python -m celery -A imunban_celery.bench_naive:celery worker -P threads -c 8

``python -m imunban_celery.bench_naive publish --task naive|unban --count N --groups G`` publishes N messages with
one ``apply_async`` per member (``bench.naive_unban``, or ``imunban.unban`` with ``members=[m]``)
and prints one JSON line ``{"task", "count", "seconds", "per_s"}``; the benchmark runs it in a
subprocess so that the ``imunban`` package never imports Celery.
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

from imunban.delivery import UnbanApi
from imunban.deployment import open_deployment
from imunban.errors import RateLimitedError, RetryableError
from imunban.limiter import RedisRateLimiter
from imunban.local.embedded import resolve_settings
from imunban.settings import Settings
from imunban_celery.app import create_celery
from imunban_celery.context import base_conf
from imunban_celery.names import UNBAN_TASK

NAIVE_QUEUE = "bench.naive"
NAIVE_TASK = "bench.naive_unban"


class NaiveEngine:
    """The app's own limiter and pooled API client (imunban's, from its deployment), opened on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._built: tuple[RedisRateLimiter, UnbanApi] | None = None

    def get(self) -> tuple[RedisRateLimiter, UnbanApi]:
        if self._built is None:
            with self._lock:
                if self._built is None:
                    engine = open_deployment(self.settings).app()
                    self._built = (engine.limiter, engine.api)
        return self._built


def _engine(celery: Celery) -> tuple[RedisRateLimiter, UnbanApi]:
    engine: NaiveEngine = celery.conf.naive_engine
    return engine.get()


def naive_unban(celery: Celery, task: Any, group_id: str, member: str) -> None:
    """Reserve a slot of the shared limiter, then unban one member; retry transient failures."""
    limiter, api = _engine(celery)
    limiter.acquire()
    try:
        api.unban(group_id, [member])
    except RateLimitedError as exc:
        limiter.penalize()
        raise task.retry(exc=exc, countdown=0) from exc
    except RetryableError as exc:
        raise task.retry(exc=exc, countdown=1) from exc


def create_naive_celery(settings: Settings | None = None) -> Celery:
    """A Celery app with Celery's usual defaults and one task per member on queue ``bench.naive``."""
    settings = resolve_settings(settings or Settings.from_env())
    celery = Celery("imunban-naive", broker=settings.redis_url, set_as_current=False)
    celery.conf.update(base_conf(settings), task_default_queue=NAIVE_QUEUE)
    celery.conf.naive_engine = NaiveEngine(settings)

    def naive_task(task: Any, group_id: str, member: str) -> None:
        naive_unban(celery, task, group_id, member)

    celery.task(name=NAIVE_TASK, bind=True, max_retries=None, ignore_result=True)(naive_task)
    return celery


def publish(task: str, count: int, groups: int, settings: Settings | None = None) -> dict[str, Any]:
    """Publish ``count`` messages, one ``apply_async`` per member, and time it (connection set up first)."""
    settings = settings or Settings.from_env()
    if task == "naive":
        celery = create_naive_celery(settings)
        target = celery.tasks[NAIVE_TASK]

        def kwargs(group_id: str, member: str) -> dict[str, Any]:
            return {"group_id": group_id, "member": member}
    else:
        celery = create_celery(settings)
        target = celery.tasks[UNBAN_TASK]

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
    parser = argparse.ArgumentParser(prog="python -m imunban_celery.bench_naive", description=__doc__.splitlines()[0])
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
    # `celery -A imunban_celery.bench_naive:celery` looks it up; build it on first use, not at import.
    if name == "celery":
        globals()["celery"] = created = create_naive_celery()
        return created
    raise AttributeError(name)


if __name__ == "__main__":
    sys.exit(main())
