"""Queue and task names: the public Celery contract (docs/celery-contract.md). A leaf: imports nothing."""

#: The public queue other systems publish ``imunban.unban`` / ``imunban.cancel`` to.
PUBLIC_QUEUE = "imunban"
#: Internal delivery tasks, so a backlog of them never sits in front of producers' messages.
INTERNAL_QUEUE = "imunban.internal"
#: Every queue an imunban worker consumes.
WORKER_QUEUES = (PUBLIC_QUEUE, INTERNAL_QUEUE)
#: Prefix of the per-app intake queues (several apps): ``imunban.app.NAME`` (docs/celery-contract.md).
APP_QUEUE_PREFIX = f"{PUBLIC_QUEUE}.app."
#: Pool threads an ``imunban worker`` keeps for intake beyond IMUNBAN_CONCURRENCY delivery runs: a
#: message for any app is taken while every delivery thread is busy (imunban_celery.broker.DELIVERY_GATE).
INTAKE_THREADS = 2

UNBAN_TASK = "imunban.unban"
CANCEL_TASK = "imunban.cancel"
DELIVER_TASK = "imunban.deliver"


def internal_queue(app: str | None = None) -> str:
    """The internal queue of an app's delivery runs (one per app when there are several; None: the only app)."""
    return INTERNAL_QUEUE if app is None else f"{INTERNAL_QUEUE}.{app}"


def intake_queue(app: str) -> str:
    """The intake queue of one app when there are several (``imunban`` stays the public queue of every app)."""
    return APP_QUEUE_PREFIX + app


def is_internal(queue: str) -> bool:
    """Whether ``queue`` carries delivery runs (the internal queue, or one app's)."""
    return queue == INTERNAL_QUEUE or queue.startswith(INTERNAL_QUEUE + ".")


def is_intake(queue: str) -> bool:
    """Whether ``queue`` carries producers' messages (the public queue, or one app's intake queue)."""
    return queue == PUBLIC_QUEUE or queue.startswith(APP_QUEUE_PREFIX)
