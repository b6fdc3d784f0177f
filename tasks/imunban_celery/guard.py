"""Malformed broker messages are rejected and counted; they never take a worker down.

Other systems publish to the ``imunban`` queue by hand (see docs/celery-contract.md), so the worker
meets messages that Celery and kombu do not expect. Left alone, several shapes kill the whole
worker process (an uncaught exception in the consumer loop), and a killed worker restores the
unacknowledged message, so the next worker dies on it too. Three layers stop that:

1. :class:`GuardedRedisTransport` — an item in the Redis list that is not a kombu envelope (not
   JSON, not an object, no ``properties``/``delivery_tag``, headers not an object) is dropped.
2. :class:`GuardedConsumer` — an unknown task name without an ``id`` is rejected, not fatal.
3. :func:`guarded_strategy` — a task message whose body is not ``[args, kwargs, embed]``, whose
   headers have the wrong shape, or which carries a Celery ``eta``/``countdown`` is rejected.

Then the task body validates the kwargs (imunban_celery/unban.py). Every rejection is logged with its
reason and counted (``rejected_messages`` in ``imunban status``, ``imunban_rejected_messages_total``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import itertools
import json
import logging
import ssl
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import redis
from celery import Celery
from celery.exceptions import InvalidTaskError
from celery.worker.consumer import Consumer
from celery.worker.strategy import default as default_strategy
from kombu.transport import redis as kombu_redis

from imunban.ha import FollowingConnection
from imunban_celery.broker import FullSafeChannel
from imunban_celery.context import Context, context_of

log = logging.getLogger("imunban.tasks")

#: Set by :func:`install`: the context whose store counts rejections that arrive without an app (transport level).
_transport_context: Context | None = None


def count_rejection(task: str, reason: str, celery: Celery | None = None) -> None:
    """Log and count one rejected message in the deployment's counters and metrics; counting never raises."""
    log.warning("rejected %s message: %s", task, reason)
    ctx = context_of(celery) if celery is not None else _transport_context
    if ctx is None:
        return
    with contextlib.suppress(Exception):  # counting must never be what breaks the consumer
        ctx.deployment.count_rejected(task)


def install(celery: Celery) -> None:
    """Route ``celery``'s worker through the guards and count rejections in its deployment and metrics."""
    global _transport_context
    _transport_context = context_of(celery)
    conf = celery.conf
    conf.worker_consumer = "imunban_celery.guard:GuardedConsumer"
    sentinel = str(conf.broker_url or "").startswith("sentinel://")
    transport = "GuardedSentinelTransport" if sentinel else "GuardedRedisTransport"
    conf.broker_transport = f"imunban_celery.guard:{transport}"
    if sentinel:
        conf.broker_failover_strategy = stay_on_sentinels
    if str(conf.broker_url or "").startswith("rediss://") and not conf.broker_use_ssl:
        # kombu enables TLS for the scheme name `rediss` only (and then without verifying the
        # certificate); with our transport class named explicitly, say it: TLS, certificate verified.
        conf.broker_use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}


# -- 1. transport ---------------------------------------------------------------------------------


def transport_problem(raw: object) -> str | None:
    """Why ``raw`` (one decoded item of a Redis queue list) is not a kombu envelope, or None."""
    if not isinstance(raw, dict):
        return "not a JSON object"
    props = raw.get("properties")
    if not isinstance(props, dict):
        return "'properties' must be an object"
    if not isinstance(props.get("delivery_tag"), str) or not props["delivery_tag"]:
        return "'properties.delivery_tag' must be a non-empty string"
    info = props.get("delivery_info")
    if not isinstance(info, dict) or not all(isinstance(info.get(k), str) for k in ("exchange", "routing_key")):
        return "'properties.delivery_info' must be an object with string 'exchange' and 'routing_key'"
    if not isinstance(raw.get("headers") or {}, dict):
        return "'headers' must be an object"
    for name in ("content-type", "content-encoding"):
        if not isinstance(raw.get(name) or "", str):
            return f"'{name}' must be a string"
    body = raw.get("body")
    if body is not None and not isinstance(body, str):
        return "'body' must be a string"
    encoding = props.get("body_encoding")
    if encoding not in (None, "base64"):
        return "'properties.body_encoding' must be 'base64' or absent"
    if encoding == "base64" and body:
        try:
            base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return "'body' is not valid base64"
    return None


class GuardedRedisChannel(FullSafeChannel):
    """kombu's Redis channel with the guard, and its bookkeeping safe on a full Redis (imunban_celery.broker)."""

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            # The consumer closed this connection (a failover, a Redis restart) while a pool thread
            # still acks a message on one of its channels. kombu would read `None.hostname`, and an
            # AttributeError is "unrecoverable" for Celery: the whole worker stopped. A connection
            # error instead is logged ("couldn't ack") and the message comes back (acks_late).
            raise redis.exceptions.ConnectionError("the broker connection of this channel was closed")
        params: dict[str, Any] = super()._connparams(asynchronous)  # type: ignore[no-untyped-call]
        return params

    def _brpop_read(self, **options: Any) -> Any:
        try:
            return super()._brpop_read(**options)  # type: ignore[no-untyped-call]
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            # The item was popped already; it is not JSON, so no consumer could ever use it.
            count_rejection("-", f"queue item is not JSON: {exc}")
            return True


#: A READONLY reply means the Redis we talk to was demoted by a failover: reconnect (and, through
#: Sentinel, find the new primary) instead of treating it as an unrecoverable error (celery #7946).
#: An OOM reply means Redis is full: the consumer's own writes are made safe there (imunban_celery.broker),
#: so one that still meets it makes the consumer reconnect and carry on, never stop the worker.
CONNECTION_ERRORS = (
    *kombu_redis.Transport.connection_errors,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,
)


def _deliver_guarded(transport: kombu_redis.Transport, message: Any, queue: str) -> None:
    problem = transport_problem(message)
    if problem is not None:
        count_rejection("-", f"not a Celery message: {problem}")
        return
    kombu_redis.Transport._deliver(transport, message, queue)  # type: ignore[no-untyped-call]


class GuardedRedisTransport(kombu_redis.Transport):
    """kombu's Redis transport, dropping (and counting) list items that are not kombu envelopes."""

    Channel = GuardedRedisChannel
    connection_errors = CONNECTION_ERRORS

    def _deliver(self, message: Any, queue: str) -> None:
        _deliver_guarded(self, message, queue)


class GuardedSentinelChannel(GuardedRedisChannel, kombu_redis.SentinelChannel):
    """kombu's Sentinel channel with the same guard, and the primary's credentials from transport options.

    It drops non-JSON items as :class:`GuardedRedisChannel` does (first in the MRO). A password
    inside a ``sentinel://`` URL breaks kombu's host parsing (kombu #1007), so the
    primary's user and password come as the ``primary_username``/``primary_password`` transport
    options; the sentinels' own password is ``sentinel_kwargs["password"]``.
    """

    from_transport_options = (  # type: ignore[assignment]
        *kombu_redis.SentinelChannel.from_transport_options,
        "primary_username",
        "primary_password",
    )
    primary_username: str | None = None
    primary_password: str | None = None
    #: Asks the sentinels on every reconnect, also when a command is retried (see imunban.ha).
    connection_class = FollowingConnection

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        params: dict[str, Any] = super()._connparams(asynchronous)
        if self.primary_password is not None:
            params["password"] = self.primary_password
        if self.primary_username is not None:
            params["username"] = self.primary_username
        return params


def stay_on_sentinels(alternates: list[str]) -> Iterator[str]:
    """kombu's failover strategy for the sentinel broker: "switch" to the same first sentinel.

    After a failed connect kombu switches to the next URL, and a switch to a URL resets the transport
    to the URL's scheme: the stock sentinel transport, without the guards or the primary's password
    (the consumer then failed with an AUTH error after every failover). Every connect asks all the
    sentinels anyway (they are read from the URL list, which a switch leaves alone), so a bare
    hostname (which keeps the transport) is all a switch needs.
    """
    return itertools.repeat(urlsplit(alternates[0]).hostname or "127.0.0.1")


class GuardedSentinelTransport(kombu_redis.SentinelTransport):
    """kombu's Sentinel transport with the guards of :class:`GuardedRedisTransport`."""

    Channel = GuardedSentinelChannel
    connection_errors = CONNECTION_ERRORS

    def _deliver(self, message: Any, queue: str) -> None:
        _deliver_guarded(self, message, queue)


# -- 2. consumer ----------------------------------------------------------------------------------


#: How the consumer retries its broker connection once lost (kombu's ``ensure_connection``): after each
#: round of the sentinels it waits 0.1 s, then 0.1 s more each round, at most 0.4 s. Celery leaves kombu's
#: 2, 4, 6 ... s: a primary promoted 2.3 s after the kill found the consumer asleep until 6 s after it, so
#: delivery runs waited ~4 s after the promotion. A retry is one question to each sentinel: cheap.
RECONNECT_INTERVALS_S = {"interval_start": 0.1, "interval_step": 0.1, "interval_max": 0.4}


class GuardedConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer, rejecting messages for unknown tasks even when they lack an ``id``, and
    reconnecting to the broker within :data:`RECONNECT_INTERVALS_S` (a failover's new primary at once)."""

    def ensure_connected(self, conn: Any) -> Any:
        conn.ensure_connection = functools.partial(conn.ensure_connection, **RECONNECT_INTERVALS_S)
        return super().ensure_connected(conn)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        headers = message.headers if isinstance(message.headers, dict) else {}
        count_rejection(str(headers.get("task", "?"))[:100], "unknown task name", self.app)
        if isinstance(headers.get("id"), str):
            super().on_unknown_task(body, message, exc)
        else:
            message.reject_log_error(log, self.connection_errors)


# -- 3. task strategy -----------------------------------------------------------------------------


def envelope_problem(headers: object, payload: object) -> str | None:
    """Why a task message cannot be run safely, or None. ``payload`` is the decoded body.

    Protocol 2: headers carry ``task`` and ``id``; the body is ``[args, kwargs, embed]``.
    Protocol 1 (the body is an object with ``args``/``kwargs``/``id``/``task``) is accepted too.
    A Celery ``eta``/``countdown`` is refused: Celery would hold the message in worker memory;
    schedule with the ``at`` kwarg instead.
    """
    if not isinstance(headers, dict):
        return "message headers are not a mapping"
    eta = headers.get("eta")
    if isinstance(payload, list | tuple):
        if not isinstance(headers.get("id"), str):
            return "header 'id' must be a string"
        if len(payload) != 3:
            return "body must be [args, kwargs, embed]"
        args, kwargs, embed = payload
        if embed is not None and not isinstance(embed, dict):
            return "body[2] (embed) must be an object or null"
    elif isinstance(payload, dict):
        args, kwargs = payload.get("args", []), payload.get("kwargs", {})
        eta = eta or payload.get("eta")
        if not isinstance(payload.get("id"), str) and not isinstance(headers.get("id"), str):
            return "message id must be a string"
    else:
        return "body must be a JSON array [args, kwargs, embed]"
    if not isinstance(args, list | tuple):
        return "args must be a JSON array"
    if not isinstance(kwargs, dict):
        return "kwargs must be a JSON object"
    if eta is not None:
        return "Celery eta/countdown is not accepted: schedule with the 'at' kwarg"
    return None


def guarded_strategy(task: Any, celery: Celery, consumer: Any, **options: Any) -> Callable[..., Any]:
    """Celery's default strategy behind :func:`envelope_problem`; set as the tasks' ``Strategy``.

    Without it, e.g. a body that is a JSON object without ``args`` raises inside Celery's consumer
    and takes the whole worker down.
    """
    inner = default_strategy(task, celery, consumer, **options)

    def handler(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **kwargs: Any) -> Any:
        try:
            payload = message.payload if body is None else body
        except Exception as exc:  # DecodeError, ContentDisallowed: Celery rejects these itself
            count_rejection(task.name, f"undecodable body: {exc}", celery)
            raise
        problem = envelope_problem(message.headers, payload)
        if problem is not None:
            count_rejection(task.name, problem, celery)
            raise InvalidTaskError(problem)
        try:
            return inner(message, body, ack, reject, callbacks, **kwargs)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # A header of the wrong shape (timelimit, expires, ...): reject, don't crash the consumer.
            count_rejection(task.name, f"malformed message: {exc!r}", celery)
            raise InvalidTaskError(f"malformed message: {exc!r}") from exc

    return handler
