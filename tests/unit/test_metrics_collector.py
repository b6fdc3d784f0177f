"""The Prometheus side without a server: the observer's series, the Redis-read families from readings, the registry."""

from __future__ import annotations

from typing import Any

import fakeredis
from prometheus_client import CollectorRegistry, generate_latest

from helpers import deployment_on, metric_samples, metric_value
from imunban import __version__
from imunban.keys import Keys
from imunban.metrics import (
    DEPTH_STATES,
    AppReading,
    PrometheusObserver,
    RedisCollector,
    new_registry,
    observer_for,
    redis_families,
)
from imunban.observe import INTERNAL, TRANSPORT
from imunban.settings import Settings
from imunban.stats import COUNTERS
from imunban.summary import Tally
from imunban.vitals import RedisMemory, Vitals

KEYS = Keys("imunban")
NOW_MS = 1_700_000_000_000


def status_doc(**over: Any) -> dict[str, Any]:
    """A status snapshot as stats.status shapes it."""
    doc: dict[str, Any] = {"queued": 0, "scheduled": 0, "in_flight": 0, "dead": 0, "hold": None}
    doc["counters"] = dict.fromkeys(COUNTERS, 0)
    doc.update(over)
    return doc


def vitals(**over: Any) -> Vitals:
    fields: dict[str, Any] = {
        "oldest_due_ms": None, "workers_alive": 2, "limiter_use": 0.25,
        "memory": RedisMemory(100, 1000), "now_ms": NOW_MS,
    }  # fmt: skip
    fields.update(over)
    return Vitals(**fields)


class Families:
    """redis_families from readings, rendered as a scrape."""

    def __init__(self, apps: dict[str, AppReading], deployment: dict[str, int] | None = None) -> None:
        self.families = redis_families(apps, deployment or {"rejected_messages": 0})

    def collect(self) -> Any:
        return iter(self.families)


def render(apps: dict[str, AppReading], deployment: dict[str, int] | None = None) -> str:
    registry = CollectorRegistry()
    registry.register(Families(apps, deployment))  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def test_families_from_readings() -> None:
    """Depths, the oldest due age, live workers, limiter use, the limit, memory and the counters come from readings."""
    counters = {**dict.fromkeys(COUNTERS, 0), "reaped": 4, "internal_errors": 1, "stale_acks": 2}
    snap = status_doc(queued=7, scheduled=3, in_flight=1, dead=2, counters=counters)
    text = render({"default": AppReading(snap, vitals(oldest_due_ms=NOW_MS - 27_500), 190.0)}, {"rejected_messages": 5})
    depths = {s: metric_value(text, "imunban_queue_depth", state=s) for s in DEPTH_STATES}
    assert depths == {"queued": 7, "scheduled": 3, "in_flight": 1, "dead": 2}
    assert metric_value(text, "imunban_oldest_due_age_seconds", app="default") == 27.5
    assert metric_value(text, "imunban_workers_alive") == 2
    assert metric_value(text, "imunban_limiter_use_ratio") == 0.25
    assert metric_value(text, "imunban_rate_limit_calls_per_second") == 190
    assert metric_value(text, "imunban_redis_memory_used_bytes") == 100
    assert metric_value(text, "imunban_redis_memory_max_bytes") == 1000
    assert metric_value(text, "imunban_status_counter_total", counter="reaped") == 4
    assert metric_value(text, "imunban_status_counter_total", counter="internal_errors") == 1
    assert metric_value(text, "imunban_status_counter_total", counter="stale_acks") == 2
    assert metric_samples(text)[("imunban_status_counter_total", (("app", "-"), ("counter", "rejected_messages")))] == 5
    assert metric_value(text, "imunban_hold_active", code="") == 0
    assert metric_value(text, "imunban_hold_age_seconds") == 0


def test_families_show_the_hold_and_its_age() -> None:
    """During a hold, imunban_hold_active is 1 with the hold's ErrorCode, and the hold's age counts from its start."""
    hold = {"code": 70003, "info": "usersig invalid", "since_ms": NOW_MS - 150_000, "next_probe_ms": NOW_MS}
    text = render({"default": AppReading(status_doc(hold=hold), vitals(), 190.0)})
    assert metric_value(text, "imunban_hold_active", code="70003") == 1
    assert ("imunban_hold_active", (("app", "default"), ("code", ""))) not in metric_samples(text)
    assert metric_value(text, "imunban_hold_age_seconds") == 150


def test_nothing_due_reads_zero_and_unknown_memory_is_left_out() -> None:
    """With nothing due the oldest due age is 0 (not absent); without INFO the memory series are left out."""
    text = render({"default": AppReading(status_doc(), vitals(memory=None), 190.0)})
    assert ("imunban_oldest_due_age_seconds", (("app", "default"),)) in metric_samples(text)
    assert metric_value(text, "imunban_oldest_due_age_seconds") == 0
    assert "imunban_redis_memory_used_bytes{" not in text


def test_every_app_has_its_own_series() -> None:
    """Two apps: each Redis-read series once per app, labelled with it."""
    text = render(
        {name: AppReading(status_doc(queued=n), vitals(workers_alive=n), 100.0) for name, n in [("cn", 1), ("intl", 5)]}
    )
    assert metric_value(text, "imunban_queue_depth", app="intl", state="queued") == 5
    assert metric_value(text, "imunban_workers_alive", app="cn") == 1


def test_collector_survives_redis_down() -> None:
    """A scrape while Redis is unreachable says imunban_redis_up 0 and has no Redis-read series instead of failing."""
    server = fakeredis.FakeServer()
    server.connected = False
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    registry = CollectorRegistry()
    registry.register(RedisCollector(deployment_on(client, KEYS)))
    text = generate_latest(registry).decode()
    assert metric_value(text, "imunban_redis_up") == 0
    assert "imunban_queue_depth" not in text


def test_observer_is_prometheus_only_with_a_metrics_port() -> None:
    """IMUNBAN_METRICS_PORT set: a Prometheus observer; unset: a tally for the summary line, no registry."""
    assert isinstance(observer_for(Settings.from_env({"IMUNBAN_METRICS_PORT": "9464"})), PrometheusObserver)
    quiet = observer_for(Settings.from_env({}))
    assert type(quiet) is Tally


def test_every_series_is_labelled_with_its_app() -> None:
    """An observer bound to an app labels its series app=NAME; two apps share one registry, apart."""
    root = PrometheusObserver()
    root.bind("cn").delivered([5, 7])
    root.bind("intl").api_call(0, 20, 0.01)
    text = generate_latest(root.registry).decode()
    assert metric_value(text, "imunban_members_delivered_total", app="cn") == 2
    assert metric_value(text, "imunban_members_delivered_total", app="intl") == 0
    assert metric_value(text, "imunban_api_calls_total", app="intl", kind="answer", code="0") == 1
    about_apps = [
        dict(labels)
        for (name, labels) in metric_samples(text)
        if name.startswith("imunban_") and name != "imunban_build_info"
    ]
    assert about_apps and all("app" in labels for labels in about_apps)


def test_transport_failures_have_one_spelling() -> None:
    """Answers count by ErrorCode; every call without an answer counts as kind transport or internal, code empty."""
    observer = PrometheusObserver().bind("default")
    observer.api_call(0, 20, 0.01)
    observer.api_call(10002, 3, 0.2)
    observer.api_call(0, 5, 1.0, TRANSPORT)
    observer.api_call(0, 5, 1.0, TRANSPORT)
    observer.api_call(0, 1, 0.0, INTERNAL)
    text = generate_latest(observer.registry).decode()
    assert metric_value(text, "imunban_api_calls_total", kind="answer", code="0") == 1
    assert metric_value(text, "imunban_api_calls_total", kind="answer", code="10002") == 1
    assert metric_value(text, "imunban_api_calls_total", kind="transport", code="") == 2
    assert metric_value(text, "imunban_api_calls_total", kind="internal", code="") == 1
    codes = {dict(labels)["code"] for (name, labels) in metric_samples(text) if name == "imunban_api_calls_total"}
    assert not any(code.startswith("-") for code in codes)


def test_watched_series_exist_from_the_start() -> None:
    """A bound app's 60007 answers, transport failures and members delivered exist at 0 before any event."""
    text = generate_latest(PrometheusObserver().bind("intl").registry).decode()
    samples = metric_samples(text)
    assert samples[("imunban_api_calls_total", (("app", "intl"), ("code", "60007"), ("kind", "answer")))] == 0
    assert samples[("imunban_api_calls_total", (("app", "intl"), ("code", ""), ("kind", "transport")))] == 0
    assert samples[("imunban_members_delivered_total", (("app", "intl"),))] == 0


def test_registry_has_process_platform_and_build_info_and_no_created() -> None:
    """The served registry carries process_* and python_info, imunban_build_info{version}, and no _created series."""
    observer = PrometheusObserver()
    observer.bind("default").delivered([1])
    text = generate_latest(observer.registry).decode()
    names = {name for name, _ in metric_samples(text)}
    assert "python_info" in names
    assert any(name.startswith("process_") for name in names)  # Linux: /proc is there
    assert metric_value(text, "imunban_build_info", version=__version__) == 1
    assert not [name for name in names if name.endswith("_created")]
    assert "imunban_build_info" in generate_latest(new_registry()).decode()
