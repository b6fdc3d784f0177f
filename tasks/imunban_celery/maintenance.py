"""Periodic maintenance inside every worker: the pump (promote, reap, dispatch, probe).

It runs as a Celery bootstep thread in each ``imunban worker`` process, so there is no separate
beat process to remember, and running it on every node at once is safe (see :mod:`imunban.pump`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery, bootsteps

from imunban.errors import StoreError
from imunban.metrics import start_metrics_server
from imunban_celery.context import context_of

log = logging.getLogger("imunban.pump")

#: How often the pump looks for due work; bounds the extra latency of an immediate request.
TICK_S = 0.05


class PumpStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Start the pump thread with the worker; stop it with the worker."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, parent: Any) -> None:
        app: Celery = parent.app
        start_metrics_server(context_of(app).runtime)
        self._thread = threading.Thread(target=self._run, args=(app,), name="imunban-pump", daemon=True)
        self._thread.start()

    def stop(self, parent: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self, app: Celery) -> None:
        rt = context_of(app).runtime
        while not self._stop.is_set():
            try:
                rt.pump.tick()
            except StoreError as exc:
                log.error("pump: %s (retrying)", exc)
                self._stop.wait(1.0)
            except Exception:  # the pump must outlive any single bad tick
                log.exception("pump tick failed")
                self._stop.wait(1.0)
            self._stop.wait(TICK_S)


def register(app: Celery) -> None:
    app.steps["worker"].add(PumpStep)
