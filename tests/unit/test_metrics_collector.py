"""The Prometheus side without a server: the scrape-time collector on a fake Redis, and which observer a worker gets."""

from __future__ import annotations

import fakeredis
from prometheus_client import CollectorRegistry, generate_latest

from helpers import deployment_on, metric_samples, metric_value
from imunban.keys import Keys
from imunban.metrics import PrometheusObserver, QueueDepthCollector, observer_for
from imunban.observe import Observer
from imunban.settings import Settings

KEYS = Keys("imunban")


def scrape(client: fakeredis.FakeRedis) -> str:
    registry = CollectorRegistry()
    registry.register(QueueDepthCollector(deployment_on(client, KEYS)))
    return generate_latest(registry).decode()


def test_collector_reports_depths_and_no_hold(fake_redis: fakeredis.FakeRedis) -> None:
    """Queued, scheduled, in flight and dead come from the stats gauges and sets; no hold reads 0 with no code."""
    fake_redis.hset(KEYS.stats, mapping={"ready": 7, "scheduled": 3, "delivered": 100})
    fake_redis.zadd(KEYS.inflight, {"g\x1fa": 1})
    fake_redis.zadd(KEYS.dead, {"g\x1fb": 1, "g\x1fc": 2})
    text = scrape(fake_redis)
    depths = {state: metric_value(text, "imunban_queue_depth", state=state) for state in ("queued", "scheduled")}
    assert depths == {"queued": 7, "scheduled": 3}
    assert metric_value(text, "imunban_queue_depth", state="in_flight") == 1
    assert metric_value(text, "imunban_queue_depth", state="dead") == 2
    assert metric_samples(text)[("imunban_hold_active", (("app", "default"), ("code", "")))] == 0


def test_collector_reports_the_hold_code(fake_redis: fakeredis.FakeRedis) -> None:
    """During a hold, imunban_hold_active is 1 and labelled with the hold's ErrorCode."""
    fake_redis.hset(KEYS.hold, mapping={"code": 70003, "info": "usersig invalid", "since_ms": 1, "next_probe_ms": 2})
    text = scrape(fake_redis)
    assert metric_value(text, "imunban_hold_active", code="70003") == 1
    assert ("imunban_hold_active", (("app", "default"), ("code", ""))) not in metric_samples(text)


def test_collector_survives_redis_down() -> None:
    """A scrape while Redis is unreachable yields no depth series instead of failing."""
    server = fakeredis.FakeServer()
    server.connected = False
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    assert list(QueueDepthCollector(deployment_on(client, KEYS)).collect()) == []
    assert "imunban_queue_depth" not in scrape(client)


def test_observer_is_prometheus_only_with_a_metrics_port() -> None:
    """IMUNBAN_METRICS_PORT set: a Prometheus observer; unset: the no-op base observer."""
    assert isinstance(observer_for(Settings.from_env({"IMUNBAN_METRICS_PORT": "9464"})), PrometheusObserver)
    quiet = observer_for(Settings.from_env({}))
    assert type(quiet) is Observer


def test_every_series_is_labelled_with_its_app() -> None:
    """An observer bound to an app labels its series app=NAME; two apps share one registry, apart."""
    from prometheus_client import generate_latest

    from imunban.metrics import PrometheusObserver

    root = PrometheusObserver()
    root.bind("cn").delivered([5, 7])
    root.bind("intl").api_call(0, 20, 0.01)
    root.bind("intl").hold(60006)
    text = generate_latest(root.registry).decode()
    assert metric_value(text, "imunban_members_delivered_total", app="cn") == 2
    assert metric_value(text, "imunban_members_delivered_total", app="intl") == 0
    assert metric_value(text, "imunban_api_calls_total", app="intl", code="0") == 1
    assert metric_value(text, "imunban_hold", app="intl") == 1
    samples = [labels for (name, labels) in metric_samples(text) if name.startswith("imunban_")]
    assert samples and all("app" in dict(labels) for labels in samples)
