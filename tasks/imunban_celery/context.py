"""The engine as one Celery app sees it: its settings and its lazily opened :class:`Deployment`.

The context is kept on the Celery object (``celery.conf.imunban``), so two Celery apps in one
process (tests, the demo) never share a deployment, and nothing is keyed by ``id(celery)``. In this
package ``celery`` is always the Celery object and ``app`` always a tenant (an SDKAppID's name).
"""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery

from imunban.apps import Apps
from imunban.deployment import Deployment, open_deployment
from imunban.fairness import FairShare
from imunban.metrics import observer_for
from imunban.runtime import prepare_worker
from imunban.settings import Settings
from imunban_celery.names import (
    DELIVER_TASK,
    INTERNAL_QUEUE,
    PUBLIC_QUEUE,
    WORKER_QUEUES,
    intake_queue,
    internal_queue,
)


class Context:
    """Settings and the deployment of one Celery app (opened on first use, once per process)."""

    def __init__(self, celery: Celery, settings: Settings) -> None:
        self.settings = settings
        #: The apps this deployment serves (IMUNBAN_APPS_FILE, or app ``default``); no key file is read.
        self.apps: Apps = settings.apps()
        self._celery = celery
        self._lock = threading.Lock()
        self._deployment: Deployment | None = None
        #: With several apps: each app's share of this process's delivery threads, weighted by its
        #: rate limit; a run beyond its share gives way to another app's run waiting in the broker.
        self.fairness: FairShare | None = None
        if len(self.apps) > 1:
            weights = {config.name: config.rate_limit_per_s for config in self.apps}
            self.fairness = FairShare(settings.concurrency, weights, self._run_waiting)

    @property
    def deployment(self) -> Deployment:
        """The process's deployment; its pumps submit delivery runs as ``imunban.deliver`` tasks.

        Opening it checks what a worker needs (every app's credentials, the memory policy) and
        moves a pre-apps store under ``default`` (:func:`imunban.runtime.prepare_worker`).
        """
        if self._deployment is None:
            with self._lock:
                if self._deployment is None:
                    deployment = open_deployment(
                        self.settings, apps=self.apps, observer=observer_for(self.settings), submit=self._submit
                    )
                    prepare_worker(deployment)
                    self._deployment = deployment
        return self._deployment

    def _submit(self, app: str, group_id: str, slot: int, probe: bool) -> None:
        kwargs: dict[str, Any] = {"group_id": group_id, "slot": slot, "probe": probe}
        if len(self.apps) == 1:
            # One app: the message and queue of a single-app deployment.
            self._celery.send_task(DELIVER_TASK, kwargs=kwargs, queue=INTERNAL_QUEUE)
            return
        kwargs["app"] = app
        self._celery.send_task(DELIVER_TASK, kwargs=kwargs, queue=internal_queue(app))

    def _run_waiting(self, app: str) -> bool:
        """Whether a delivery run of ``app`` waits in the broker for a thread (its internal queue is not empty)."""
        with self._celery.pool.acquire(block=True, timeout=1) as connection:
            size = connection.default_channel.client.llen(internal_queue(app))
        return bool(size)

    def worker_queues(self) -> list[str]:
        """The queues a worker consumes: the public one, and one internal queue per app (served in turn)."""
        return worker_queues(self.apps)


def worker_queues(apps: Apps) -> list[str]:
    """The public queue, and with several apps each app's intake queue; the internal delivery queue(s).

    kombu's Redis transport takes the next message from its queues in rotation, so a worker serves
    the apps with due work in turn: one app's backlog of runs never sits in front of another's, and
    one app's flood of intake messages (on its own queue) never in front of another app's intake.
    """
    if len(apps) == 1:
        return list(WORKER_QUEUES)
    return [
        PUBLIC_QUEUE,
        *(intake_queue(app.name) for app in apps),
        *(internal_queue(app.name) for app in apps),
    ]


def route_intake(apps: Apps, kwargs: dict[str, Any] | None) -> str:
    """The queue an ``imunban.unban``/``imunban.cancel`` is sent to: its app's intake queue when there are
    several apps and it names a served one, else the public queue (which stays valid for every app)."""
    app = (kwargs or {}).get("app")
    if len(apps) > 1 and isinstance(app, str) and app in apps.by_name:
        return intake_queue(app)
    return PUBLIC_QUEUE


def context_of(celery: Celery) -> Context:
    """The context :func:`imunban_celery.app.create_celery` put on ``celery``."""
    ctx: Context = celery.conf.imunban
    return ctx


def base_conf(settings: Settings) -> dict[str, Any]:
    """Celery settings every imunban Celery app shares (the product's and the benchmark's naive one)."""
    return {
        # JSON only: messages from non-Python clients must work, and pickle would be a code-execution hole.
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "result_backend": None,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
    }
