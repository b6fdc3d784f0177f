"""End to end, the state an operator relies on at 3 a.m.: real workers, a real redis-server, the simulator, and
`imunban status --check`, `imunban web`, `imunban pause`/`resume` run as processes.

- a worker stopped cleanly deregisters at once; with work due and no live worker, `status --check` exits 2
  and says ``stalled``, the console's banner says so, and the ``imunban_state`` gauge is 1 for ``stalled``;
- a worker killed (no deregistration) stops counting as alive well within 30 s;
- a worker alive whose broker is gone (it beats, it cannot consume: the failover trap) is ``stalled`` on its
  own metrics endpoint and in `status --check`;
- a pause stops every call (the simulator counts none) and resume restarts delivery; both are audited.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from prometheus_client import CollectorRegistry, generate_latest

from helpers import metric_value, wait_for
from imunban.keys import Keys
from imunban.local.cluster import LocalCluster
from imunban.local.redis_server import RedisServer, free_port
from imunban.metrics import StateCollector
from imunban.sim.core import SimConfig

KEYS = Keys()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """One worker (two delivery threads) against the simulator; stopped at teardown."""
    c = LocalCluster(tmp_path / "cluster", workers=1, concurrency=2, sim_config=SimConfig(latency_ms=5))
    c.start()
    yield c
    c.stop()


def imunban(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    """`imunban ARGS` as its own process, with the cluster's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMUNBAN_")}
    env.update(cluster.env())
    return subprocess.run(
        [sys.executable, "-m", "imunban", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def registered(r: redis.Redis) -> list[str]:
    return sorted(r.hkeys(KEYS.workers))


def wait_registered(cluster: LocalCluster) -> str:
    """The worker's id once its pump has beaten."""
    assert wait_for(lambda: registered(cluster.client), 60, poll_s=0.1), "the worker never beat"
    (worker,) = registered(cluster.client)
    return worker


def stalled_check(cluster: LocalCluster) -> subprocess.CompletedProcess[str] | None:
    done = imunban(cluster, "status", "--check")
    return done if done.returncode == 2 and " stalled" in done.stdout else None


def test_a_clean_stop_deregisters_and_due_work_is_stalled_everywhere(cluster: LocalCluster, tmp_path: Path) -> None:
    """SIGTERM: the worker's entry is gone at once; then due work says stalled in check, console and metric."""
    wait_registered(cluster)
    producer = cluster.producer()
    producer.enqueue("g", ["a", "b"])
    assert cluster.wait_drained(30)
    assert cluster.stop_worker(0) == 0
    assert registered(cluster.client) == []  # not "silent" for an hour: gone
    producer.enqueue("g", ["c", "d", "e"])

    done = imunban(cluster, "status", "--check")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout.startswith("CRITICAL stalled: no live worker") and "3 requests are due" in done.stdout

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMUNBAN_")} | cluster.env()
    log = open(tmp_path / "web.log", "wb")  # noqa: SIM115  (owned by the child)
    web = subprocess.Popen([sys.executable, "-m", "imunban", "web", "--port", str(port)], env=env, stdout=log,
                           stderr=subprocess.STDOUT)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: requests.get(base + "/healthz", timeout=2).ok, 30, ignore=(requests.RequestException,))
        page = requests.get(base + "/", timeout=10).text
        assert 'class="state-banner state-stalled"' in page and "DELIVERY STALLED" in page
        assert "no live worker" in page and "3 requests are due" in page
        assert requests.get(base + "/api/status", timeout=10).json()["state"]["state"] == "stalled"
    finally:
        web.terminate()
        web.wait(timeout=10)
        log.close()

    registry = CollectorRegistry()
    registry.register(StateCollector(cluster.deployment))
    scrape = generate_latest(registry).decode()
    assert metric_value(scrape, "imunban_state", app="default", state="stalled") == 1
    assert metric_value(scrape, "imunban_state", app="default", state="delivering") == 0


def test_a_killed_worker_is_stalled_within_30_seconds(cluster: LocalCluster) -> None:
    """kill -9 (no deregistration) with work due: `status --check` exits 2 and says stalled within 30 s."""
    wait_registered(cluster)
    cluster.kill_worker(0)
    killed = time.monotonic()
    cluster.producer().enqueue("g", ["a"])
    found: list[subprocess.CompletedProcess[str]] = []

    def stalled() -> bool:
        done = stalled_check(cluster)
        if done is not None:
            found.append(done)
        return done is not None

    assert wait_for(stalled, 30, poll_s=1)
    took_s = time.monotonic() - killed
    assert "no live worker for " in found[-1].stdout
    print(f"stalled said {took_s:.1f} s after kill -9")


def test_a_live_worker_whose_broker_is_gone_is_stalled_on_its_own_metrics(tmp_path: Path) -> None:
    """The failover trap: the worker beats but cannot consume (its broker died); after IMUNBAN_STALL_AFTER_S
    without a claim its metrics endpoint says imunban_state{state="stalled"} 1 and `status --check` exits 2."""
    broker = RedisServer(tmp_path / "broker", appendonly=False).start()
    port = free_port()
    env = {"IMUNBAN_BROKER_URL": broker.url, "IMUNBAN_METRICS_PORT": str(port), "IMUNBAN_STALL_AFTER_S": "3"}
    cluster = LocalCluster(tmp_path / "cluster", workers=1, concurrency=2, sim_config=SimConfig(latency_ms=5), env=env)
    try:
        cluster.start()
        wait_registered(cluster)
        cluster.producer().enqueue("g", ["a", "b"])
        assert cluster.wait_drained(30)
        broker.stop()
        cluster.producer().enqueue("g", ["c"])
        url = f"http://127.0.0.1:{port}/metrics"

        def stalled_metric() -> bool:
            scrape = requests.get(url, timeout=5).text
            return metric_value(scrape, "imunban_state", app="default", state="stalled") == 1

        assert wait_for(stalled_metric, 60, poll_s=0.5, ignore=(requests.RequestException,))
        assert cluster.workers[0] is not None and cluster.workers[0].poll() is None  # alive all along
        done = imunban(cluster, "status", "--check")
        assert done.returncode == 2 and "1 worker alive but none has claimed a batch for" in done.stdout
    finally:
        cluster.stop()
        broker.stop()


def test_pause_stops_every_call_and_resume_restarts_delivery(cluster: LocalCluster) -> None:
    """`imunban pause`: requests come due and are promoted, yet the simulator gets no call; `imunban resume`:
    all are delivered; both audited with who = cli."""
    worker = wait_registered(cluster)
    paused = imunban(cluster, "pause", "--reason", "maintenance window")
    assert paused.returncode == 0, paused.stderr
    assert cluster.simulator is not None
    calls_before = cluster.sim_stats()["calls"]
    due_s = time.time() + 1
    cluster.producer().bulk({"group_id": f"g{g}", "member": f"u{m}", "at": due_s} for g in range(5) for m in range(10))
    r = cluster.client
    # The pump ticks while paused: it promotes the 50 once due, then two more beats of the worker go by.
    assert wait_for(lambda: int(r.hget(KEYS.stats, "promoted") or 0) == 50, 30)
    for _ in range(2):
        beat = r.hget(KEYS.workers, worker)
        assert wait_for(lambda b=beat: r.hget(KEYS.workers, worker) != b, 10)
    assert cluster.sim_stats()["calls"] == calls_before
    check = imunban(cluster, "status", "--check")
    assert check.returncode == 1 and check.stdout.startswith("WARNING paused: paused by cli ")
    assert cluster.status()["queued"] == 50

    resumed = imunban(cluster, "resume")
    assert resumed.returncode == 0 and resumed.stdout.startswith("resumed delivery of app default")
    assert cluster.wait_drained(30)
    assert cluster.status()["delivered"] == 50
    assert all(cluster.simulator.unbanned(f"g{g}") == {f"u{m}" for m in range(10)} for g in range(5))
    audits = [fields for _, fields in r.xrange(KEYS.outcomes) if fields["outcome"] == "audit"]
    assert [(a["action"], a["count"], a["role"]) for a in audits] == [("pause", "1", "cli"), ("resume", "1", "cli")]
