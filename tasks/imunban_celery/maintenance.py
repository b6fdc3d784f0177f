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
from imunban.pump import Pump
from imunban.summary import Tally, run_summaries
from imunban_celery.context import context_of

log = logging.getLogger("imunban.pump")

#: After a failed tick, wait this long before the next (Redis away, a bug).
RETRY_S = 1.0


class PumpStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Start the pump thread with the worker; stop it with the worker."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pumps: list[Pump] = []

    def start(self, parent: Any) -> None:
        celery: Celery = parent.app
        deployment = context_of(celery).deployment
        start_metrics_server(deployment)
        # One pump thread per app: each waits on its own app's wake-ups and due times, so one app's
        # backlog, hold or Redis slot never delays another app's dispatch.
        for engine in deployment:
            suffix = "" if len(deployment) == 1 else f"-{engine.name}"
            self._pumps.append(engine.pump)
            thread = threading.Thread(target=self._run, args=(engine.pump,), name=f"imunban-pump{suffix}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, parent: Any) -> None:
        """Warm shutdown: stop the pumps, then deregister this worker (it must not show as silent for an hour)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for pump in self._pumps:
            pump.heartbeat.retire()  # one entry per process: the first removes it, the rest stop beating
        self._pumps = []

    def terminate(self, parent: Any) -> None:
        """Cold shutdown: the same, as far as it gets."""
        self.stop(parent)

    def _run(self, pump: Pump) -> None:
        while not self._stop.is_set():
            try:
                # A tick, then a blocking wait for a wake-up or the next due time (pump.py): no
                # fixed timer, so an idle worker costs a few round trips a second.
                pump.run_once()
            except StoreError as exc:
                log.error("pump: %s (retrying)", exc)
                self._stop.wait(RETRY_S)
            except Exception:  # the pump must outlive any single bad tick
                log.exception("pump tick failed")
                self._stop.wait(RETRY_S)


class SummaryStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """One INFO line per IMUNBAN_LOG_SUMMARY_S with what this worker delivered (imunban.summary)."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, parent: Any) -> None:
        context = context_of(parent.app)
        deployment, interval_s = context.deployment, context.settings.log_summary_s
        if not interval_s or not isinstance(deployment.observer, Tally):
            return
        self._thread = threading.Thread(
            target=run_summaries,
            args=(deployment.observer, deployment.names, interval_s, self._stop),
            name="imunban-summary",
            daemon=True,
        )
        self._thread.start()

    def stop(self, parent: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def register(celery: Celery) -> None:
    celery.steps["worker"].add(PumpStep)
    celery.steps["worker"].add(SummaryStep)
