"""Queue and task names: the public Celery contract (docs/celery-contract.md). A leaf: imports nothing."""

#: The public queue other systems publish ``imunban.unban`` / ``imunban.cancel`` to.
PUBLIC_QUEUE = "imunban"
#: Internal delivery tasks, so a backlog of them never sits in front of producers' messages.
INTERNAL_QUEUE = "imunban.internal"
#: Every queue an imunban worker consumes.
WORKER_QUEUES = (PUBLIC_QUEUE, INTERNAL_QUEUE)

UNBAN_TASK = "imunban.unban"
CANCEL_TASK = "imunban.cancel"
DELIVER_TASK = "imunban.deliver"


def internal_queue(app: str | None = None) -> str:
    """The internal queue of an app's delivery runs (one per app when there are several; None: the only app)."""
    return INTERNAL_QUEUE if app is None else f"{INTERNAL_QUEUE}.{app}"
