"""The naive design, measured beside imunban: one Celery task per member, the same shared limiter.

The Celery side lives in :mod:`imunban_celery.bench_naive` and runs only in subprocesses
(``python -m celery -A imunban_celery.bench_naive:celery worker`` and
``python -m imunban_celery.bench_naive publish``): the benchmark never imports Celery.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imunban.bench.config import BenchConfig
from imunban.bench.scenarios import cluster_for
from imunban.bench.util import Log, cpu_total, per_s, sim_window, wait_for


def child_env(imunban_env: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any IMUNBAN_*, plus ``imunban_env``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMUNBAN_")}
    env.update(imunban_env)
    return env


def publish(imunban_env: Mapping[str, str], task: str, count: int, groups: int, log_path: Path) -> dict[str, Any]:
    """Run ``python -m imunban_celery.bench_naive publish`` (one apply_async per member) and return its JSON line."""
    cmd = [
        sys.executable,
        "-m",
        "imunban_celery.bench_naive",
        "publish",
        "--task",
        task,
        "--count",
        str(count),
        "--groups",
        str(groups),
    ]
    with open(log_path, "ab") as log:
        out = subprocess.run(cmd, env=child_env(imunban_env), stdout=subprocess.PIPE, stderr=log, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[1:])} exited with {out.returncode}; see {log_path}")
    result: dict[str, Any] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return result


def _start_naive_worker(root: Path, index: int, concurrency: int, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    log = open(root / f"naive-worker-{index}.log", "ab")  # noqa: SIM115  (owned by the child)
    cmd = [
        sys.executable, "-m", "celery", "-A", "imunban_celery.bench_naive:celery", "worker",
        "-P", "threads", "-c", str(concurrency),
        "-n", f"naive{index}-{os.getpid()}@localhost", "-l", "WARNING",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    try:
        return subprocess.Popen(cmd, env=child_env(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def naive(cfg: BenchConfig, root: Path, log: Log) -> dict[str, Any]:
    """Publish members as one task each, start naive workers, measure members/s over a fixed window."""
    # Enough messages that the queue never runs dry during warm-up + window (+ 50 % margin).
    count = math.ceil(cfg.rate_limit * (cfg.naive_warmup_s + cfg.naive_window_s) * 1.5) + 500
    groups = max(1, math.ceil(count / cfg.drain_members))
    with cluster_for(cfg, root / "naive", workers=0) as cluster:
        env = cluster.env()
        published = publish(env, "naive", count, groups, cluster.root / "publish.log")
        log(f"  published {count} naive tasks at {published['per_s']:.0f}/s")
        procs = [_start_naive_worker(cluster.root, i, cfg.concurrency, env) for i in range(cfg.workers)]
        try:
            if not wait_for(lambda: cluster.sim_stats()["calls"] > 0, 90, poll_s=0.1):
                raise RuntimeError(f"the naive workers made no call within 90 s; see {cluster.root}")
            time.sleep(cfg.naive_warmup_s)
            pids = [p.pid for p in procs]
            before, cpu_before, t0 = cluster.sim_stats(), cpu_total(pids), time.monotonic()
            time.sleep(cfg.naive_window_s)
            after, cpu_after, t1 = cluster.sim_stats(), cpu_total(pids), time.monotonic()
        finally:
            _stop(procs)
    window = sim_window(before, after, t1 - t0)
    cpu = cpu_after - cpu_before if cpu_after is not None and cpu_before is not None else None
    rate = window["members_per_s"]
    return {
        "published": count,
        "publish_per_s": published["per_s"],
        "workers": cfg.workers,
        "concurrency": cfg.concurrency,
        "warmup_s": cfg.naive_warmup_s,
        "window_s": window["seconds"],
        "members_in_window": window["members"],
        "calls_in_window": window["calls"],
        "members_per_s": rate,
        "ratio_to_20x_limit": rate / cfg.drain_target_per_s if rate is not None else None,
        "queue_ran_dry": after["members_unbanned"] >= count,
        "rate_limited": after["rate_limited"],
        "max_calls_in_1s": after["max_calls_in_1s"],
        "worker_cpu_s_per_call": per_s(cpu, window["calls"]) if cpu is not None else None,
    }
