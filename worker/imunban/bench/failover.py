"""The ``failover`` scenario of ``imunban bench``: the failover drill during a drain, and what WAIT costs.

1. The drill (:mod:`imunban.local.drill`): a backlog drains and Python, CLI and Celery producers
   enqueue with ``IMUNBAN_DURABLE_REPLICAS=1`` while the Redis primary is SIGKILLed three times, 30 s
   apart: acknowledged, lost (must be 0), and per failover the promotion time, each worker's return
   to the API, heartbeat and consumer after it (must be <= 2 s), refused intakes, duplicates.
2. Bulk enqueue members/s on the same kind of rig (1 primary, 2 replicas, AOF everysec) without and
   with ``IMUNBAN_DURABLE_REPLICAS=1`` (WAIT once per pipeline; must stay >= 50,000/s), and on one
   node with ``appendfsync everysec`` against ``always`` (docs/durability.md).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from imunban.bench.config import BenchConfig
from imunban.bench.util import Log, per_s
from imunban.connection import connect
from imunban.local.drill import DrillConfig, run_drill
from imunban.local.redis_server import RedisServer
from imunban.local.sentinel import SentinelRig
from imunban.producer import Producer
from imunban.settings import Settings

#: Seconds between two kills of the primary in the bench (the e2e test uses 9).
FAILOVER_INTERVAL_S = 30.0
GROUP_FMT = "@TGS#2B{:07d}"
MEMBER_FMT = "user_{:07d}"


def failover(cfg: BenchConfig, root: Path, log: Log) -> dict[str, Any]:
    """Run the drill, then time bulk enqueue with and without WAIT; return the figures."""
    drill_cfg = DrillConfig(
        workers=cfg.workers,
        backlog=cfg.failover_backlog,
        sim_latency_ms=int(cfg.latency_ms),
        failovers=3,
        interval_s=FAILOVER_INTERVAL_S,
        drain_timeout_s=180.0,
    )
    report = run_drill(root / "failover-drill", drill_cfg, log=lambda message: log(f"  {message}"))
    result: dict[str, Any] = {
        **{k: v for k, v in dataclasses.asdict(report).items() if k not in ("lost_sample", "stalled_reasons")},
        # asdict rebuilds a Counter from its (key, count) pairs, counting the pairs: keep them as dicts.
        "refused_by": dict(report.refused_by),
        "states_seen": dict(report.states_seen),
        "lost_by": dict(report.lost_by),
        "lost_sample": report.lost_sample,
        "kill_to_delivery_s": report.kill_to_delivery_s,
        "kill_to_promotion_s": report.kill_to_promotion_s,
        "promotion_to_delivery_s": report.promotion_to_delivery_s,
        "stalled": report.states_seen["stalled"],
    }
    result.update(_bulk_costs(cfg, root / "failover-bulk", log))
    return result


def _bulk_costs(cfg: BenchConfig, root: Path, log: Log) -> dict[str, Any]:
    """Best-of-``repeats`` Producer.bulk members/s on a sentinel rig, WAIT off and WAIT 1."""
    members, per_group = cfg.bulk_members, max(1, cfg.bulk_members // cfg.bulk_groups)
    items = [{"group_id": GROUP_FMT.format(i // per_group), "member": MEMBER_FMT.format(i)} for i in range(members)]
    best: dict[str, float] = {}

    def measure(url: str, runs: dict[str, int]) -> None:
        client = connect(Settings(), url=url)
        try:
            for _ in range(cfg.repeats):
                for name, replicas in runs.items():
                    client.flushdb()
                    producer = Producer.on(
                        client, Settings(key_prefix="bench", durable_replicas=replicas, durable_timeout_ms=1_000)
                    )
                    started = time.perf_counter()
                    stored = producer.bulk(items).stored
                    best[name] = max(best.get(name, 0.0), per_s(stored, time.perf_counter() - started) or 0.0)
        finally:
            client.close()

    with SentinelRig(root / "rig") as rig:
        measure(rig.url(), {"replicas": 0, "durable": 1})
    for fsync in ("everysec", "always"):
        with RedisServer(root / fsync, extra_args=("--appendfsync", fsync)) as server:
            measure(server.url, {fsync: 0})
    log(
        f"  bulk members/s: {best['replicas']:,.0f} (2 replicas), {best['durable']:,.0f} (WAIT 1); one node: "
        f"{best['everysec']:,.0f} (AOF everysec), {best['always']:,.0f} (AOF always)"
    )
    return {
        "bulk_members": members,
        "bulk_members_per_s": round(best["replicas"]),
        "bulk_durable_members_per_s": round(best["durable"]),
        "durable_cost": round(1 - best["durable"] / best["replicas"], 3) if best["replicas"] else None,
        "bulk_single_everysec_per_s": round(best["everysec"]),
        "bulk_single_always_per_s": round(best["always"]),
    }
