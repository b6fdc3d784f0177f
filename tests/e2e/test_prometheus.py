"""The alert rules in a real Prometheus: it scrapes a real worker and `imunban exporter`; the worker stops with
work due, and the no-worker alerts fire."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from helpers import wait_for
from imunban.local.cluster import LocalCluster
from imunban.local.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="the prometheus server is not installed (Debian package `prometheus`; .ci/run installs it)",
)
#: The rules' `for:` in this test: the same expressions, minutes of patience shortened to seconds.
FOR = "2s"


class Prometheus:
    """A Prometheus server on a free loopback port with its own storage, started and stopped by pid."""

    def __init__(self, root: Path, targets: dict[str, int]) -> None:
        self.root = root
        self.port = free_port()
        rules = yaml.safe_load((ROOT / "deploy" / "monitoring" / "alerts.yml").read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = FOR
        (root / "alerts.yml").write_text(yaml.safe_dump(rules))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": ["alerts.yml"],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                for job, port in targets.items()
            ],
        }
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert PROMETHEUS is not None
        with open(self.root / "prometheus.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={self.root / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        ready = wait_for(
            lambda: requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200,
            30,
            poll_s=0.2,
            ignore=(requests.RequestException,),
        )
        assert ready, f"Prometheus did not come up: {self.log()}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def log(self) -> str:
        return (self.root / "prometheus.log").read_text(errors="replace")[-3000:]

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    def firing(self) -> dict[str, dict[str, str]]:
        """Alert name -> labels of every firing alert (from /api/v1/alerts)."""
        response = requests.get(f"{self.url}/api/v1/alerts", timeout=5)
        response.raise_for_status()
        alerts = response.json()["data"]["alerts"]
        return {a["labels"]["alertname"]: a["labels"] for a in alerts if a["state"] == "firing"}


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[LocalCluster, Prometheus]]:
    """One worker (metrics on), `imunban exporter`, and a Prometheus scraping both every second with alerts.yml."""
    worker_port, exporter_port = free_port(), free_port()
    cluster = LocalCluster(tmp_path / "cluster", workers=1, env={"IMUNBAN_METRICS_PORT": str(worker_port)})
    prometheus = Prometheus(tmp_path, {"imunban": worker_port, "imunban-exporter": exporter_port})
    exporter: subprocess.Popen[bytes] | None = None
    cluster.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMUNBAN_")} | cluster.env()
        with open(tmp_path / "exporter.log", "ab") as log:
            exporter = subprocess.Popen(
                [sys.executable, "-m", "imunban", "exporter", "--port", str(exporter_port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        prometheus.start()
        yield cluster, prometheus
    finally:
        prometheus.stop()
        if exporter is not None and exporter.poll() is None:
            os.kill(exporter.pid, signal.SIGTERM)
            exporter.wait(timeout=15)
        cluster.stop()


def test_stopped_worker_with_work_due_fires_the_no_worker_alerts(watched: tuple[LocalCluster, Prometheus]) -> None:
    """While the worker runs nothing fires; stopped with requests due, ImunbanWorkersDown and ImunbanNoLiveWorker
    fire in Prometheus, and the exporter still shows the backlog and no live worker."""
    cluster, prometheus = watched

    def scraped() -> bool:
        up = {s["metric"]["job"]: s["value"][1] for s in prometheus.query("up")}
        alive = prometheus.query('max by (app) (imunban_workers_alive{job="imunban-exporter"})')
        return up == {"imunban": "1", "imunban-exporter": "1"} and alive[0]["value"][1] == "1"

    assert wait_for(scraped, 60, poll_s=0.5, ignore=(requests.RequestException, IndexError)), prometheus.log()
    cluster.producer().enqueue("g-live", ["a", "b"])
    assert cluster.wait_drained(30)
    # Until its first scrape the worker was down for Prometheus: that alert resolves once the rules see it up.
    quiet = {"ImunbanWorkersDown", "ImunbanNoLiveWorker", "ImunbanStalled"}
    assert wait_for(lambda: not quiet & set(prometheus.firing()), 30, poll_s=0.5), prometheus.firing()

    worker = cluster.workers[0]
    assert worker is not None
    worker.send_signal(signal.SIGTERM)  # a clean stop
    worker.wait(timeout=30)
    cluster.workers[0] = None
    cluster.producer().enqueue("g-due", ["c", "d", "e"])  # due now, and nobody to deliver it

    def both_fire() -> bool:
        firing = prometheus.firing()
        return "ImunbanWorkersDown" in firing and firing.get("ImunbanNoLiveWorker", {}).get("app") == "default"

    assert wait_for(both_fire, 90, poll_s=1.0, ignore=(requests.RequestException,)), (
        prometheus.firing(),
        prometheus.log(),
    )
    (depth,) = prometheus.query('max(imunban_queue_depth{job="imunban-exporter", state="queued"})')
    assert float(depth["value"][1]) == 3
    (age,) = prometheus.query('max(imunban_oldest_due_age_seconds{job="imunban-exporter"})')
    assert float(age["value"][1]) > 0
