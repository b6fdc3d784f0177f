"""One engine :class:`~worker.runtime.Runtime` per worker process, built on first use."""

from __future__ import annotations

import threading

from celery import Celery

from tasks.app import INTERNAL_QUEUE, settings_of
from worker.runtime import Runtime, build_runtime

_lock = threading.Lock()
_runtimes: dict[int, Runtime] = {}


def runtime(app: Celery) -> Runtime:
    """The process's runtime for ``app``; its pump submits delivery runs as ``imunban.deliver`` tasks."""
    key = id(app)
    found = _runtimes.get(key)
    if found is not None:
        return found
    with _lock:
        if key not in _runtimes:

            def submit(group_id: str, slot: int, probe: bool) -> None:
                app.send_task(
                    "imunban.deliver",
                    kwargs={"group_id": group_id, "slot": slot, "probe": probe},
                    queue=INTERNAL_QUEUE,
                )

            from worker.metrics import observer_for

            settings = settings_of(app)
            _runtimes[key] = build_runtime(settings, submit, observer=observer_for(settings))
        return _runtimes[key]
