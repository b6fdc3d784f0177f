"""The "fourapps" scenario of ``imunban bench``: four apps at full rate at once on one host (issue 20).

Four apps, each with its own SDKAppID, key, limit (``cfg.rate_limit``) and simulator enforcing
``cfg.api_limit`` calls per sliding second (one multi-app simulator, as the ``apps`` scenario), each
given a backlog of ``fourapps_backlog`` members due now, all at the same moment. Reported: each app's
members/s (first to last call of its simulator) against 20 x its limit (target ≥ 0.95), rejections
(60007, target 0), and the workers' CPU in cores over the drain (whole process trees, target ≤ 1).

Workers: the default deployment shape, two worker processes, with ``fourapps_concurrency`` threads
each. Four apps at 190 calls/s of ~30 ms each keep about 4 x 190 x 0.035 ≈ 27 calls in flight, plus
the runs waiting for their next slot: 2 x 16 threads carry it, where the single-app default of
2 x 8 would cap each app at about half its limit (threads, not CPU, would be the bottleneck).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, cast

from imunban.bench.config import BenchConfig
from imunban.bench.scenarios import cluster_for, ready
from imunban.bench.util import Log, cpu_total, per_s, tree_cpu, wait_for, worker_pids
from imunban.bench.verdict import INFO, Row, check, num
from imunban.local.cluster import LocalCluster

APPS = ("A", "B", "C", "D")
#: Each app's members/s must reach this fraction of 20 x its limit.
RATIO = 0.95
#: The workers' CPU over the drain, in cores (CPU seconds per wall second), at most.
MAX_CORES = 1.0


def _drained(cluster: LocalCluster) -> bool:
    apps = cast(dict[str, dict[str, Any]], cluster.status()["apps"])
    return all(a["queued"] == 0 and a["scheduled"] == 0 and a["in_flight"] == 0 for a in apps.values())


def _backlog(app: str, members: int, prefix: str = "g") -> list[dict[str, Any]]:
    """``members`` requests of ``app`` in groups of 100 (five full calls each), all due now."""
    return [
        {"group_id": f"{prefix}{app}-{g:05d}", "app": app,
         "members": [f"u{m:03d}" for m in range(min(100, members - g * 100))]}
        for g in range((members + 99) // 100)
    ]  # fmt: skip


def app_rate(snapshot: dict[str, Any]) -> tuple[float | None, float | None]:
    """(first -> last call seconds, members/s over it) of one app's simulator snapshot."""
    first, last = snapshot["first_call_s"], snapshot["last_call_s"]
    span = (last - first) if first is not None and last is not None else None
    return span, per_s(snapshot["members_unbanned"], span)


def fourapps(cfg: BenchConfig, root: Path, log: Log) -> dict[str, Any]:
    """Warm up, then a backlog for each of the four apps at once; rates per app, rejections, worker cores."""
    folder = root / "fourapps"
    folder.mkdir(parents=True, exist_ok=True)
    limits = dict.fromkeys(APPS, cfg.rate_limit)
    target = 20 * cfg.rate_limit
    env = {"IMUNBAN_CONCURRENCY": str(cfg.fourapps_concurrency)}
    with cluster_for(cfg, folder, apps=limits, env=env) as cluster:
        ready(cluster, log)
        producer = cluster.producer()
        for app in APPS:
            producer.bulk(_backlog(app, 160, prefix="warm-"))
        wait_for(lambda: _drained(cluster), 60)
        assert cluster.multi is not None
        cluster.multi.reset()
        pids = worker_pids(cluster)
        redis_pid = [cluster.redis_server.process.pid] if cluster.redis_server and cluster.redis_server.process else []
        cpu0, redis0, own0, wall0 = tree_cpu(pids), cpu_total(redis_pid), time.process_time(), time.monotonic()
        backlog = [r for app in APPS for r in _backlog(app, cfg.fourapps_backlog)]
        backlog.sort(key=lambda r: r["group_id"][1:])  # interleave the apps: none is enqueued first
        producer.bulk(backlog)
        drained = wait_for(lambda: _drained(cluster), max(120.0, 5 * cfg.fourapps_backlog / target), poll_s=0.1)
        cpu1, redis1, own1 = tree_cpu(pids), cpu_total(redis_pid), time.process_time()
        wall = time.monotonic() - wall0
        snaps = {app: cluster.sim_of(app).snapshot() for app in APPS}
    per_app: dict[str, dict[str, Any]] = {}
    for app, snap in snaps.items():
        span, rate = app_rate(snap)
        seconds = [row["members"] for row in snap["timeline"]][1:-1]  # full seconds: not the first or last
        per_app[app] = {
            "median_full_second_members": statistics.median(seconds) if seconds else None,
            "members_delivered": snap["members_unbanned"],
            "first_to_last_call_s": span,
            "members_per_s": rate,
            "ratio_to_20x_limit": rate / target if rate is not None else None,
            "members_per_call": per_s(snap["members_unbanned"], snap["calls_ok"]),
            "rate_limited": snap["rate_limited"],
            "max_calls_in_1s": snap["max_calls_in_1s"],
        }
    calls = sum(s["calls"] for s in snaps.values())
    cpu = cpu1 - cpu0 if cpu1 is not None and cpu0 is not None else None
    rates = [a["members_per_s"] for a in per_app.values() if a["members_per_s"] is not None]
    result: dict[str, Any] = {
        "apps": per_app,
        "backlog_per_app": cfg.fourapps_backlog,
        "workers": cfg.workers,
        "concurrency": cfg.fourapps_concurrency,
        "drained": drained,
        "total_members_per_s": sum(rates) if len(rates) == len(APPS) else None,
        "target_total_per_s": target * len(APPS),
        "rate_limited": sum(a["rate_limited"] for a in per_app.values()),
        "calls": calls,
        "worker_cpu_s": cpu,
        "worker_cores": cpu / wall if cpu is not None and wall else None,
        "worker_cpu_s_per_call": per_s(cpu, calls) if cpu is not None else None,
        # The simulator (four apps' calls) runs in the bench process: on a loaded machine it is a suspect too.
        "simulator_and_bench_cores": (own1 - own0) / wall if wall else None,
        "redis_cores": (redis1 - redis0) / wall if redis1 is not None and redis0 is not None and wall else None,
    }
    rates_text = ", ".join(f"{a}: {p['members_per_s'] or 0:,.0f}/s" for a, p in per_app.items())
    cores = result["worker_cores"] or 0.0
    log(f"  {rates_text}; rejections {result['rate_limited']}; workers {cores:.2f} cores")
    return result


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else 1000 * seconds


def fourapps_rows(f: dict[str, Any]) -> list[Row]:
    """Each app's members/s against 0.95 x 20 x its limit, rejections, and the workers' cores."""
    apps: dict[str, dict[str, Any]] = f.get("apps") or {}
    ratios = [a.get("ratio_to_20x_limit") for a in apps.values()]
    worst = min((r for r in ratios if r is not None), default=None)
    per_app = ", ".join(f"{name} {num(a.get('members_per_s'))}" for name, a in apps.items())
    shape = f"{num(f.get('workers'))} workers x {num(f.get('concurrency'))} threads"
    return [
        Row("fourapps", f"members/s per app, all four at once ({shape})", per_app,
            f"each ≥ {RATIO:g} x 20 x limit", check(worst if len(ratios) == len(APPS) else None, lambda r: r >= RATIO)),
        Row("fourapps", "lowest app's ratio to 20 x limit / total members/s", f"{num(worst, '.3f')} / "
            f"{num(f.get('total_members_per_s'))}", f"of {num(f.get('target_total_per_s'))}", INFO),
        Row("fourapps", "median members per full second, per app",
            ", ".join(f"{name} {num(a.get('median_full_second_members'))}" for name, a in apps.items()), "", INFO),
        Row("fourapps", "rate-limit rejections (60007), all apps", num(f.get("rate_limited")), "0",
            check(f.get("rate_limited"), lambda n: n == 0)),
        Row("fourapps", "worker CPU, cores (process trees) / per API call",
            f"{num(f.get('worker_cores'), '.2f')} / {num(_ms(f.get('worker_cpu_s_per_call')), '.2f', ' ms')}",
            f"≤ {MAX_CORES:g} core", check(f.get("worker_cores"), lambda c: c <= MAX_CORES)),
        Row("fourapps", "cores used meanwhile by the simulator + bench / Redis",
            f"{num(f.get('simulator_and_bench_cores'), '.2f')} / {num(f.get('redis_cores'), '.2f')}", "", INFO),
    ]  # fmt: skip
