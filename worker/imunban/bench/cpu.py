"""What the workers cost in CPU: an idle worker, and the drain while another process hogs a core.

CPU is read from /proc over each worker's whole process tree (Celery's main process with its pool
threads, the pump, any child process), before and after the window (:func:`imunban.bench.util.tree_cpu`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from imunban.bench.config import BenchConfig
from imunban.bench.scenarios import cluster_for, measure_drain, ready
from imunban.bench.util import Log, tree_cpu, warm_up, worker_pids

#: Seconds the workers get after the warm-up before the idle window opens (late acks, heartbeats).
SETTLE_S = 2.0
#: The hog: a Python busy loop, nothing else.
HOG_CODE = "while True:\n    pass\n"


def hog_core() -> int | None:
    """The last CPU this process may run on (the hog is pinned there); None where affinity is unsupported."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    return cores[-1] if cores else None


@contextmanager
def cpu_hog() -> Iterator[subprocess.Popen[bytes]]:
    """A busy-loop subprocess pinned to one core (if the OS lets us) for the duration of the block."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOG_CODE],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        core = hog_core()
        if core is not None:
            # Not allowed here: an unpinned busy process still takes a core's worth.
            with contextlib.suppress(OSError):
                os.sched_setaffinity(proc.pid, {core})
        yield proc
    finally:
        proc.kill()
        proc.wait()


def idle_percent(before: float | None, after: float | None, seconds: float) -> float | None:
    """CPU seconds spent over ``seconds`` of wall time as % of one core; None if either reading is missing."""
    if before is None or after is None or seconds <= 0:
        return None
    return 100.0 * (after - before) / seconds


def idle(cfg: BenchConfig, root: Path, log: Log) -> dict[str, Any]:
    """Warm workers with nothing to do: CPU of each worker's process tree over ``cfg.idle_s`` seconds."""
    with cluster_for(cfg, root / "idle") as cluster:
        ready(cluster, log)
        warm_up(cluster)
        time.sleep(SETTLE_S)
        pids = worker_pids(cluster)
        before = [tree_cpu([pid]) for pid in pids]
        started = time.monotonic()
        time.sleep(cfg.idle_s)
        after = [tree_cpu([pid]) for pid in pids]
        seconds = time.monotonic() - started
    pct = [idle_percent(b, a, seconds) for b, a in zip(before, after, strict=True)]
    measured = [p for p in pct if p is not None]
    result = {
        "seconds": seconds,
        "workers": len(pids),
        "pct_of_core": pct,
        "max_pct": max(measured) if len(measured) == len(pct) and measured else None,
        "mean_pct": sum(measured) / len(measured) if measured else None,
        "clock_tick_s": 1 / os.sysconf("SC_CLK_TCK"),
    }
    log(f"  idle: {', '.join(f'{p:.2f}' if p is not None else '—' for p in pct)} % of a core per worker")
    return result


def hog(cfg: BenchConfig, root: Path, log: Log) -> dict[str, Any]:
    """The drain again, with a busy-loop process pinned to one core beside the workers."""
    with cluster_for(cfg, root / "hog") as cluster:
        ready(cluster, log)
        warm_up(cluster)
        with cpu_hog() as proc:
            time.sleep(0.5)  # let the scheduler see it
            hog_before, started = tree_cpu([proc.pid]), time.monotonic()
            result = measure_drain(cfg, cluster, idle_s=0.0)
            hog_after, wall = tree_cpu([proc.pid]), time.monotonic() - started
    result["hog_core"] = hog_core()
    result["hog_cores"] = (hog_after - hog_before) / wall if hog_after is not None and hog_before is not None else None
    log(
        f"  beside the hog: {result['members_per_s'] or 0:,.0f} members/s "
        f"(ratio {result['ratio_to_20x_limit'] or 0:.3f}), hog used {result['hog_cores'] or 0:.2f} cores"
    )
    return result
