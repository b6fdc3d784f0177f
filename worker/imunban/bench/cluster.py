"""The ``cluster`` scenario of ``imunban bench``: Redis Cluster drills and bulk intake on a cluster.

1. The master-kill drill (:mod:`imunban.local.cluster_drill`): app alpha's master SIGKILLed while
   two apps drain and durable producers enqueue: lost (must be 0), seconds to the promotion and to
   alpha delivering again (≤ 5 s), the other app's longest pause, refused intakes, duplicates.
2. The reshard drill: alpha's slot moved to another master (10 keys per MIGRATE, as
   ``redis-cli --cluster reshard``) mid-drain: lost, the slot's time in flight, alpha's pause.
3. ``Producer.bulk`` members/s of one app, side by side: one Redis, a 3-master cluster (one pipeline
   per node), a 3-master cluster with a replica each, without and with ``IMUNBAN_DURABLE_REPLICAS=1``
   (WAIT on the app's node); and the producer's CPU per member (getrusage), steadier than wall time on
   a machine shared with others. On two cores a replica competes with its master for CPU.
"""

from __future__ import annotations

import dataclasses
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from imunban.bench.config import BenchConfig
from imunban.bench.util import Log, per_s
from imunban.connection import connect
from imunban.local.cluster_drill import ClusterDrillConfig, ClusterDrillReport, run_cluster_drill
from imunban.local.redis_cluster import RedisCluster
from imunban.local.redis_server import RedisServer
from imunban.producer import Producer
from imunban.settings import Settings

GROUP_FMT = "@TGS#2C{:07d}"
MEMBER_FMT = "user_{:07d}"


def cluster(cfg: BenchConfig, root: Path, log: Log) -> dict[str, Any]:
    """Both drills, then the bulk rates; return the figures."""
    drill_cfg = ClusterDrillConfig(workers=cfg.workers, backlog=cfg.cluster_backlog, sim_latency_ms=int(cfg.latency_ms))
    result: dict[str, Any] = {}
    for drill in ("kill", "reshard"):
        report = run_cluster_drill(root / f"cluster-{drill}", drill, drill_cfg, log=lambda m: log(f"  {m}"))
        result[drill] = _as_json(report)
        log(
            f"  {drill}: lost {report.lost} of {report.acknowledged:,}; alpha delivering again after "
            f"{_s(report.resumed_s)} (longest pause {_s(report.affected_max_gap_s)}); beta's longest pause "
            f"{_s(report.other_max_gap_s)}; refused {report.refused}; duplicates {report.duplicates}"
        )
    result.update(_bulk_rates(cfg, root / "cluster-bulk", log))
    return result


def _as_json(report: ClusterDrillReport) -> dict[str, Any]:
    data = {k: v for k, v in dataclasses.asdict(report).items() if k != "refused_by"}
    data["refused_by"] = dict(report.refused_by)
    return data


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}s"


def _bulk_rates(cfg: BenchConfig, root: Path, log: Log) -> dict[str, Any]:
    """Best-of-``repeats`` Producer.bulk members/s and producer CPU µs/member, one Redis against a cluster."""
    per_group = max(1, cfg.bulk_members // cfg.bulk_groups)
    items = [
        {"group_id": GROUP_FMT.format(i // per_group), "member": MEMBER_FMT.format(i)} for i in range(cfg.bulk_members)
    ]
    best: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def measure(client: redis.Redis, name: str, replicas: int, flush: Callable[[], object]) -> None:
        settings = Settings(key_prefix="bench", durable_replicas=replicas, durable_timeout_ms=1_000)
        flush()
        producer = Producer.on(client, settings)
        cpu_before = _cpu_s()
        started = time.perf_counter()
        stored = producer.bulk(items).stored
        rate = per_s(stored, time.perf_counter() - started) or 0.0
        if rate > best.get(name, 0.0):
            best[name] = rate
            cpu[name] = (_cpu_s() - cpu_before) / max(1, stored) * 1e6

    with (
        RedisServer(root / "single", appendonly=False) as single,
        RedisCluster(root / "rc", masters=3) as bare,
        RedisCluster(root / "rc-replicas", masters=3, replicas=1) as replicated,
    ):
        one, plain, durable = (connect(Settings(), url=url) for url in (single.url, bare.url, replicated.url))
        try:
            for _ in range(cfg.repeats):  # interleaved: the machine's load moves them all alike
                measure(one, "single", 0, one.flushall)
                measure(plain, "cluster", 0, lambda: _flush_cluster(bare))
                measure(durable, "cluster_replicas", 0, lambda: _flush_cluster(replicated))
                measure(durable, "cluster_durable", 1, lambda: _flush_cluster(replicated))
        finally:
            for client in (one, plain, durable):
                client.close()
    names = ("single", "cluster", "cluster_replicas", "cluster_durable")
    log(
        "  bulk members/s: one Redis / 3-master cluster / with a replica each / and IMUNBAN_DURABLE_REPLICAS=1: "
        + " / ".join(f"{best[n]:,.0f}" for n in names)
        + "; producer CPU µs/member "
        + " / ".join(f"{cpu[n]:.1f}" for n in names)
    )
    return {
        "bulk_members": cfg.bulk_members,
        **{f"bulk_{name}_per_s": round(best[name]) for name in names},
        "cluster_vs_single": round(best["cluster"] / best["single"], 3) if best["single"] else None,
        "producer_cpu_us_per_member": {k: round(v, 2) for k, v in cpu.items()},
    }


def _flush_cluster(rig: RedisCluster) -> None:
    for node in rig.live[: rig.n_masters]:
        with node.client() as client:
            client.flushall()


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
