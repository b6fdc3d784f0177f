"""Prometheus metrics: this worker's delivery events, and the deployment's state read from Redis at scrape time.

Two kinds of series (docs/metrics.md lists every one):

- this process's events (:class:`PrometheusObserver`): each worker counts its own; add them up
  across workers with ``sum``;
- readings of Redis (:class:`RedisCollector`): queue depths, the oldest due age, live workers,
  limiter use, Redis memory, the hold and the status counters. Every worker (and ``imunban
  exporter``) reports the same value: aggregate with ``max``, never ``sum``.

The registry served also carries the process and platform collectors and ``imunban_build_info``;
no ``_created`` series. No setting, key or signature is ever exported. Every series about an app
carries an ``app`` label (``-`` for a message rejected before its app was known).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from imunban.connection import server_time_ms, translated
from imunban.deployment import Deployment
from imunban.health import add_app_state, thresholds
from imunban.keys import DEFAULT_APP, Keys
from imunban.observe import ANSWER, CALL_KINDS, Observer
from imunban.settings import Settings
from imunban.state import STATES
from imunban.stats import COUNTERS, DEPLOYMENT_COUNTERS, status
from imunban.summary import NO_APP, Tally
from imunban.version import VERSION
from imunban.vitals import Vitals, read_vitals

log = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30, 60, 300)
BATCH_BUCKETS = (1, 2, 5, 10, 15, 19, 20)
#: ErrorCodes whose series exist from the start (at 0), so that an alert sees their first increase.
WATCHED_CODES = ("0", "60007")
DEPTH_STATES = ("queued", "scheduled", "in_flight", "dead")

# A _created series per counter and histogram doubles the series count for a timestamp nobody reads.
disable_created_metrics()  # type: ignore[no-untyped-call]


def new_registry() -> CollectorRegistry:
    """A registry with the process, platform and GC collectors and ``imunban_build_info{version}``."""
    registry = CollectorRegistry()
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(cast(Collector, collector))
    build = Gauge(
        "imunban_build_info", "Always 1: the imunban version this process runs", ["version"], registry=registry
    )
    build.labels(version=VERSION).set(1)
    return registry


class PrometheusObserver(Tally):
    """Delivery events as Prometheus series in ``registry``, labelled with :attr:`app` (see :meth:`bind`).

    It is also the worker's :class:`~imunban.summary.Tally`, so the summary line and the series agree.
    """

    def __init__(self, registry: CollectorRegistry | None = None, app: str = DEFAULT_APP) -> None:
        super().__init__(app)
        self.registry = registry or new_registry()
        r, a = self.registry, ["app"]
        self.calls = Counter(
            "imunban_api_calls", "Unban API calls: kind answer (code: its ErrorCode, 0 success), transport or internal",
            ["app", "kind", "code"], registry=r,
        )  # fmt: skip
        self.call_seconds = Histogram("imunban_api_call_seconds", "Unban API call duration", a, registry=r)
        self.batch_size = Histogram("imunban_batch_size", "Members per API call", a, buckets=BATCH_BUCKETS, registry=r)
        self.delivered_total = Counter("imunban_members_delivered", "Members delivered", a, registry=r)
        self.latency = Histogram("imunban_due_to_delivered_seconds", "Due time to delivery acknowledged", a,
                                 buckets=LATENCY_BUCKETS_S, registry=r)  # fmt: skip
        self.retries = Counter("imunban_retries", "Members handed back for another attempt", a, registry=r)
        self.dead_total = Counter("imunban_dead_letters", "Members dead-lettered by ErrorCode (0: transport failure)",
                                  ["app", "code"], registry=r)  # fmt: skip
        self.gone_total = Counter("imunban_group_gone", "Members ended because their group is gone", a, registry=r)
        self.limiter_seconds = Histogram(
            "imunban_limiter_wait_seconds", "Time spent waiting for a rate-limit slot", a,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5), registry=r,
        )  # fmt: skip
        self.rejected_total = Counter("imunban_rejected_messages", "Bad Celery messages rejected", ["app", "task"],
                                      registry=r)  # fmt: skip

    def bind(self, app: str) -> PrometheusObserver:
        """The same series, labelled ``app=app``: what one app's deliverer reports to.

        The app's series are created at 0 here: a counter that appears at its first event would hide
        that event from ``increase()`` (the alert rules rely on it).
        """
        bound = cast(PrometheusObserver, super().bind(app))
        for code in WATCHED_CODES:
            self.calls.labels(app=app, kind=ANSWER, code=code)
        for kind in CALL_KINDS[1:]:
            self.calls.labels(app=app, kind=kind, code="")
        for metric in (self.delivered_total, self.retries, self.gone_total):
            metric.labels(app=app)
        return bound

    def api_call(self, code: int, batch_size: int, duration_s: float, kind: str = ANSWER) -> None:
        super().api_call(code, batch_size, duration_s, kind)
        self.calls.labels(app=self.app, kind=kind, code=str(code) if kind == ANSWER else "").inc()
        self.call_seconds.labels(app=self.app).observe(duration_s)
        self.batch_size.labels(app=self.app).observe(batch_size)

    def limiter_wait(self, seconds: float) -> None:
        self.limiter_seconds.labels(app=self.app).observe(seconds)

    def delivered(self, latencies_ms: Sequence[int]) -> None:
        super().delivered(latencies_ms)
        self.delivered_total.labels(app=self.app).inc(len(latencies_ms))
        latency = self.latency.labels(app=self.app)
        for latency_ms in latencies_ms:
            latency.observe(max(0, latency_ms) / 1000)

    def retried(self, count: int) -> None:
        super().retried(count)
        self.retries.labels(app=self.app).inc(count)

    def dead(self, count: int, code: int) -> None:
        super().dead(count, code)
        self.dead_total.labels(app=self.app, code=str(code)).inc(count)

    def group_gone(self, count: int) -> None:
        super().group_gone(count)
        self.gone_total.labels(app=self.app).inc(count)

    def rejected(self, task: str) -> None:
        super().rejected(task)
        # A message is rejected before (or because) its app is known: the deployment's, not an app's.
        self.rejected_total.labels(app=NO_APP, task=task).inc()


@dataclass(frozen=True)
class AppReading:
    """One app as a scrape reads it from Redis."""

    status: Mapping[str, Any]
    vitals: Vitals
    rate_limit_per_s: float


def _gauge(name: str, doc: str, labels: Sequence[str] = ("app",)) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def redis_families(apps: Mapping[str, AppReading], deployment_counters: Mapping[str, int]) -> list[Any]:
    """The Redis-read series of one scrape, from its readings (pure: tests feed it readings)."""
    depth = _gauge("imunban_queue_depth", "Requests by state (read from Redis)", ("app", "state"))
    held = _gauge("imunban_hold_active", "1 while delivery is held for the whole app", ("app", "code"))
    hold_age = _gauge("imunban_hold_age_seconds", "How long the app's hold has lasted (0: no hold)")
    oldest = _gauge("imunban_oldest_due_age_seconds", "How long the oldest due request has waited (0: none due)")
    alive = _gauge("imunban_workers_alive", "Workers whose heartbeat is recent (10 s)")
    use = _gauge("imunban_limiter_use_ratio", "Share of the rate limit used lately (>= 1: callers queue for slots)")
    limit = _gauge("imunban_rate_limit_calls_per_second", "The app's configured rate limit (calls/s)")
    used = _gauge("imunban_redis_memory_used_bytes", "used_memory of the Redis node holding the app's keys")
    maximum = _gauge("imunban_redis_memory_max_bytes", "maxmemory of that Redis node (0: no limit)")
    counters = CounterMetricFamily(
        "imunban_status_counter", "The counters of `imunban status` (every worker's events, kept in Redis)",
        labels=["app", "counter"],
    )  # fmt: skip
    for name, reading in apps.items():
        snap, vitals = reading.status, reading.vitals
        for state in DEPTH_STATES:
            depth.add_metric([name, state], float(snap[state]))
        hold: Mapping[str, Any] | None = snap["hold"]
        held.add_metric([name, str(hold["code"]) if hold else ""], 1.0 if hold else 0.0)
        hold_age.add_metric([name], max(0, vitals.now_ms - int(hold["since_ms"])) / 1000 if hold else 0.0)
        oldest.add_metric([name], vitals.oldest_due_age_s)
        alive.add_metric([name], float(vitals.workers_alive))
        use.add_metric([name], round(vitals.limiter_use, 4))
        limit.add_metric([name], reading.rate_limit_per_s)
        if vitals.memory is not None:
            used.add_metric([name], float(vitals.memory.used_bytes))
            maximum.add_metric([name], float(vitals.memory.max_bytes))
        for counter in COUNTERS:
            counters.add_metric([name, counter], float(snap["counters"][counter]))
    for counter, value in deployment_counters.items():
        counters.add_metric([NO_APP, counter], float(value))
    return [depth, held, hold_age, oldest, alive, use, limit, used, maximum, counters]


class RedisCollector:
    """The deployment's state, read from Redis when Prometheus scrapes (every scraper reports the same)."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def read(self) -> tuple[dict[str, AppReading], dict[str, int]]:
        client = self.deployment.client
        apps: dict[str, AppReading] = {}
        for app in self.deployment:
            snap = status(client, app.keys)
            now_ms = server_time_ms(client, app.keys.stats)
            apps[app.name] = AppReading(snap, read_vitals(client, app.keys, now_ms), app.rate_limit_per_s)
        with translated("metrics"):
            raw = cast(dict[str, str], client.hgetall(Keys(self.deployment.settings.key_prefix).deployment_stats))
        return apps, {name: int(raw.get(name, 0)) for name in DEPLOYMENT_COUNTERS}

    def collect(self) -> Iterator[Any]:
        up = _gauge("imunban_redis_up", "1 when this scrape could read Redis, else 0 (and no Redis-read series)", ())
        try:
            apps, deployment_counters = self.read()
        except Exception:  # a scrape must not fail because Redis blinked
            log.warning("metrics: could not read Redis", exc_info=True)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from redis_families(apps, deployment_counters)


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
    """A Prometheus observer when the metrics endpoint is on, else a plain tally (for the summary line)."""
    return PrometheusObserver() if settings.metrics_port else Tally()


def serve(registry: CollectorRegistry, deployment: Deployment, host: str, port: int) -> int:
    """Add the Redis-read series to ``registry`` and serve it on http://HOST:PORT/metrics; returns the port."""
    registry.register(RedisCollector(deployment))
    registry.register(StateCollector(deployment))
    server, _ = start_http_server(port, addr=host, registry=registry)
    bound = int(server.server_address[1])
    log.info("metrics on http://%s:%d/metrics", host, bound)
    return bound


def start_metrics_server(deployment: Deployment) -> int | None:
    """Serve /metrics on IMUNBAN_METRICS_HOST:IMUNBAN_METRICS_PORT; returns the port, None if off."""
    observer, settings = deployment.observer, deployment.settings
    if not settings.metrics_port or not isinstance(observer, PrometheusObserver):
        return None
    return serve(observer.registry, deployment, settings.metrics_host, settings.metrics_port)
