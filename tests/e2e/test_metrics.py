"""Observability of a running worker: its Prometheus endpoint, and logs free of the secret and the usersig."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from helpers import metric_samples, metric_value, wait_for
from imunban import __version__
from imunban.hold import Hold
from imunban.keys import Keys
from imunban.local.cluster import LocalCluster
from imunban.local.redis_server import free_port
from imunban.sim.core import SimConfig

UNBAN = "imunban.unban"


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
    """The worker's /metrics page (retried for up to 30 s while the endpoint comes up)."""
    url: str = cluster.metrics_url  # type: ignore[attr-defined]
    pages: list[str] = []

    def fetched() -> bool:
        response = requests.get(url, timeout=5)
        response.raise_for_status()
        pages.append(response.text)
        return True

    assert wait_for(fetched, 30, poll_s=0.2, ignore=(requests.RequestException,)), f"no answer from {url}"
    return pages[-1]


def test_worker_endpoint_counters_move(cluster: LocalCluster) -> None:
    """Delivering moves calls by code, members delivered, retries, dead letters and latency; depths are shown."""
    before = scrape(cluster)
    assert metric_value(before, "imunban_members_delivered_total") == 0
    assert ("imunban_queue_depth", (("app", "default"), ("state", "queued"))) in metric_samples(before)
    cluster.producer().bulk({"group_id": f"g{g}", "member": f"u{m}"} for g in range(10) for m in range(30))
    cluster.producer().enqueue("p", ["ok1", "poison"])
    assert cluster.wait_drained(60)
    after = scrape(cluster)
    assert metric_value(after, "imunban_api_calls_total", kind="answer", code="0") > 0
    assert metric_value(after, "imunban_api_calls_total", kind="answer", code="10002") > 0
    assert metric_value(after, "imunban_members_delivered_total") >= 301
    assert metric_value(after, "imunban_retries_total") > 0
    assert metric_value(after, "imunban_dead_letters_total", code="10004") == 1
    assert metric_value(after, "imunban_due_to_delivered_seconds_count") >= 301
    assert metric_value(after, "imunban_batch_size_count") > 0
    assert metric_value(after, "imunban_limiter_wait_seconds_count") > 0
    assert metric_value(after, "imunban_queue_depth", state="dead") == 1
    assert metric_value(after, "imunban_hold_active", code="") == 0
    assert metric_value(after, "imunban_workers_alive") == 1
    assert metric_value(after, "imunban_oldest_due_age_seconds") == 0
    assert metric_value(after, "imunban_redis_memory_used_bytes") > 0
    assert metric_value(after, "imunban_status_counter_total", counter="calls") > 0
    assert metric_value(after, "process_resident_memory_bytes") > 0
    assert metric_value(after, "imunban_build_info", version=__version__) == 1
    assert "_created" not in after


def test_worker_endpoint_shows_hold_and_rejections(cluster: LocalCluster) -> None:
    """A hold shows as imunban_hold_active{code}; a rejected message counts by task."""
    rejected = metric_value(scrape(cluster), "imunban_rejected_messages_total", task=UNBAN)
    cluster.client.lpush("imunban", _envelope({"group_id": "", "members": ["a"]}))
    counted = rejected + 1
    assert wait_for(lambda: metric_value(scrape(cluster), "imunban_rejected_messages_total", task=UNBAN) == counted, 30)
    hold = Hold(cluster.client, Keys(cluster.settings().key_prefix))
    hold.set(70003, "usersig invalid")
    try:
        assert metric_value(scrape(cluster), "imunban_hold_active", code="70003") == 1
    finally:
        hold.release()


def test_no_secret_or_usersig_in_scrape_or_logs(cluster: LocalCluster) -> None:
    """Neither the secret key nor a usersig appears in the scrape or in the worker's DEBUG logs."""
    cluster.producer().enqueue("sig", ["a", "b"])
    assert cluster.wait_drained(30)
    text = scrape(cluster)
    assert cluster.secret not in text
    assert "usersig" not in text.lower()
    logs = "".join(p.read_text(errors="replace") for p in Path(cluster.root).glob("*.log"))
    assert "unban group=" in logs  # DEBUG request lines were logged, so the check means something
    assert cluster.secret not in logs
    leaked = re.findall(r"usersig=(?!REDACTED)[^&\s'\"]+", logs, re.IGNORECASE)
    assert not leaked, leaked[:3]
    records = [json.loads(line) for line in logs.splitlines() if line.strip()]  # JSON only: no banner, no notice
    assert records and all({"ts", "level", "logger", "message"} <= set(rec) for rec in records)
    assert any(rec["logger"].startswith("imunban") or rec["logger"].startswith("worker") for rec in records)


def test_json_logs_carry_fields_and_the_start_up_line(cluster: LocalCluster) -> None:
    """JSON lines: the start-up line with version and configuration, a dead letter with app, group_id and code,
    and Celery's per-task lines at DEBUG."""
    cluster.producer().enqueue("p2", ["poison"])
    assert cluster.wait_drained(30)

    def records() -> list[dict[str, Any]]:
        logs = "".join(p.read_text(errors="replace") for p in Path(cluster.root).glob("*.log"))
        return [json.loads(line) for line in logs.splitlines() if line.strip()]

    assert wait_for(lambda: any(r.get("group_id") == "p2" and r.get("code") == 10004 for r in records()), 10)
    (start,) = [r for r in records() if "config" in r]
    assert start["version"] == __version__ and start["message"].startswith(f"imunban {__version__}: apps default")
    assert start["config"]["apps"][0]["base_url"] == cluster.api_url
    assert cluster.secret not in json.dumps(start)
    dead = [r for r in records() if r.get("group_id") == "p2" and r.get("code") == 10004]
    assert dead[0]["app"] == "default" and dead[0]["level"] == "WARNING"
    tasks = [r for r in records() if r["message"].startswith("Task imunban.deliver[")]
    assert tasks and {r["level"] for r in tasks} == {"DEBUG"}


def test_text_logs_at_info_have_no_task_lines_and_a_summary(tmp_path: Path) -> None:
    """At INFO: no per-task lines; summary lines (one per interval) add up to what was delivered; the start-up line."""
    log = tmp_path / "worker-0.log"

    def delivered_in_summaries() -> int:
        found = re.findall(r"imunban\.summary: summary \(last 1 s\): delivered ([\d,]+)", log.read_text())
        return sum(int(n.replace(",", "")) for n in found)

    with LocalCluster(tmp_path, workers=1, env={"IMUNBAN_LOG_SUMMARY_S": "1"}) as c:
        c.producer().bulk({"group_id": f"g{g}", "member": f"u{m}"} for g in range(4) for m in range(25))
        assert c.wait_drained(30)
        assert wait_for(lambda: delivered_in_summaries() == 100, 15), log.read_text()[-2000:]
    text = log.read_text()
    assert "Task imunban." not in text
    assert f"imunban.worker: imunban {__version__}: apps default (sdkappid" in text


def _envelope(kwargs: dict[str, Any]) -> str:
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
