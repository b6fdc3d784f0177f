"""The Celery app factory: every documented way to start a worker consumes what it must."""

from __future__ import annotations

from imunban.settings import Settings
from imunban_celery.app import create_celery
from imunban_celery.names import INTERNAL_QUEUE, PUBLIC_QUEUE


def test_plain_celery_worker_consumes_both_queues() -> None:
    """`celery -A imunban_celery.app worker` without -Q consumes imunban and imunban.internal."""
    app = create_celery(Settings.from_env({"IMUNBAN_REDIS_URL": "redis://127.0.0.1:1/0"}))
    # A worker started without -Q consumes every queue the app declares (Queues.select(None)).
    assert {PUBLIC_QUEUE, INTERNAL_QUEUE} <= set(app.amqp.queues)


def test_delivery_tasks_are_routed_to_the_internal_queue() -> None:
    """imunban.deliver goes to imunban.internal; imunban.unban and imunban.cancel to imunban."""
    app = create_celery(Settings.from_env({"IMUNBAN_REDIS_URL": "redis://127.0.0.1:1/0"}))
    route = app.amqp.router.route
    assert route({}, "imunban.deliver")["queue"].name == INTERNAL_QUEUE
    assert route({}, "imunban.unban")["queue"].name == PUBLIC_QUEUE
    assert route({}, "imunban.cancel")["queue"].name == PUBLIC_QUEUE
