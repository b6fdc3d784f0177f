"""The broker-message guards (imunban_celery/guard.py): pure checks, the TLS default, and counting rejections."""

from __future__ import annotations

import base64
import ssl
from typing import Any

import fakeredis
import pytest
from celery import Celery
from prometheus_client import generate_latest

import imunban_celery.context
from helpers import metric_value
from imunban.deployment import Deployment, open_deployment
from imunban.keys import Keys
from imunban.metrics import PrometheusObserver
from imunban.settings import Settings
from imunban_celery import guard
from imunban_celery.app import create_celery
from imunban_celery.context import context_of
from imunban_celery.guard import count_rejection, envelope_problem, transport_problem
from imunban_celery.unban import cancel, unban

GOOD_ENVELOPE: dict[str, Any] = {
    "body": base64.b64encode(b'[[], {"group_id": "g", "members": ["a"]}, {}]').decode(),
    "content-encoding": "utf-8",
    "content-type": "application/json",
    "headers": {"task": "imunban.unban", "id": "1"},
    "properties": {
        "delivery_tag": "t",
        "body_encoding": "base64",
        "delivery_info": {"exchange": "", "routing_key": "imunban"},
    },
}


def with_changes(**changes: Any) -> dict[str, Any]:
    envelope = {**GOOD_ENVELOPE, "properties": dict(GOOD_ENVELOPE["properties"])}
    for key, value in changes.items():
        if key.startswith("p_"):
            envelope["properties"][key[2:]] = value
        else:
            envelope[key.replace("_", "-")] = value
    return envelope


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ([1, 2], "not a JSON object"),
        ({"body": ""}, "'properties' must be an object"),
        (with_changes(p_delivery_tag=None), "delivery_tag"),
        (with_changes(p_delivery_tag={"a": 1}), "delivery_tag"),
        (with_changes(p_delivery_info={"exchange": ""}), "delivery_info"),
        (with_changes(headers=["x"]), "'headers' must be an object"),
        (with_changes(content_type=5), "'content-type' must be a string"),
        (with_changes(body=5), "'body' must be a string"),
        (with_changes(p_body_encoding="rot13"), "body_encoding"),
        (with_changes(body="!!not base64!!"), "not valid base64"),
    ],
)
def test_transport_problems(raw: Any, problem: str) -> None:
    """Queue items that kombu would choke on are named, not raised."""
    found = transport_problem(raw)
    assert found is not None and problem in found


def test_transport_accepts_a_celery_envelope() -> None:
    """A well-formed envelope passes (also with a plain, non-base64 body)."""
    assert transport_problem(GOOD_ENVELOPE) is None
    assert transport_problem(with_changes(p_body_encoding=None, body="[[], {}, {}]")) is None


@pytest.mark.parametrize(
    ("headers", "payload", "problem"),
    [
        (["x"], [[], {}, {}], "headers are not a mapping"),
        ({"task": "t"}, [[], {}, {}], "header 'id' must be a string"),
        ({"id": "1"}, [[], {}], "body must be [args, kwargs, embed]"),
        ({"id": "1"}, [[], {}, "x"], "embed"),
        ({"id": "1"}, [{}, {}, {}], "args must be a JSON array"),
        ({"id": "1"}, [[], [], {}], "kwargs must be a JSON object"),
        ({"id": "1"}, "text", "body must be a JSON array"),
        ({"id": "1"}, {"args": "x"}, "args must be a JSON array"),
        ({}, {"args": [], "kwargs": {}}, "message id must be a string"),
        ({"id": "1", "eta": "2030-01-01T00:00:00"}, [[], {}, None], "eta/countdown"),
        ({}, {"id": "1", "args": [], "kwargs": {}, "eta": "2030-01-01"}, "eta/countdown"),
    ],
)
def test_envelope_problems(headers: Any, payload: Any, problem: str) -> None:
    """Task messages Celery's own code would crash on, or would park in memory (eta), are named."""
    found = envelope_problem(headers, payload)
    assert found is not None and problem in found


def test_envelope_accepts_protocol_2_and_1() -> None:
    """A protocol-2 body and a protocol-1 body without eta pass."""
    assert envelope_problem({"id": "1", "eta": None}, [[], {"group_id": "g"}, None]) is None
    assert envelope_problem({}, {"id": "1", "task": "imunban.unban", "args": [], "kwargs": {}}) is None


def test_guarded_app_configuration() -> None:
    """The app consumes through the guards; a rediss:// broker gets TLS with certificate checks."""
    app = create_celery(Settings.from_env({"IMUNBAN_REDIS_URL": "rediss://:pw@127.0.0.1:6380/0"}))
    assert app.conf.worker_consumer == "imunban_celery.guard:GuardedConsumer"
    assert app.conf.broker_transport == "imunban_celery.guard:GuardedRedisTransport"
    assert app.connection_for_write().ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    plain = create_celery(Settings.from_env({"IMUNBAN_REDIS_URL": "redis://127.0.0.1:6379/0"}))
    assert not plain.connection_for_write().ssl
    for name in ("imunban.unban", "imunban.cancel", "imunban.deliver"):
        assert plain.tasks[name].Strategy == "imunban_celery.guard:guarded_strategy"
        assert plain.tasks[name].run is not app.tasks[name].run  # each app runs its own closures


# -- counting rejections (a fake Redis: counting is one HINCRBY, no Lua) ---------------------------

CREDENTIALS = {
    "IMUNBAN_SDKAPPID": "1400000000",
    "IMUNBAN_SECRET_KEY": "not-a-real-key",
    "IMUNBAN_BASE_URL": "http://127.0.0.1:1",  # never called
}


def app_on(client: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch, **env: str) -> Celery:
    """A guarded Celery app whose deployment, when first opened, talks to ``client``."""

    def on_client(settings: Settings, **kwargs: Any) -> Deployment:
        return open_deployment(settings, client=client, **kwargs)

    monkeypatch.setattr(imunban_celery.context, "open_deployment", on_client)
    url = "redis://127.0.0.1:1/0"  # never dialled: the deployment uses the fake client
    return create_celery(Settings.from_env({**CREDENTIALS, "IMUNBAN_REDIS_URL": url, **env}))


def rejections(client: fakeredis.FakeRedis) -> int:
    return int(client.hget(Keys("imunban").deployment_stats, "rejected_messages") or 0)


def test_rejection_is_counted_in_the_store_and_the_metrics(
    fake_redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each rejection adds one to rejected_messages in Redis and to imunban_rejected_messages_total{task}."""
    app = app_on(fake_redis, monkeypatch, IMUNBAN_METRICS_PORT="9464")
    count_rejection("imunban.unban", "group_id: must not be empty", app)
    count_rejection("imunban.unban", "members: is required", app)
    count_rejection("imunban.cancel", "members: is required", app)
    assert rejections(fake_redis) == 3
    observer = context_of(app).deployment.observer
    assert isinstance(observer, PrometheusObserver)
    text = generate_latest(observer.registry).decode()
    assert metric_value(text, "imunban_rejected_messages_total", task="imunban.unban") == 2
    assert metric_value(text, "imunban_rejected_messages_total", task="imunban.cancel") == 1


def test_transport_level_rejection_counts_in_the_installed_app(
    fake_redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rejection without an app (garbage on the queue) counts in the app the guards were installed for."""
    app = app_on(fake_redis, monkeypatch)
    assert guard._transport_context is context_of(app)
    count_rejection("imunban.unban", "not a JSON object")
    assert rejections(fake_redis) == 1


def test_counting_never_raises_when_redis_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """With Redis unreachable a rejection is still logged, and counting it does not raise."""
    server = fakeredis.FakeServer()
    server.connected = False
    app = app_on(fakeredis.FakeRedis(server=server, decode_responses=True), monkeypatch)
    count_rejection("imunban.unban", "members: is required", app)
    server.connected = True
    assert rejections(fakeredis.FakeRedis(server=server, decode_responses=True)) == 0


@pytest.mark.parametrize(
    ("task", "kwargs", "field"),
    [
        (unban, {"members": ["a"]}, "group_id"),
        (unban, {"group_id": "g", "members": "alice"}, "members"),
        (unban, {"group_id": "g", "members": ["a"], "colour": "red"}, "colour"),
        (unban, {"group_id": "g", "members": ["a"], "priority": "urgent"}, "priority"),
        (cancel, {"group_id": "g"}, "members"),
        (cancel, {"group_id": "g", "members": ["a"], "at": 1}, "at"),
    ],
)
def test_bad_task_kwargs_are_rejected_counted_and_not_stored(
    fake_redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch, task: Any, kwargs: dict[str, Any], field: str
) -> None:
    """A task body given bad kwargs answers a rejection naming the field, counts it, and stores nothing else."""
    app = app_on(fake_redis, monkeypatch)
    result = task(app, **kwargs)
    assert result["rejected"].startswith(field), result
    assert rejections(fake_redis) == 1
    keys = Keys("imunban")
    assert set(fake_redis.keys("*")) <= {keys.deployment_stats, keys.apps_seen}  # counters and the app registry
