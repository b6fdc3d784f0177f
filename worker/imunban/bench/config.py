"""What ``imunban bench`` runs (sizes of every scenario) and the machine it runs on."""

from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from imunban.errors import StoreError
from imunban.local.redis_server import redis_server_binary
from imunban.sim.config import SimConfig

#: Every scenario, in the order they run (one at a time: the machine may have only two cores).
SCENARIOS = (
    "drain", "naive", "latency", "scattered", "idle", "hog", "bulk", "scale", "chaos", "full", "failover", "web",
    "apps", "cluster", "fourapps", "quota",
)  # fmt: skip


@dataclass(frozen=True)
class BenchConfig:
    """Sizes and knobs; :meth:`quick` shrinks everything to run in under two minutes."""

    quick: bool = False
    workers: int = 2
    concurrency: int = 8
    rate_limit: float = 190.0  # IMUNBAN_RATE_LIMIT given to the workers (calls/s, whole deployment)
    api_limit: int = 200  # what the simulator enforces per sliding second
    latency_ms: float = 30.0  # the simulator's answer delay
    # 1. backlog drain
    drain_groups: int = 400
    drain_members: int = 100
    # 2. naive design: messages published up front, then its rate over a fixed window
    naive_warmup_s: float = 3.0
    naive_window_s: float = 20.0
    # 3. latency: each load (fraction of 20 x the limit) from each source (celery, python, scheduled)
    latency_loads: tuple[float, ...] = (0.10, 0.50, 1.00)
    latency_s: float = 15.0  # window of arrivals per (load, source)
    latency_groups: int = 500
    # 3b. scattered scheduled expiries: Poisson arrivals per group, calls (not members) the limit
    scattered_groups: int = 300
    scattered_rate: float = 266.0  # members/s over all groups
    scattered_s: float = 15.0  # the case, also with --quick: ~4,000 expiries
    # 3c. idle worker CPU window (the hog scenario reuses the drain's sizes)
    idle_s: float = 20.0
    # 4. bulk enqueue
    bulk_members: int = 200_000
    bulk_groups: int = 2_000
    apply_async_members: int = 5_000
    # 5. scale
    scheduled: int = 1_000_000
    scale_slice: int = 50_000
    # 6. chaos
    chaos_groups: int = 200
    chaos_members: int = 100
    chaos_timeout_s: float = 300.0
    # 6b. full: maxmemory this far above what Redis uses when the full-Redis drill starts (local/full_drill.py)
    full_headroom_bytes: int = 8 * 1024 * 1024
    # 7. failover: members waiting when the drill starts (the drain the SIGKILL interrupts)
    failover_backlog: int = 20_000
    # 7b. Redis Cluster drills (bench/cluster.py): members per app waiting when the kill / the move comes
    cluster_backlog: int = 6_000
    # 8. web console: `scheduled` scheduled requests (above), these dead letters, requests per call measured
    web_dead: int = 100_000
    web_requests: int = 40
    # 9. several apps (bench/apps.py): A's backlog beside B's Celery trickle, then A held while B drains.
    # The 1,000,000 for A: ~270 s at 3,800 members/s, about one of the two cores (BENCHMARKS.md).
    apps_backlog: int = 1_000_000
    apps_b_backlog: int = 100_000
    apps_trickle_per_s: float = 10.0
    # 10. four apps at full rate at once (bench/fourapps.py): each app's backlog, threads per worker
    fourapps_backlog: int = 40_000
    fourapps_concurrency: int = 16
    repeats: int = 4  # rounds of the Redis-only measurements; the best of each is reported
    seed: int = 20_240_601
    scenarios: tuple[str, ...] = SCENARIOS

    @classmethod
    def quick_config(cls, **changes: Any) -> BenchConfig:
        """The ``--quick`` sizes: same scenarios, smaller loads, shorter windows."""
        quick = cls(
            quick=True,
            drain_groups=200,
            drain_members=40,
            naive_warmup_s=2.0,
            naive_window_s=6.0,
            latency_s=3.0,
            latency_groups=300,
            idle_s=8.0,
            bulk_members=50_000,
            bulk_groups=500,
            apply_async_members=2_000,
            scheduled=100_000,
            scale_slice=20_000,
            chaos_groups=100,
            chaos_members=60,
            chaos_timeout_s=120.0,
            full_headroom_bytes=2 * 1024 * 1024,
            failover_backlog=5_000,
            cluster_backlog=2_000,
            web_dead=10_000,
            web_requests=20,
            apps_backlog=30_000,  # the issue 20 shape: B beside A draining 30,000
            apps_b_backlog=10_000,
            fourapps_backlog=12_000,
            repeats=2,
        )
        return dataclasses.replace(quick, **changes)

    @property
    def drain_target_per_s(self) -> float:
        """20 members x the configured calls/s: the most any design can deliver."""
        return 20.0 * self.rate_limit

    def env(self) -> dict[str, str]:
        """IMUNBAN_* the cluster's processes get on top of the LocalCluster defaults."""
        return {"IMUNBAN_RATE_LIMIT": f"{self.rate_limit:g}"}

    def sim(self, **faults: Any) -> SimConfig:
        return SimConfig(latency_ms=self.latency_ms, rate_limit=self.api_limit, seed=self.seed, **faults)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["scenarios"] = list(self.scenarios)
        data["latency_loads"] = list(self.latency_loads)
        return data


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, memory, Python, Redis, load: what a reader needs to judge the numbers."""
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "redis": _redis_version(),
        "loadavg_at_start": _loadavg(),
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            kb = int(f.readline().split()[1])
        info["memory_gb"] = round(kb / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        info["memory_gb"] = None
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _redis_version() -> str:
    try:
        out = subprocess.run([redis_server_binary(), "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError, StoreError):
        return "unknown"
    for word in out.stdout.split():
        if word.startswith("v="):
            return word[2:]
    return out.stdout.strip() or "unknown"


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
