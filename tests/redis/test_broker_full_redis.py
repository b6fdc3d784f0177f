"""The Celery broker's bookkeeping on a full Redis (imunban_celery.broker), through kombu against a real redis-server.

At maxmemory Redis refuses MULTI and every write that may grow memory. A message the consumer pops must
still be recorded as unacknowledged, acknowledged, requeued and restored; a consumer starting then must
come up; delivery runs must still be published; producers' messages to the public queue are refused.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu.asynchronous import Hub

from helpers import overfill_redis
from imunban.local.redis_server import RedisServer
from imunban_celery import broker
from imunban_celery.broker import IntakeGate
from imunban_celery.guard import CONNECTION_ERRORS, GuardedRedisTransport
from imunban_celery.names import INTERNAL_QUEUE, PUBLIC_QUEUE

PUBLIC = Queue(PUBLIC_QUEUE, routing_key=PUBLIC_QUEUE)
INTERNAL = Queue(INTERNAL_QUEUE, routing_key=INTERNAL_QUEUE)


def connect(server: RedisServer, **options: Any) -> Connection:
    """A kombu connection through imunban's transport (as the worker's), visibility timeout 0 unless given."""
    return Connection(
        server.url, transport=GuardedRedisTransport, transport_options={"visibility_timeout": 0, **options}
    )


def publish(conn: Connection, queue: Queue, *bodies: str) -> None:
    with conn.Producer() as producer:
        for body in bodies:
            producer.publish({"n": body}, routing_key=queue.name, declare=[queue], retry=False)


def consume(conn: Connection, queue: Queue, count: int) -> list[Any]:
    """Pop ``count`` messages from ``queue`` (unacknowledged), as the worker's consumer does."""
    got: list[Any] = []
    with conn.Consumer([queue], callbacks=[lambda body, message: got.append(message)], prefetch_count=count):
        while len(got) < count:
            conn.drain_events(timeout=5)
    return got


def test_a_message_popped_on_a_full_redis_is_recorded_acked_and_requeued(
    fr: redis.Redis, small_server: RedisServer
) -> None:
    """At maxmemory: popped messages are kept as unacknowledged, an ack forgets one, a reject puts one back."""
    with connect(small_server) as conn:
        publish(conn, PUBLIC, "a", "b", "c")
        overfill_redis(fr)
        got = consume(conn, PUBLIC, 3)
        assert [m.payload["n"] for m in got] == ["a", "b", "c"]
        assert fr.hlen("unacked") == 3 and fr.zcard("unacked_index") == 3 and fr.llen(PUBLIC_QUEUE) == 0
        got[0].ack()
        got[1].reject(requeue=True)
        assert fr.hlen("unacked") == 1 and fr.llen(PUBLIC_QUEUE) == 1
        conn.default_channel.qos.restore_unacked()  # what a consumer closing at shutdown does
        assert fr.hlen("unacked") == 0 and fr.zcard("unacked_index") == 0 and fr.llen(PUBLIC_QUEUE) == 2
        assert sorted(
            json.loads(raw)["properties"]["delivery_tag"] for raw in fr.lrange(PUBLIC_QUEUE, 0, -1)
        ) == sorted(m.delivery_tag for m in got[1:])


def test_a_consumer_starting_on_a_full_redis_comes_up_and_restores_a_dead_consumers_messages(
    fr: redis.Redis, small_server: RedisServer
) -> None:
    """A consumer starting at maxmemory registers with its event loop (kombu's restore mutex) and gives back the
    messages a consumer that died left unacknowledged past their visibility timeout."""
    with connect(small_server) as dead:
        publish(dead, PUBLIC, "x", "y")
        held = consume(dead, PUBLIC, 2)
        dead.default_channel.qos._delivered.clear()  # it died: nothing given back at shutdown
    assert fr.hlen("unacked") == 2
    overfill_redis(fr)
    hub = Hub()
    try:
        with connect(small_server) as late:
            late.transport.register_with_event_loop(late.connection, hub)  # restores visible messages first
            assert fr.hlen("unacked") == 0 and fr.llen(PUBLIC_QUEUE) == 2
            again = consume(late, PUBLIC, 2)
            assert sorted(m.payload["n"] for m in again) == ["x", "y"]
            assert {m.delivery_tag for m in again} == {m.delivery_tag for m in held}
            assert all(m.delivery_info.get("redelivered") for m in again)
    finally:
        hub.close()


def test_delivery_runs_are_published_on_a_full_redis_and_intake_is_not(
    fr: redis.Redis, small_server: RedisServer
) -> None:
    """The pump's delivery runs (internal queue) are published at maxmemory; producers' public messages are refused."""
    with connect(small_server) as conn:
        publish(conn, INTERNAL, "warm")  # the queue declared once, as a running worker has it
        overfill_redis(fr)
        publish(conn, INTERNAL, "run")
        assert fr.llen(INTERNAL_QUEUE) == 2
        with pytest.raises(CONNECTION_ERRORS, match="maxmemory"):
            publish(conn, PUBLIC, "intake")
        assert fr.llen(PUBLIC_QUEUE) == 0


def test_queues_are_declared_on_a_full_redis(fr: redis.Redis, small_server: RedisServer) -> None:
    """Declaring queues at maxmemory works (a worker starting then declares its own): known bindings stay, a new one
    is added, and a message published through it is routed."""
    exchange = Exchange(PUBLIC_QUEUE, type="direct")  # Celery binds the worker's queues to one named after the default
    queues = [Queue(name, exchange=exchange, routing_key=name) for name in (PUBLIC_QUEUE, INTERNAL_QUEUE)]
    with connect(small_server) as conn:
        for queue in queues:
            queue.bind(conn.default_channel).declare()
        overfill_redis(fr)
        other = Queue(INTERNAL_QUEUE + ".other", exchange=exchange, routing_key=INTERNAL_QUEUE + ".other")
        for queue in [*queues, other]:
            queue.bind(conn.default_channel).declare()
        table = fr.smembers(f"_kombu.binding.{PUBLIC_QUEUE}")
        assert {member.rsplit("\x06\x16", 1)[-1] for member in table} == {q.name for q in [*queues, other]}
        with conn.Producer() as producer:
            producer.publish({"n": "run"}, exchange=exchange, routing_key=other.name, retry=False)
        assert fr.llen(other.name) == 1


def test_an_out_of_memory_reply_is_a_connection_error_not_a_fatal_one() -> None:
    """Celery reconnects on a connection error and stops the worker on any other: Redis being full is the former."""
    assert issubclass(redis.exceptions.OutOfMemoryError, CONNECTION_ERRORS)
    assert redis.exceptions.OutOfMemoryError in GuardedRedisTransport.connection_errors


def test_after_a_refusal_the_public_queue_is_skipped_for_a_moment(fr: redis.Redis, small_server: RedisServer) -> None:
    """The intake gate: after 'Redis is full' the consumer takes delivery runs only, for PAUSE_S (injected clock)."""
    now = [0.0]
    gate = IntakeGate(clock=lambda: now[0], pause_s=1.0)
    original = broker.INTAKE_GATE
    broker.INTAKE_GATE = gate
    try:
        with connect(small_server) as conn:
            publish(conn, PUBLIC, "intake")
            publish(conn, INTERNAL, "run")
            gate.refused()
            got = consume_from(conn, [PUBLIC, INTERNAL], 1)
            assert [m.payload["n"] for m in got] == ["run"] and fr.llen(PUBLIC_QUEUE) == 1
            now[0] += 1.0
            assert not gate.paused()
            assert [m.payload["n"] for m in consume_from(conn, [PUBLIC, INTERNAL], 1)] == ["intake"]
    finally:
        broker.INTAKE_GATE = original


def consume_from(conn: Connection, queues: list[Queue], count: int) -> list[Any]:
    got: list[Any] = []
    with conn.Consumer(queues, callbacks=[lambda body, message: got.append(message)], prefetch_count=count):
        while len(got) < count:
            conn.drain_events(timeout=5)
    for message in got:
        message.ack()
    return got


def test_a_popped_message_survives_a_dropped_connection_before_it_is_recorded(
    fr: redis.Redis, small_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record of a popped message is sent again after a connection error: the message is not lost."""
    real = broker._script
    failures = [redis.exceptions.ConnectionError("connection reset by peer")]

    def flaky(client: redis.Redis, name: str) -> Any:
        script = real(client, name)
        if name != "unacked_add":
            return script

        def call(**kwargs: Any) -> Any:
            if failures:
                raise failures.pop()
            return script(**kwargs)

        return call

    monkeypatch.setattr(broker, "_script", flaky)
    monkeypatch.setattr(broker, "_sleep", lambda _: None)
    with connect(small_server) as conn:
        publish(conn, PUBLIC, "a")
        got = consume(conn, PUBLIC, 1)
        assert not failures and fr.hlen("unacked") == 1 and fr.llen(PUBLIC_QUEUE) == 0
        got[0].ack()
    assert fr.hlen("unacked") == 0


def test_delivery_runs_popped_are_counted_until_acked_and_a_full_gate_pops_intake_only(
    fr: redis.Redis, small_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A popped delivery run counts in the delivery gate until acked or rejected (intake does not count); at the
    cap the next pop takes an intake message although delivery runs wait (their thread is kept for intake)."""
    gate = broker.DeliveryGate(cap=1)
    monkeypatch.setattr(broker, "DELIVERY_GATE", gate)
    with connect(small_server) as conn:
        publish(conn, INTERNAL, "run1", "run2")
        run = consume(conn, INTERNAL, 1)[0]
        assert gate.full()
        publish(conn, PUBLIC, "intake")
        got: list[Any] = []
        with conn.Consumer([INTERNAL, PUBLIC], callbacks=[lambda body, message: got.append(message)], prefetch_count=9):
            conn.drain_events(timeout=5)
        assert [m.payload["n"] for m in got] == ["intake"] and gate.full()
        got[0].ack()
        run.ack()
        assert not gate.full() and fr.llen(INTERNAL_QUEUE) == 1
        consume(conn, INTERNAL, 1)
        assert gate.full()
        conn.default_channel.qos.restore_unacked()  # the channel closes (connection lost): the run goes back
        assert not gate.full() and fr.llen(INTERNAL_QUEUE) == 1
