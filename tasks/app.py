"""Celery app factory. The broker is the same Redis as the store (IMUNBAN_REDIS_URL or embedded).

Run with ``imunban worker`` (which also starts the pump), or ``celery -A tasks.app:app worker``.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from worker.connection import redis_url
from worker.settings import Settings

#: The public queue other systems publish ``imunban.unban`` / ``imunban.cancel`` to.
PUBLIC_QUEUE = "imunban"
#: Internal delivery tasks, so a backlog of them never sits in front of producers' messages.
INTERNAL_QUEUE = "imunban.internal"


def create_app(settings: Settings | None = None) -> Celery:
    """A configured Celery app with imunban's tasks registered."""
    settings = settings or Settings.from_env()
    url = redis_url(settings)
    app = Celery("imunban", broker=url, set_as_current=False)
    app.conf.update(
        # JSON only: messages from non-Python clients must work, and pickle would be a code-execution hole.
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        # Ack after the task ran; a killed worker's message is redelivered, not lost.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=PUBLIC_QUEUE,
        # Queues are declared on first use (task_create_missing_queues); workers consume both.
        task_create_missing_queues=True,
        task_routes={"imunban.deliver": {"queue": INTERNAL_QUEUE}},
        # Tasks are short (a delivery run has a few-second budget); nothing relies on ETA/countdown.
        broker_transport_options={"visibility_timeout": 300},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        imunban_settings=settings,
    )
    from tasks import maintenance, unban

    unban.register(app)
    maintenance.register(app)
    return app


def settings_of(app: Celery) -> Settings:
    settings: Settings = app.conf.imunban_settings
    return settings


def __getattr__(name: str) -> Any:
    # `celery -A tasks.app:app` looks up `app`; build it on first use, not at import.
    if name == "app":
        globals()["app"] = created = create_app()
        return created
    raise AttributeError(name)
