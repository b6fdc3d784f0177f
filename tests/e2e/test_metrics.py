"""Observability: the Prometheus endpoint of a worker, and logs free of the secret and the usersig."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis.backoff import NoBackoff
from redis.retry import Retry

import redis
from imunban.hold import Hold
from imunban.keys import Keys
from imunban.local.cluster import LocalCluster
from imunban.local.redis_server import free_port
from imunban.metrics import PrometheusObserver, QueueDepthCollector
from imunban.sim.core import SimConfig
from imunban.store import Store
from imunban.validation import UnbanRequest


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


# -- unit: the observer and the collector ------------------------------------------------------


class _Runtime:
    """Just what QueueDepthCollector reads."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys


def test_observer_series_move(r: redis.Redis) -> None:
    """Each delivery event moves its series; queue depths and the hold are read at scrape time."""
    keys = Keys("imunban")
    observer = PrometheusObserver()
    observer.registry.register(QueueDepthCollector(_Runtime(r, keys)))  # type: ignore[arg-type]
    observer.api_call(0, 20, 0.05)
    observer.api_call(10002, 3, 0.2)
    observer.limiter_wait(0.004)
    observer.delivered([100, 2_500])
    observer.retried(3)
    observer.dead(1, 10004)
    observer.group_gone(2)
    observer.rejected("imunban.unban")
    Store(r, keys).enqueue([UnbanRequest("g", ("a", "b")), UnbanRequest("g", ("c",), 2_000_000_000_000)])
    Hold(r, keys).set(10007, "switched off")
    observer.hold(10007)
    text = generate_latest(observer.registry).decode()
    assert value(text, "imunban_api_calls_total", code="0") == 1
    assert value(text, "imunban_api_calls_total", code="10002") == 1
    assert value(text, "imunban_batch_size_count") == 2
    assert value(text, "imunban_batch_size_bucket", le="20.0") == 2
    assert value(text, "imunban_members_delivered_total") == 2
    assert value(text, "imunban_due_to_delivered_seconds_bucket", le="0.1") == 1
    assert value(text, "imunban_due_to_delivered_seconds_count") == 2
    assert value(text, "imunban_limiter_wait_seconds_count") == 1
    assert value(text, "imunban_retries_total") == 3
    assert value(text, "imunban_dead_letters_total", code="10004") == 1
    assert value(text, "imunban_group_gone_total") == 2
    assert value(text, "imunban_rejected_messages_total", task="imunban.unban") == 1
    assert value(text, "imunban_queue_depth", state="queued") == 2
    assert value(text, "imunban_queue_depth", state="scheduled") == 1
    assert value(text, "imunban_queue_depth", state="in_flight") == 0
    assert value(text, "imunban_hold_active", code="10007") == 1
    assert value(text, "imunban_hold") == 1


def test_collector_survives_redis_down() -> None:
    """A scrape while Redis is unreachable yields no depth series instead of failing."""
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    assert list(QueueDepthCollector(_Runtime(client, Keys())).collect()) == []  # type: ignore[arg-type]


# -- end to end: a worker's endpoint and logs ---------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One worker with the metrics endpoint on, DEBUG JSON logs, some 10002 answers and a poison member."""
    port = free_port()
    c = LocalCluster(
        tmp_path_factory.mktemp("metrics"),
        workers=1,
        sim_config=SimConfig(latency_ms=5, error_10002_rate=0.3, poison_members=frozenset({"poison"}), seed=3),
        env={
            "IMUNBAN_METRICS_PORT": str(port),
            "IMUNBAN_LOG_LEVEL": "DEBUG",
            "IMUNBAN_LOG_FORMAT": "json",
            "IMUNBAN_BACKOFF_BASE_MS": "50",
            "IMUNBAN_BACKOFF_CAP_MS": "200",
            "IMUNBAN_LINGER_MS": "20",
        },
    )
    c.start()
    c.metrics_url = f"http://127.0.0.1:{port}/metrics"  # type: ignore[attr-defined]
    yield c
    c.stop()


def scrape(cluster: LocalCluster) -> str:
    url: str = cluster.metrics_url  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while True:
        try:
            response = requests.get(url, timeout=5)
            response.raise_for_status()
            return response.text
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wait_for(predicate: Callable[[], bool], timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.mark.slow
def test_worker_endpoint_counters_move(cluster: LocalCluster) -> None:
    """Delivering moves calls by code, members delivered, retries, dead letters and latency; depths are shown."""
    before = scrape(cluster)
    assert value(before, "imunban_members_delivered_total") == 0
    assert ("imunban_queue_depth", (("state", "queued"),)) in samples(before)
    cluster.producer().bulk({"group_id": f"g{g}", "member": f"u{m}"} for g in range(10) for m in range(30))
    cluster.producer().enqueue("p", ["ok1", "poison"])
    assert cluster.wait_drained(60)
    after = scrape(cluster)
    assert value(after, "imunban_api_calls_total", code="0") > 0
    assert value(after, "imunban_api_calls_total", code="10002") > 0
    assert value(after, "imunban_members_delivered_total") >= 301
    assert value(after, "imunban_retries_total") > 0
    assert value(after, "imunban_dead_letters_total", code="10004") == 1
    assert value(after, "imunban_due_to_delivered_seconds_count") >= 301
    assert value(after, "imunban_batch_size_count") > 0
    assert value(after, "imunban_limiter_wait_seconds_count") > 0
    assert value(after, "imunban_queue_depth", state="dead") == 1
    assert value(after, "imunban_hold_active", code="") == 0


@pytest.mark.slow
def test_worker_endpoint_shows_hold_and_rejections(cluster: LocalCluster) -> None:
    """A hold shows as imunban_hold_active{code}; a rejected message counts by task."""
    rejected = value(scrape(cluster), "imunban_rejected_messages_total", task="imunban.unban")
    cluster.client.lpush("imunban", _envelope({"group_id": "", "members": ["a"]}))
    assert wait_for(
        lambda: value(scrape(cluster), "imunban_rejected_messages_total", task="imunban.unban") == rejected + 1
    )
    hold = Hold(cluster.client, Keys(cluster.settings().key_prefix))
    hold.set(70003, "usersig invalid")
    try:
        assert value(scrape(cluster), "imunban_hold_active", code="70003") == 1
    finally:
        hold.release()


@pytest.mark.slow
def test_no_secret_or_usersig_in_scrape_or_logs(cluster: LocalCluster) -> None:
    """Neither the secret key nor a usersig appears in the scrape or in the worker's DEBUG logs."""
    cluster.producer().enqueue("sig", ["a", "b"])
    assert cluster.wait_drained(30)
    text = scrape(cluster)
    assert cluster.secret not in text
    assert "usersig" not in text.lower()
    logs = "".join(p.read_text(errors="replace") for p in Path(cluster.root).glob("*.log"))
    assert "unban_group_member" in logs  # DEBUG request lines were logged, so the check means something
    assert cluster.secret not in logs
    leaked = re.findall(r"usersig=(?!REDACTED)[^&\s'\"]+", logs, re.IGNORECASE)
    assert not leaked, leaked[:3]
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert records and all({"ts", "level", "logger", "message"} <= set(rec) for rec in records)
    assert any(rec["logger"].startswith("imunban") or rec["logger"].startswith("worker") for rec in records)


def _envelope(kwargs: dict[str, Any]) -> str:
    import base64
    import uuid

    body = base64.b64encode(json.dumps([[], kwargs, {}]).encode()).decode()
    return json.dumps(
        {
            "body": body,
            "content-type": "application/json",
            "content-encoding": "utf-8",
            "headers": {"task": "imunban.unban", "id": str(uuid.uuid4())},
            "properties": {
                "delivery_tag": str(uuid.uuid4()),
                "body_encoding": "base64",
                "delivery_info": {"exchange": "", "routing_key": "imunban"},
            },
        }
    )
