"""The failover drill: workers deliver and a producer enqueues while the Redis primary is SIGKILLed.

A :class:`~imunban.local.sentinel.SentinelRig` (1 primary, 2 replicas, 3 sentinels, AOF on) holds
the state and the broker; a :class:`~imunban.local.cluster.LocalCluster` runs ``imunban worker``
processes on it through ``redis+sentinel://`` and the simulator over loopback. A producer thread
enqueues continuously with ``IMUNBAN_DURABLE_REPLICAS=1`` and re-sends what was refused (as a real
producer would: intake is idempotent). Midway the script cache is flushed, then the primary is
killed. The report says what was acknowledged, lost, refused and duplicated, and how long delivery
stopped. Used by ``tests/e2e/test_failover.py`` and ``imunban bench --only failover``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from imunban.errors import StoreError
from imunban.local.cluster import LocalCluster
from imunban.local.sentinel import SentinelRig
from imunban.sim.core import SimConfig

PASSWORD = "drill-primary-pw"
SENTINEL_PASSWORD = "drill-sentinel-pw"


@dataclass
class DrillConfig:
    workers: int = 2
    #: Members loaded (durably) before the drill: the drain the failover interrupts.
    backlog: int = 2_000
    #: Members enqueued per second by the producer thread, in batches of ``batch`` members.
    rate: float = 200.0
    batch: int = 10
    groups: int = 50
    #: Seconds of production before the SCRIPT FLUSH, between it and the kill, and after the promotion.
    before_flush_s: float = 2.0
    before_kill_s: float = 2.0
    after_promotion_s: float = 4.0
    drain_timeout_s: float = 60.0
    sim_latency_ms: int = 20


@dataclass
class DrillReport:
    acknowledged: int = 0
    lost: int = 0
    refused: int = 0
    refused_by: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    delivered_calls: int = 0
    kill_to_promotion_s: float = 0.0
    promotion_to_delivery_s: float | None = None
    drained: bool = False
    #: Errors that reached the producer or a worker log and mention NOSCRIPT (must be 0).
    noscript_errors: int = 0
    lost_sample: list[str] = field(default_factory=list)

    @property
    def kill_to_delivery_s(self) -> float | None:
        if self.promotion_to_delivery_s is None:
            return None
        return self.kill_to_promotion_s + self.promotion_to_delivery_s


class _Producer(threading.Thread):
    """Enqueue ``batch`` members at a steady rate; a refused batch is re-sent until acknowledged."""

    def __init__(self, cluster: LocalCluster, cfg: DrillConfig, report: DrillReport, first: int) -> None:
        super().__init__(name="drill-producer", daemon=True)
        self.producer = cluster.producer()
        self.cfg = cfg
        self.report = report
        self.next = first
        self.acked: list[tuple[str, str]] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        interval = self.cfg.batch / self.cfg.rate
        deadline = time.monotonic()
        while not self.stop.is_set():
            pairs = [(f"g{(self.next + i) % self.cfg.groups}", f"m{self.next + i}") for i in range(self.cfg.batch)]
            self.next += self.cfg.batch
            while not self._send(pairs):
                if self.stop.wait(0.1):
                    return  # never acknowledged: not counted
            deadline += interval
            self.stop.wait(max(0.0, deadline - time.monotonic()))

    def _send(self, pairs: list[tuple[str, str]]) -> bool:
        try:
            self.producer.bulk({"group_id": g, "member": m} for g, m in pairs)
        except StoreError as exc:
            with self.lock:
                self.report.refused += 1
                self.report.refused_by[type(exc).__name__] += 1
                if "NOSCRIPT" in str(exc) or "NoScript" in str(exc):
                    self.report.noscript_errors += 1
            return False
        with self.lock:
            self.acked += pairs
        return True


def run_drill(
    root: Path, cfg: DrillConfig | None = None, *, log: Callable[[str], None] = lambda _: None
) -> DrillReport:
    """Run the whole drill under ``root`` and return its figures; every process it starts is stopped."""
    cfg = cfg or DrillConfig()
    report = DrillReport()
    with SentinelRig(root / "rig", password=PASSWORD, sentinel_password=SENTINEL_PASSWORD) as rig:
        env = {
            "IMUNBAN_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
            "IMUNBAN_DURABLE_REPLICAS": "1",
            # A lease lost with the primary comes back within seconds, not the default 30.
            "IMUNBAN_LEASE_MS": "5000",
        }
        cluster = LocalCluster(
            root / "cluster",
            workers=cfg.workers,
            redis_url=rig.url(),
            env=env,
            sim_config=SimConfig(latency_ms=cfg.sim_latency_ms),
        )
        with cluster:
            log(f"rig and {cfg.workers} workers up")
            backlog = [(f"g{i % cfg.groups}", f"m{i}") for i in range(cfg.backlog)]
            cluster.producer().bulk({"group_id": g, "member": m} for g, m in backlog)
            producer = _Producer(cluster, cfg, report, first=cfg.backlog)
            producer.start()
            try:
                _wait(lambda: _calls(cluster) > 0, 60, "first delivery")
                time.sleep(cfg.before_flush_s)
                _primary_client(rig).script_flush()
                log("script cache flushed on the primary")
                time.sleep(cfg.before_kill_s)
                killed_at = time.monotonic()
                old = rig.kill_primary()
                log(f"primary :{old.port} SIGKILLed")
                rig.wait_promotion(old)
                promoted_at = time.monotonic()
                report.kill_to_promotion_s = promoted_at - killed_at
                log(f"promoted after {report.kill_to_promotion_s:.2f}s")
                before = _calls(cluster)
                if _wait(lambda: _calls(cluster) > before, 30, None):
                    report.promotion_to_delivery_s = time.monotonic() - promoted_at
                time.sleep(max(0.0, cfg.after_promotion_s - (time.monotonic() - promoted_at)))
            finally:
                producer.stop.set()
                producer.join(timeout=30)
            report.drained = cluster.wait_drained(cfg.drain_timeout_s)
            _tally(cluster, backlog + producer.acked, report)
            report.noscript_errors += sum(
                path.read_text(errors="replace").count("NOSCRIPT") for path in (root / "cluster").glob("worker-*.log")
            )
    return report


def _tally(cluster: LocalCluster, acked: list[tuple[str, str]], report: DrillReport) -> None:
    assert cluster.simulator is not None
    stats = cluster.sim_stats()
    report.acknowledged = len(acked)
    report.duplicates = int(stats["duplicate_unbans"])
    report.delivered_calls = int(stats["calls_ok"])
    delivered: dict[str, frozenset[str]] = {}
    for group, member in acked:
        if group not in delivered:
            delivered[group] = cluster.simulator.unbanned(group)
        if member not in delivered[group]:
            report.lost += 1
            if len(report.lost_sample) < 10:
                report.lost_sample.append(f"{group}/{member}")


def _calls(cluster: LocalCluster) -> int:
    return int(cluster.sim_stats()["calls_ok"])


def _primary_client(rig: SentinelRig) -> redis.Redis:
    return rig.current_primary().client()


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str | None) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            if what is None:
                return False
            raise StoreError(f"failover drill: no {what} within {timeout_s:g}s")
        time.sleep(0.02)
    return True
