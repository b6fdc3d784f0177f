"""The cluster scenarios of ``imunban bench``: backlog drain and chaos (latency: :mod:`imunban.bench.latency`).

Each runs a :class:`~imunban.local.cluster.LocalCluster` (real redis-server, the simulator over loopback
HTTP, ``imunban worker`` subprocesses) and returns a JSON-ready dict of what it measured.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imunban.bench.config import BenchConfig
from imunban.bench.floor import floor_calls, measure_floor, ratio, round_trips_per_call
from imunban.bench.util import (
    Log,
    cpu_total,
    drained,
    loadavg1,
    per_s,
    tree_cpu,
    wait_for,
    wait_workers_ready,
    warm_up,
    worker_pids,
)
from imunban.local.cluster import LocalCluster

#: Chaos settings: a lease past the 5 s read timeout of a hung call; backoff short enough to finish.
CHAOS_ENV = {"IMUNBAN_LEASE_MS": "10000", "IMUNBAN_BACKOFF_BASE_MS": "250", "IMUNBAN_BACKOFF_CAP_MS": "5000"}
CHAOS_FAULTS = {"http_502_rate": 0.10, "error_10002_rate": 0.05, "hang_rate": 0.02}


def cluster_for(cfg: BenchConfig, root: Path, *, workers: int | None = None, **kwargs: Any) -> LocalCluster:
    """A LocalCluster with the bench's workers, concurrency, rate limit and simulator (not started)."""
    kwargs.setdefault("sim_config", cfg.sim())
    env = {**cfg.env(), **kwargs.pop("env", {})}
    n = cfg.workers if workers is None else workers
    return LocalCluster(root, workers=n, concurrency=cfg.concurrency, env=env, **kwargs)


def ready(cluster: LocalCluster, log: Log) -> None:
    if cluster.workers and not wait_workers_ready(cluster, 90):
        log("  workers did not report ready within 90 s; measuring anyway")


def _status(cluster: LocalCluster, timeout_s: float = 30.0) -> dict[str, Any]:
    """``status`` once Redis answers again (it may be restarting); {} if it never does."""
    found: dict[str, Any] = {}

    def read() -> bool:
        found.update(cluster.status())
        return True

    wait_for(read, timeout_s)
    return found


# -- 1. backlog drain -------------------------------------------------------------------------------


def drain(cfg: BenchConfig, root: Path, log: Log) -> dict[str, Any]:
    """Bulk-enqueue groups x members due now into warm workers; time first -> last API call."""
    with cluster_for(cfg, root / "drain") as cluster:
        ready(cluster, log)
        warm_up(cluster)
        return measure_drain(cfg, cluster)


def measure_drain(cfg: BenchConfig, cluster: LocalCluster, *, idle_s: float = 2.0) -> dict[str, Any]:
    """The drain on a started, warm cluster: rates, batches, worker CPU over each worker's process tree."""
    total = cfg.drain_groups * cfg.drain_members
    pids = worker_pids(cluster)
    redis_pid = [cluster.redis_server.process.pid] if cluster.redis_server and cluster.redis_server.process else []
    cpu_before, redis_before, own_before = tree_cpu(pids), cpu_total(redis_pid), time.process_time()
    load_before = loadavg1()
    started = time.monotonic()
    cluster.producer().bulk(
        {"group_id": f"drain-{g:05d}", "members": [f"user_{m:06d}" for m in range(cfg.drain_members)]}
        for g in range(cfg.drain_groups)
    )
    enqueue_s = time.monotonic() - started
    # From here on the script calls are the workers' (the bench's own polls run no script).
    scripts_after_enqueue, calls_after_enqueue = _script_calls(cluster), cluster.sim_stats()["calls"]
    done = wait_for(lambda: drained(cluster), max(120.0, 5 * total / cfg.drain_target_per_s), poll_s=0.05)
    cpu_after, redis_after, own_after = tree_cpu(pids), cpu_total(redis_pid), time.process_time()
    wall = time.monotonic() - started
    sim = cluster.sim_stats()
    round_trips = round_trips_per_call(
        _script_calls(cluster) - scripts_after_enqueue, sim["calls"] - calls_after_enqueue
    )
    # Idle cost of the pumps, to tell it apart from per-call cost (the idle scenario measures it longer).
    time.sleep(idle_s)
    cpu_idle = tree_cpu(pids)
    status = _status(cluster)
    first, last = sim["first_call_s"], sim["last_call_s"]
    span = (last - first) if first is not None and last is not None else None
    members = sim["members_unbanned"]
    rate = per_s(members, span)
    cpu = cpu_after - cpu_before if cpu_after is not None and cpu_before is not None else None
    idle = (cpu_idle - cpu_after) / idle_s if cpu_idle is not None and cpu_after is not None and idle_s else None
    timeline = [row for row in sim["timeline"] if first is not None and int(first) <= row["t"] <= int(last)]
    interior = [row["members"] for row in timeline[1:-1]]
    cpu_per_call = per_s(cpu, sim["calls"]) if cpu is not None else None
    floor = _floor(cluster, sim["calls"], per_s(sim["calls"], span), round_trips)
    return {
        "groups": cfg.drain_groups,
        "members_per_group": cfg.drain_members,
        "requests": total,
        "drained": done,
        "enqueue_s": enqueue_s,
        "first_to_last_call_s": span,
        "members_delivered": members,
        "distinct_delivered": sim["distinct_unbanned"],
        "members_per_s": rate,
        "ratio_to_20x_limit": rate / cfg.drain_target_per_s if rate is not None else None,
        "median_full_second_members": statistics.median(interior) if interior else None,
        "calls": sim["calls"],
        "members_per_call": per_s(members, sim["calls_ok"]),
        "batch_sizes": sim["batch_sizes"],
        "rate_limited": sim["rate_limited"],
        "max_calls_in_1s": sim["max_calls_in_1s"],
        "worker_cpu_s": cpu,
        "worker_cpu_s_per_call": cpu_per_call,
        "idle_cpu_s_per_s": idle,
        # The bare client loop in the same run (bench/floor.py): what a call cannot cost less than here.
        "script_calls_per_api_call": round_trips,
        "floor": floor,
        "worker_to_floor": ratio(cpu_per_call, floor.get("cpu_s_per_call")),
        # Where the machine's cores went while draining (cores = CPU seconds / wall seconds).
        "cores_used": {
            "workers": cpu / wall if cpu is not None else None,
            "simulator_and_bench": (own_after - own_before) / wall,
            "redis": (redis_after - redis_before) / wall
            if redis_after is not None and redis_before is not None
            else None,
        },
        "loadavg_1m": {"before": load_before, "after": loadavg1()},
        "dead": status.get("dead"),
        "timeline": [{**row, "t": row["t"] - int(first)} for row in timeline] if first is not None else [],
    }


def _script_calls(cluster: LocalCluster) -> int:
    """EVALSHA and EVAL calls the cluster's Redis has served so far (INFO commandstats)."""
    stats: dict[str, Any] = cluster.client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


def _floor(cluster: LocalCluster, calls: int, rate_per_s: float | None, round_trips: int) -> dict[str, Any]:
    """The bare client loop against the same simulator and Redis at the drain's call rate; {"error"} if it failed."""
    if not rate_per_s or cluster.sim_server is None:
        return {"error": "no call rate measured"}
    try:
        return measure_floor(cluster.env(), cluster.api_url, cluster.redis_url, floor_calls(calls), rate_per_s,
                             round_trips)  # fmt: skip
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


# -- 6. chaos ----------------------------------------------------------------------------------------


def chaos(cfg: BenchConfig, root: Path, log: Log) -> dict[str, Any]:
    """Faults at the API, two worker SIGKILLs and one Redis restart (AOF) while a backlog drains."""
    expected = cfg.chaos_groups * cfg.chaos_members
    sim_config = cfg.sim(**CHAOS_FAULTS)
    events: list[dict[str, Any]] = []
    with cluster_for(cfg, root / "chaos", sim_config=sim_config, env=CHAOS_ENV, appendonly=True) as cluster:
        ready(cluster, log)
        assert cluster.simulator is not None
        simulator = cluster.simulator
        started, started_wall = time.monotonic(), time.time()
        cluster.producer().bulk(
            {"group_id": f"chaos-{g:05d}", "members": [f"user_{m:06d}" for m in range(cfg.chaos_members)]}
            for g in range(cfg.chaos_groups)
        )

        def kill(index: int) -> None:
            cluster.kill_worker(index)
            time.sleep(1.0)
            cluster.start_worker(index)

        last = cfg.workers - 1
        actions: list[tuple[float, str, Callable[[], None]]] = [
            (0.20, "SIGKILL worker 0, restart it 1 s later", lambda: kill(0)),
            (0.45, "restart Redis (AOF), 0.5 s down", lambda: cluster.restart_redis(down_s=0.5)),
            (0.70, f"SIGKILL worker {last}, restart it 1 s later", lambda: kill(last)),
        ]
        for fraction, what, action in actions:
            target = fraction * expected
            if not wait_for(lambda: simulator.snapshot()["distinct_unbanned"] >= target, cfg.chaos_timeout_s, 0.05):  # noqa: B023
                events.append({"at_s": round(time.monotonic() - started, 2), "event": f"skipped (stalled): {what}"})
                continue
            events.append({"at_s": round(time.monotonic() - started, 2), "event": what})
            log(f"  {events[-1]['at_s']:6.2f} s  {what}")
            action()
        done = wait_for(lambda: drained(cluster), cfg.chaos_timeout_s, poll_s=0.2)
        drain_s = time.monotonic() - started
        sim = cluster.sim_stats()
        status = _status(cluster)
    counters = status.get("counters", {})
    return {
        "requests": expected,
        "faults": {**CHAOS_FAULTS, "latency_ms": cfg.latency_ms, "hang_s": sim_config.hang_s},
        "settings": CHAOS_ENV,
        "events": events,
        "drained": done,
        "time_to_drain_s": drain_s,
        "fault_free_drain_s": expected / cfg.drain_target_per_s,
        "last_call_after_s": sim["last_call_s"] - started_wall if sim["last_call_s"] else None,
        "distinct_delivered": sim["distinct_unbanned"],
        "lost": expected - sim["distinct_unbanned"],
        "duplicates": sim["duplicate_unbans"],
        "calls": sim["calls"],
        "hangs": sim["hangs"],
        "http_status": sim["http_status"],
        "codes": sim["codes"],
        "rate_limited": sim["rate_limited"],
        "dead": status.get("dead"),
        "retried": counters.get("retried"),
        "reaped": counters.get("reaped"),
    }
