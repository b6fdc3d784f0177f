"""The broker-message guards (tasks/guard.py) as pure checks, and the broker TLS default they set."""

from __future__ import annotations

import base64
import ssl
from typing import Any

import pytest

from imunban.settings import Settings
from imunban_celery.app import create_app
from imunban_celery.guard import envelope_problem, transport_problem

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
    app = create_app(Settings.from_env({"IMUNBAN_REDIS_URL": "rediss://:pw@127.0.0.1:6380/0"}))
    assert app.conf.worker_consumer == "imunban_celery.guard:GuardedConsumer"
    assert app.conf.broker_transport == "imunban_celery.guard:GuardedRedisTransport"
    assert app.connection_for_write().ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    plain = create_app(Settings.from_env({"IMUNBAN_REDIS_URL": "redis://127.0.0.1:6379/0"}))
    assert not plain.connection_for_write().ssl
    for name in ("imunban.unban", "imunban.cancel", "imunban.deliver"):
        assert plain.tasks[name].Strategy == "imunban_celery.guard:guarded_strategy"
        assert plain.tasks[name].run is not app.tasks[name].run  # each app runs its own closures
