"""Celery app factory: the composition root of the Celery layer (nothing in it imports this module back).

The broker is the same Redis as the store (IMUNBAN_REDIS_URL, or the embedded server when unset),
or IMUNBAN_BROKER_URL when set (required when the state lives on a Redis Cluster: kombu has no
cluster transport); a ``redis+sentinel://`` URL becomes kombu's sentinel transport with the same
service (:func:`broker`).
Run with ``imunban worker`` (which also starts the pump), or ``celery -A imunban_celery.app worker``
(the Celery object is ``imunban_celery.app.celery``):
both consume the public and the internal queue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery
from kombu.entity import Queue

from imunban.apps import Apps
from imunban.errors import ConfigError
from imunban.ha import SENTINEL_TIMEOUT_S
from imunban.local.embedded import resolve_settings
from imunban.redis_url import is_cluster_url, is_sentinel_url, parse_sentinel_url
from imunban.settings import Settings
from imunban_celery import guard, maintenance, unban
from imunban_celery.context import Context, base_conf, route_intake
from imunban_celery.names import CANCEL_TASK, DELIVER_TASK, INTERNAL_QUEUE, PUBLIC_QUEUE, UNBAN_TASK, WORKER_QUEUES

__all__ = ["INTERNAL_QUEUE", "PUBLIC_QUEUE", "WORKER_QUEUES", "create_celery"]


def create_celery(settings: Settings | None = None) -> Celery:
    """A configured Celery app with imunban's tasks registered."""
    settings = resolve_settings(settings or Settings.from_env())
    broker_url, transport_options = broker(settings)
    celery = Celery("imunban", broker=broker_url, set_as_current=False)
    password = settings.redis_password()  # IMUNBAN_REDIS_PASSWORD_FILE, for a plain broker URL without one
    if password is not None and "primary_password" not in transport_options:
        celery.conf.broker_password = password.reveal()
    context = Context(celery, settings)
    celery.conf.update(
        base_conf(settings),
        # Ack after the task ran: a worker killed while a task runs leaves its message in kombu's
        # `unacked` record, and it is delivered again after visibility_timeout. Not in one window:
        # kombu pops (BRPOP), then writes that record, one round trip later (0.15-0.5 ms); a worker
        # killed in between loses the message it popped (docs/durability.md, "Celery messages").
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=PUBLIC_QUEUE,
        # Declared here, so a worker started without -Q consumes both queues, not only the default one.
        task_queues=[Queue(name, routing_key=name) for name in context.worker_queues()],  # type: ignore[no-untyped-call]
        task_create_missing_queues=True,
        # Intake with several apps goes to its app's intake queue unless the sender names a queue
        # (an explicit queue wins: producers that send to the public queue keep working).
        task_routes=[{DELIVER_TASK: {"queue": INTERNAL_QUEUE}}, intake_router(context.apps)],
        # Tasks are short (a delivery run has a few-second budget); nothing relies on ETA/countdown.
        broker_transport_options={"visibility_timeout": 300, **transport_options},
    )
    celery.conf.imunban = context
    guard.install(celery)
    unban.register(celery)
    maintenance.register(celery)
    return celery


def intake_router(apps: Apps) -> Callable[..., dict[str, str] | None]:
    """A Celery router: ``imunban.unban``/``imunban.cancel`` to the queue :func:`route_intake` picks."""

    def route(name: str, args: Any, kwargs: dict[str, Any] | None, options: Any, *_: Any, **__: Any) -> Any:
        if name in (UNBAN_TASK, CANCEL_TASK):
            return {"queue": route_intake(apps, kwargs)}
        return None

    return route


def broker(settings: Settings) -> tuple[str | None, dict[str, Any]]:
    """The broker URL and transport options for ``settings.redis_url``.

    ``redis+sentinel://:pw@h1:p1,h2:p2/SERVICE/DB`` becomes ``sentinel://h1:p1/DB;sentinel://h2:p2/DB``
    with the service as ``master_name``; passwords travel as transport options, never in the URL
    (kombu #1007), see :class:`~imunban_celery.guard.GuardedSentinelChannel`.
    """
    url, variable = settings.redis_url, "IMUNBAN_REDIS_URL"
    if settings.broker_url is not None:
        url, variable = settings.broker_url, "IMUNBAN_BROKER_URL"
    elif is_cluster_url(url):
        raise ConfigError(
            "IMUNBAN_REDIS_URL is a Redis Cluster, which cannot carry the Celery broker (kombu has no cluster "
            "transport): set IMUNBAN_BROKER_URL to a plain or Sentinel Redis"
        )
    if not is_sentinel_url(url):
        return url, {}
    assert url is not None
    parsed = parse_sentinel_url(url, variable=variable)
    hosts = [(f"[{host}]" if ":" in host else host, port) for host, port in parsed.sentinels]  # IPv6 in brackets
    broker_url = ";".join(f"sentinel://{host}:{port}/{parsed.db}" for host, port in hosts)
    # A dead sentinel must not stall the search for the primary: the next one is asked after a second.
    sentinel_kwargs: dict[str, Any] = {
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
        "socket_timeout": SENTINEL_TIMEOUT_S,
    }
    sentinel_password = settings.sentinel_auth()
    if sentinel_password is not None:
        sentinel_kwargs["password"] = sentinel_password.reveal()
    options: dict[str, Any] = {"master_name": parsed.service, "sentinel_kwargs": sentinel_kwargs}
    primary_password, file_password = parsed.password, settings.redis_password()
    if primary_password is None and file_password is not None:
        primary_password = file_password.reveal()
    if primary_password is not None:
        options["primary_password"] = primary_password
    if parsed.username is not None:
        options["primary_username"] = parsed.username
    return broker_url, options


def __getattr__(name: str) -> Any:
    # `celery -A imunban_celery.app` looks up `app`, then `celery`: build it on first use, not at import.
    if name == "celery":
        globals()["celery"] = created = create_celery()
        return created
    raise AttributeError(name)
