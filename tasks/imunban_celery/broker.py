# mypy: disable-error-code="no-untyped-call"
# (kombu is untyped: nearly every line here calls into it)
"""kombu's Redis transport made safe on a full Redis (``maxmemory`` with ``noeviction``).

At maxmemory Redis refuses every command queued inside MULTI and every command that may grow memory.
kombu writes its bookkeeping that way: after BRPOP it records the popped message as unacknowledged in
MULTI (refused: the message was in neither its queue nor ``unacked``, and the worker stopped, since
Celery treats the error as unrecoverable); acks, requeues and restores are MULTI too, a starting
consumer takes its restore mutex with SET NX, declares its queues with SADD and LLEN in MULTI, and
the pump publishes delivery runs with LPUSH. So a full Redis killed every worker and lost a message.

:class:`FullSafeChannel` does all of that through small scripts (``lua/`` beside this module) whose
first write cannot grow memory, which Redis lets through at maxmemory (it checks a script only at its
first write). Each keeps kombu's keys and semantics; what they write is about the room just freed (a
popped message recorded, a rejected one moved back) or bounded (a binding, one delivery run per
dispatch marker). Producers' messages to the public queue stay plain LPUSHes: Redis refuses those
when full, which is intake being refused. See docs/durability.md.

:data:`INTAKE_GATE`: after the store refused a public message because Redis is full, the worker takes
no public message for :data:`PAUSE_S` (the message went back to its queue) but keeps taking delivery
runs, which free memory; so a full Redis costs no busy loop of refusals.

:data:`DELIVERY_GATE`: a worker takes at most IMUNBAN_CONCURRENCY delivery runs at once; ``imunban worker``
runs :data:`~imunban_celery.names.INTAKE_THREADS` more pool threads, so intake never waits for a thread
held by a delivery run (docs/celery-contract.md, "Isolation between apps").
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from imunban.connection import is_redis_full
from imunban.scripts import lua_source
from imunban_celery.names import is_intake, is_internal

log = logging.getLogger("imunban.tasks")

#: How long a worker takes no public message after Redis refused one for being full.
PAUSE_S = 1.0
#: The BRPOP timeout while this process runs its cap of delivery runs (Redis >= 6 takes a fraction).
FULL_POP_TIMEOUT_S = 0.02
#: The record of a popped message is re-sent after connection errors for this long: longer than a
#: Sentinel failover (down-after-milliseconds, then the election), since meanwhile the message exists
#: only in this process. 1.5 s lost a message in each failover of the drill that caught one in flight.
RECORD_RETRY_BUDGET_S = 60.0
#: The first wait before re-sending it, doubling up to the cap: the new primary is used within the cap.
RECORD_RETRY_FIRST_S = 0.05
RECORD_RETRY_CAP_S = 0.25


def record_retry_delay(failures: int, elapsed_s: float) -> float | None:
    """Seconds to wait before re-sending a record after ``failures`` failed sends, ``elapsed_s`` after the first.

    None once the budget is spent (the caller gives up and the error reaches the consumer).
    """
    if elapsed_s >= RECORD_RETRY_BUDGET_S:
        return None
    wait_s: float = min(RECORD_RETRY_CAP_S, RECORD_RETRY_FIRST_S * 2.0 ** max(0, failures - 1))
    return min(wait_s, RECORD_RETRY_BUDGET_S - elapsed_s)


class IntakeGate:
    """Whether the worker takes public (intake) messages now; closed for a moment after a refusal."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, pause_s: float = PAUSE_S) -> None:
        self._clock = clock
        self.pause_s = pause_s
        self._until = -float("inf")

    def refused(self) -> None:
        """The store refused a public message because Redis is full: take none for ``pause_s``."""
        self._until = self._clock() + self.pause_s

    def paused(self) -> bool:
        return self._clock() < self._until


#: The record's clock and sleep (tests replace them).
_clock = time.monotonic
_sleep = time.sleep

#: One per worker process: the consumer reads it, the intake tasks close it (see the module docstring).
INTAKE_GATE = IntakeGate()


class DeliveryGate:
    """How many delivery runs this process has taken and not finished; at ``cap`` it takes no more.

    The pool has ``cap`` + :data:`~imunban_celery.names.INTAKE_THREADS` threads (``imunban worker``),
    so intake (any app's) always finds a thread: it never waits behind delivery runs, which can
    hold a thread for seconds, mostly asleep on their app's limiter. Counted by delivery tag from
    the moment kombu records a popped run until it is acknowledged or rejected.
    """

    def __init__(self, cap: int | None = None) -> None:
        self.cap = cap
        self._taken: set[str] = set()
        self._owner: int | None = None
        self._lock = threading.Lock()

    def taken(self, tag: str, owner: int = 0) -> None:
        """A run was popped by the consumer channel ``owner`` (its QoS's id).

        One consumer channel at a time: a new one (the broker connection was lost and re-opened) means the
        old channel's runs were restored to their queue or will never be acknowledged here, so they stop
        counting (those still running finish uncounted, within the pool's size).
        """
        with self._lock:
            if owner != self._owner:
                self._taken.clear()
                self._owner = owner
            self._taken.add(tag)

    def done(self, tag: str) -> None:
        with self._lock:
            self._taken.discard(tag)

    def forget(self, tags: list[str]) -> None:
        """Stop counting ``tags`` (their channel closed: restored to their queue, never acknowledged here)."""
        with self._lock:
            self._taken.difference_update(tags)

    def full(self) -> bool:
        """Whether this process runs ``cap`` delivery runs already (no cap: never)."""
        return self.cap is not None and len(self._taken) >= self.cap


#: One per worker process: the consumer counts delivery runs in it; the Celery context sets its cap.
DELIVERY_GATE = DeliveryGate()


def _script(client: redis.Redis, name: str) -> Any:
    return client.register_script(lua_source("imunban_celery", name))


class _Pushes:
    """Stands in for kombu's pipeline in ``_do_restore_message``: records the queues and the payload it pushes."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.payload = ""

    def lpush(self, key: str, value: str) -> _Pushes:
        return self._push(key, value)

    def rpush(self, key: str, value: str) -> _Pushes:
        return self._push(key, value)

    def _push(self, key: str, value: str) -> _Pushes:
        self.keys.append(key)
        self.payload = value
        return self


class FullSafeQoS(kombu_redis.QoS):
    """kombu's ack emulation, each step one script that a full Redis runs (see the module docstring)."""

    def append(self, message: Any, delivery_tag: str) -> None:
        delivery = message.delivery_info
        entry = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        args = [delivery_tag, time.time(), entry]
        # The popped message is only in this process until the record is written: a dropped connection
        # or a failover must not lose it, so the (idempotent) record is sent again until the primary (a
        # new one, through Sentinel) takes it, within RECORD_RETRY_BUDGET_S.
        started, failures = _clock(), 0
        while True:
            try:
                with self.channel.conn_or_acquire() as client:
                    _script(client, "unacked_add")(keys=[self.unacked_index_key, self.unacked_key], args=args)
                break
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                failures += 1
                delay_s = record_retry_delay(failures, _clock() - started)
                if delay_s is None:
                    raise
                if failures == 1:  # one line per outage, not one per attempt
                    log.warning("recording a popped message failed (connection); sending it again until it is taken")
                _sleep(delay_s)
        if failures:
            log.warning("recorded the popped message after %d failed attempt(s)", failures)
        virtual.QoS.append(self, message, delivery_tag)
        if is_internal(str(delivery.get("routing_key") or "")):
            DELIVERY_GATE.taken(delivery_tag, id(self))

    def ack(self, delivery_tag: str) -> None:
        self._forget(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)
        DELIVERY_GATE.done(delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        DELIVERY_GATE.done(delivery_tag)
        if requeue:
            self.restore_by_tag(delivery_tag, leftmost=True)
        else:
            self._forget(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)

    def restore_unacked(self, client: redis.Redis | None = None) -> None:
        # The channel is closing (connection lost, shutdown): its runs go back to their queue and their
        # acks will never come, so the gate must stop counting them or it would stay full for good.
        DELIVERY_GATE.forget(list(self._delivered))
        super().restore_unacked(client)

    def _forget(self, delivery_tag: str) -> None:
        with self.channel.conn_or_acquire() as client:
            _script(client, "unacked_remove")(keys=[self.unacked_index_key, self.unacked_key], args=[delivery_tag])

    def restore_by_tag(self, tag: str, client: redis.Redis | None = None, leftmost: bool = False) -> None:
        with self.channel.conn_or_acquire(client) as conn:
            raw = conn.hget(self.unacked_key, tag)
            pushes = _Pushes()
            if raw:
                payload, exchange, routing_key = loads(bytes_to_str(raw))
                self.channel._do_restore_message(payload, exchange, routing_key, pushes, leftmost)
            _script(conn, "unacked_restore")(
                keys=[self.unacked_index_key, self.unacked_key, *pushes.keys],
                args=[tag, raw or "", pushes.payload, "1" if leftmost else "0"],
            )

    def restore_visible(self, start: int = 0, num: int | None = 10, interval: int = 10) -> None:
        """kombu's periodic restore of messages past their visibility timeout, with a mutex taken by script."""
        self._vrestore_count += 1
        if (self._vrestore_count - 1) % (interval or 1):
            return
        with self.channel.conn_or_acquire() as client:
            ceil = time.time() - self.visibility_timeout
            token = uuid.uuid4().hex
            mutex = self.unacked_mutex_key
            if not _script(client, "mutex_acquire")(keys=[mutex], args=[token, int(self.unacked_mutex_expire * 1000)]):
                return
            try:
                visible = client.zrange(
                    self.unacked_index_key, ceil, 0, desc=True, byscore=True,
                    offset=num and start, num=num, withscores=True,
                )  # fmt: skip
                for tag, _ in visible or []:
                    self.restore_by_tag(tag, client)
            finally:
                _script(client, "mutex_release")(keys=[mutex], args=[token])


class FullSafeChannel(kombu_redis.Channel):
    """kombu's Redis channel whose bookkeeping and delivery-run publishes work on a full Redis."""

    QoS = FullSafeQoS

    def _restore(self, message: Any, leftmost: bool = False) -> None:
        self.qos.restore_by_tag(message.delivery_tag, leftmost=leftmost)

    def _size(self, queue: str) -> int:
        # kombu reads the lengths inside MULTI, which a full Redis refuses (a queue declare asks for it).
        with self.conn_or_acquire() as client:
            pipe = client.pipeline(transaction=False)
            for pri in self.priority_steps:
                pipe.llen(self._q_for_pri(queue, pri))
            return sum(int(size) for size in pipe.execute())

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        try:
            super()._queue_bind(exchange, routing_key, pattern, queue)
        except redis.exceptions.RedisError as exc:
            if not is_redis_full(exc):
                raise
            tables = [self.keyprefix_queue % (exchange,)]
            permanent = getattr(self, "keyprefix_binding_permanent", None)  # kombu >= 5.7 keeps a second table
            if permanent is not None and queue not in getattr(self, "_expires", {}):
                tables.append(permanent % (exchange,))
            member = self.sep.join([routing_key or "", pattern or "", queue or ""])
            with self.conn_or_acquire() as client:
                _script(client, "binding_add")(keys=tables, args=[member])

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        internal = is_internal(queue)
        if not internal or kwargs.get("_publish_batch") is not None or queue in getattr(self, "_expires", {}):
            super()._put(queue, message, **kwargs)
            return
        key = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))
        with self.conn_or_acquire() as client:
            _script(client, "queue_push")(keys=[key], args=[dumps(message)])

    def _brpop_start(self, timeout: float | None = None) -> None:
        full = DELIVERY_GATE.full()
        skip = skipped_queues(INTAKE_GATE.paused(), full)
        if skip is None:
            super()._brpop_start(timeout)
            return
        if full:
            # A pop that leaves the delivery runs out must not sleep kombu's whole second: a run that ends
            # meanwhile frees a place that the next pop should fill at once.
            timeout = FULL_POP_TIMEOUT_S
        cycle = self._queue_cycle
        self._queue_cycle = _Without(cycle, skip)
        try:
            super()._brpop_start(timeout)
        finally:
            self._queue_cycle = cycle


def skipped_queues(intake_paused: bool, delivery_full: bool) -> Callable[[str], bool] | None:
    """Which queues the next pop leaves out: intake ones after a full-Redis refusal, delivery runs while this
    process runs its cap of them (so its spare threads stay for intake); None: none."""
    if intake_paused:  # delivery runs free memory: taken even beyond the cap, in the spare threads
        return is_intake
    if delivery_full:
        return is_internal
    return None


class _Without:
    """A queue cycle that leaves the queues ``skip`` names out of those it offers (all of them if nothing is left)."""

    def __init__(self, cycle: Any, skip: Callable[[str], bool]) -> None:
        self._cycle = cycle
        self._skip = skip

    def consume(self, n: int) -> list[str]:
        queues: list[str] = list(self._cycle.consume(n))
        return [q for q in queues if not self._skip(q)] or queues
