"""Prometheus metrics: an Observer that counts delivery events, and queue depths read at scrape time.

The endpoint serves only counters and gauges; no setting, key or signature is ever exported. Every
series carries an ``app`` label: the app it is about (``-`` for a message rejected before its app was known).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

from imunban.deployment import Deployment
from imunban.health import add_app_state, thresholds
from imunban.keys import DEFAULT_APP
from imunban.observe import Observer
from imunban.settings import Settings
from imunban.state import STATES
from imunban.stats import status

log = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30, 60, 300)
BATCH_BUCKETS = (1, 2, 5, 10, 15, 19, 20)


class PrometheusObserver(Observer):
    """Delivery events as Prometheus series in ``registry``, labelled with :attr:`app` (see :meth:`bind`)."""

    def __init__(self, registry: CollectorRegistry | None = None, app: str = DEFAULT_APP) -> None:
        self.registry = registry or CollectorRegistry()
        self.app = app
        r, a = self.registry, ["app"]
        self.calls = Counter("imunban_api_calls", "Unban API calls by ErrorCode (-1: transport failure)",
                             ["app", "code"], registry=r)  # fmt: skip
        self.call_seconds = Histogram("imunban_api_call_seconds", "Unban API call duration", a, registry=r)
        self.batch_size = Histogram("imunban_batch_size", "Members per API call", a, buckets=BATCH_BUCKETS, registry=r)
        self.delivered_total = Counter("imunban_members_delivered", "Members delivered", a, registry=r)
        self.latency = Histogram("imunban_due_to_delivered_seconds", "Due time to delivery acknowledged", a,
                                 buckets=LATENCY_BUCKETS_S, registry=r)  # fmt: skip
        self.retries = Counter("imunban_retries", "Members handed back for another attempt", a, registry=r)
        self.dead_total = Counter("imunban_dead_letters", "Members dead-lettered by ErrorCode", ["app", "code"],
                                  registry=r)  # fmt: skip
        self.gone_total = Counter("imunban_group_gone", "Members ended because their group is gone", a, registry=r)
        self.limiter_seconds = Histogram(
            "imunban_limiter_wait_seconds", "Time spent waiting for a rate-limit slot", a,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5), registry=r,
        )  # fmt: skip
        self.held = Gauge("imunban_hold", "1 while delivery is held by this worker's last observation", a, registry=r)
        self.rejected_total = Counter("imunban_rejected_messages", "Bad Celery messages rejected", ["app", "task"],
                                      registry=r)  # fmt: skip

    def bind(self, app: str) -> PrometheusObserver:
        """The same series, labelled ``app=app``: what one app's deliverer reports to."""
        bound = copy.copy(self)
        bound.app = app
        return bound

    def api_call(self, code: int, batch_size: int, duration_s: float) -> None:
        self.calls.labels(app=self.app, code=str(code)).inc()
        self.call_seconds.labels(app=self.app).observe(duration_s)
        self.batch_size.labels(app=self.app).observe(batch_size)

    def limiter_wait(self, seconds: float) -> None:
        self.limiter_seconds.labels(app=self.app).observe(seconds)

    def delivered(self, latencies_ms: Sequence[int]) -> None:
        self.delivered_total.labels(app=self.app).inc(len(latencies_ms))
        latency = self.latency.labels(app=self.app)
        for latency_ms in latencies_ms:
            latency.observe(max(0, latency_ms) / 1000)

    def retried(self, count: int) -> None:
        self.retries.labels(app=self.app).inc(count)

    def dead(self, count: int, code: int) -> None:
        self.dead_total.labels(app=self.app, code=str(code)).inc(count)

    def group_gone(self, count: int) -> None:
        self.gone_total.labels(app=self.app).inc(count)

    def hold(self, code: int | None) -> None:
        self.held.labels(app=self.app).set(0 if code is None else 1)

    def rejected(self, task: str) -> None:
        # A message is rejected before (or because) its app is known: the deployment's, not an app's.
        self.rejected_total.labels(app="-", task=task).inc()


class QueueDepthCollector:
    """Queue depths and the hold, read from Redis when Prometheus scrapes."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            snapshots = {app.name: status(self.deployment.client, app.keys) for app in self.deployment}
        except Exception:  # a scrape must not fail because Redis blinked
            log.warning("metrics: could not read queue depths", exc_info=True)
            return
        depth = GaugeMetricFamily("imunban_queue_depth", "Requests by state", labels=["app", "state"])
        held = GaugeMetricFamily(
            "imunban_hold_active", "1 while delivery is held for the whole app", labels=["app", "code"]
        )
        for name, snapshot in snapshots.items():
            for state in ("queued", "scheduled", "in_flight", "dead"):
                depth.add_metric([name, state], float(snapshot[state]))
            hold: dict[str, Any] | None = snapshot["hold"]
            held.add_metric([name, str(hold["code"]) if hold else ""], 1.0 if hold else 0.0)
        yield depth
        yield held


class StateCollector:
    """``imunban_state{app, state}``: 1 for each app's current state (imunban.state), 0 for the other states.

    Read from Redis at scrape time, as ``imunban status`` reads it: a worker whose pump is stuck, or one
    that beats but does not consume, still exports its app as ``stalled``.
    """

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def collect(self) -> Iterator[GaugeMetricFamily]:
        d = self.deployment
        try:
            limits = thresholds(d.settings)
            states = {app.name: add_app_state(d.client, app.keys, status(d.client, app.keys), limits) for app in d}
        except Exception:  # a scrape must not fail because Redis blinked
            log.warning("metrics: could not read the apps' states", exc_info=True)
            return
        family = GaugeMetricFamily(
            "imunban_state", "1 for the app's current state, 0 for the others (imunban status)", labels=["app", "state"]
        )
        for name, state in states.items():
            for each in STATES:
                family.add_metric([name, each], 1.0 if each == state.state else 0.0)
        yield family


def observer_for(settings: Settings) -> Observer:
    """A Prometheus observer when the metrics endpoint is on, else the no-op base."""
    return PrometheusObserver() if settings.metrics_port else Observer()


def start_metrics_server(deployment: Deployment) -> int | None:
    """Serve /metrics on IMUNBAN_METRICS_HOST:IMUNBAN_METRICS_PORT; returns the port, None if off."""
    observer, settings = deployment.observer, deployment.settings
    if not settings.metrics_port or not isinstance(observer, PrometheusObserver):
        return None
    observer.registry.register(QueueDepthCollector(deployment))
    observer.registry.register(StateCollector(deployment))
    start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=observer.registry)
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    return settings.metrics_port
