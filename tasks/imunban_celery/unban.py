"""Task definitions. Each body only validates its message and delegates to the engine.

``imunban.unban``  kwargs: group_id (str), members (list of str), optional at, priority, version, app
``imunban.cancel`` kwargs: group_id (str), members (list of str), optional version, app
``imunban.deliver`` (internal) kwargs: group_id, slot, probe, and app when there are several
``app`` may be left out with one app; with several it is required, and an unknown app is rejected
(counted), never stored.
A bad message is rejected with a logged, counted reason; it is never retried and never crashes.
imunban_celery/guard.py rejects malformed envelopes before they reach Celery's code (some would crash the
worker); the task bodies here check the kwargs.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, NoReturn

from celery import Celery
from celery.exceptions import Reject

from imunban.errors import RedisFullError, StoreError, ValidationError
from imunban.validation import build_request, validate_group_id, validate_members, validate_version
from imunban_celery import broker
from imunban_celery.context import context_of
from imunban_celery.guard import count_rejection
from imunban_celery.names import CANCEL_TASK, DELIVER_TASK, UNBAN_TASK

log = logging.getLogger("imunban.tasks")

UNBAN_FIELDS = frozenset({"group_id", "members", "at", "priority", "version", "app"})
CANCEL_FIELDS = frozenset({"group_id", "members", "version", "app"})


def _check_fields(kwargs: dict[str, Any], args: tuple[Any, ...], allowed: frozenset[str]) -> None:
    if args:
        raise ValidationError("args", "positional arguments are not accepted; send kwargs")
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ValidationError(unknown[0], "is not a known field")
    for required in ("group_id", "members"):
        if required not in kwargs:
            raise ValidationError(required, "is required")
    if not isinstance(kwargs["members"], list | tuple):
        raise ValidationError("members", f"must be a list of strings, got {type(kwargs['members']).__name__}")


def _reject(celery: Celery, task: str, exc: ValidationError) -> dict[str, Any]:
    count_rejection(task, str(exc), celery)
    return {"rejected": str(exc)}


def _refused(exc: StoreError) -> NoReturn:
    """Redis refused an intake: hand the message back to the broker rather than acknowledging a loss.

    When Redis is full this worker also takes no public message for a moment (it would be refused too)
    and keeps taking delivery runs, which free memory (imunban_celery.broker.INTAKE_GATE).
    """
    if isinstance(exc, RedisFullError):
        broker.INTAKE_GATE.refused()
    raise Reject(str(exc), requeue=True) from exc


def unban(celery: Celery, /, *args: Any, **kwargs: Any) -> dict[str, Any]:  # `/`: a message's "app" is a kwarg
    try:
        _check_fields(kwargs, args, UNBAN_FIELDS)
        request = build_request(
            kwargs["group_id"],
            kwargs["members"],
            kwargs.get("at"),
            kwargs.get("priority"),
            version=kwargs.get("version"),
        )
        context = context_of(celery)
        target = context.deployment.app(kwargs.get("app"))
    except ValidationError as exc:
        return _reject(celery, UNBAN_TASK, exc)
    # With the broker on the same Redis the message is in that Redis already, and bigger than the request
    # it becomes: storing it (then acknowledging it) frees memory, so a full Redis takes it (Store.enqueue).
    same_redis = context.settings.broker_url is None
    try:
        result = target.store.enqueue([request], moving=same_redis)
    except StoreError as exc:
        _refused(exc)
    return {"ready": result.ready, "scheduled": result.scheduled, "replaced": result.replaced, "stale": result.stale}


def cancel(celery: Celery, /, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        _check_fields(kwargs, args, CANCEL_FIELDS)
        group_id = validate_group_id(kwargs["group_id"])
        members = validate_members(kwargs["members"])
        version = validate_version(kwargs.get("version"))
        target = context_of(celery).deployment.app(kwargs.get("app"))
    except ValidationError as exc:
        return _reject(celery, CANCEL_TASK, exc)
    try:
        return {"cancelled": target.store.cancel(group_id, list(members), version=version)}
    except StoreError as exc:
        _refused(exc)


def deliver(
    celery: Celery, group_id: str, slot: int = -1, probe: bool = False, app: str | None = None
) -> dict[str, Any]:
    ctx = context_of(celery)
    try:
        engine = ctx.deployment.app(app)
    except ValidationError as exc:  # a run of an app this worker does not serve (its apps file differs)
        log.error("delivery run for group %r refused: %s", group_id, exc)
        return {"error": str(exc)}
    fair = ctx.fairness
    turn = None if fair is None else fair.enter(engine.name)
    try:
        # The run hands its thread back after delivery.DELIVER_BUDGET_S, so other groups get a turn,
        # and at once when it is beyond its app's share of the threads while another app's run waits.
        report = engine.deliverer.deliver_group(
            group_id,
            probe=probe,
            heartbeat=lambda: engine.pump.touch(group_id, slot),
            give_way=None if turn is None else turn.give_way,
        )
    except StoreError as exc:
        # Redis is down: the leases and the dispatch marker expire and the work is picked up again.
        log.error("delivery for group %r stopped: %s", group_id, exc)
        return {"error": str(exc)}
    finally:
        if turn is not None:
            turn.fair.leave(turn)
        with contextlib.suppress(StoreError):  # if Redis is down the marker expires by itself
            engine.pump.finish(group_id, slot)
    return {"calls": report.calls, "delivered": report.delivered, "held": report.held, "gave_way": report.gave_way}


def register(celery: Celery) -> None:
    """Bind the task functions to ``celery`` under their public names, behind the message guards."""
    options: dict[str, Any] = {
        "bind": False,
        # Not shared: another Celery app in the same process (tests, demo) must not get these closures.
        "shared": False,
        "acks_late": True,
        "ignore_result": True,
        "Strategy": "imunban_celery.guard:guarded_strategy",
    }

    def unban_task(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return unban(celery, *args, **kwargs)

    def cancel_task(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return cancel(celery, *args, **kwargs)

    def deliver_task(group_id: str, slot: int = -1, probe: bool = False, app: str | None = None) -> dict[str, Any]:
        return deliver(celery, group_id, slot, probe, app)

    celery.task(name=UNBAN_TASK, **options)(unban_task)
    celery.task(name=CANCEL_TASK, **options)(cancel_task)
    celery.task(name=DELIVER_TASK, **options)(deliver_task)
