"""Small measuring tools the benchmark scenarios share: CPU time, percentiles, tolerant polling."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import redis

from imunban.errors import StoreError
from imunban.keys import Keys
from imunban.local.cluster import LocalCluster

Log = Callable[[str], None]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process (Linux /proc); None where that is not available."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            data = f.read()
    except OSError:
        return None
    # Field 2 (comm) may hold spaces; fields after it start at field 3 (state): utime=14, stime=15.
    fields = data.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_total(pids: Iterable[int]) -> float | None:
    """Sum of :func:`cpu_seconds`; None if any process could not be read."""
    total = 0.0
    for pid in pids:
        seconds = cpu_seconds(pid)
        if seconds is None:
            return None
        total += seconds
    return total


def parse_stat(text: str) -> tuple[int, int]:
    """(parent pid, utime + stime + cutime + cstime in clock ticks) from one /proc/PID/stat line."""
    # Field 2 (comm) may hold spaces and ')': fields after the last ')' start at field 3 (state).
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), sum(int(f) for f in fields[11:15])


def descendants(roots: Iterable[int], parent_of: Mapping[int, int]) -> list[int]:
    """``roots`` and every process below them in ``parent_of`` (pid -> parent pid), roots first."""
    children: dict[int, list[int]] = {}
    for pid, parent in parent_of.items():
        children.setdefault(parent, []).append(pid)
    found: list[int] = []
    seen: set[int] = set()
    stack = list(roots)[::-1]
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        found.append(pid)
        stack.extend(sorted(children.get(pid, []), reverse=True))
    return found


def _proc_stats() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, CPU ticks incl. reaped children) of every readable process."""
    stats: dict[int, tuple[int, int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return stats
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                stats[int(name)] = parse_stat(f.read())
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return stats


def tree_cpu(roots: Iterable[int]) -> float | None:
    """CPU seconds (user + system) of ``roots`` and all their descendants, threads included.

    Each process counts its own time plus that of its children it has already waited for
    (cutime/cstime), so a pool process that exited during the window is still counted once.
    None when a root cannot be read (gone, or no /proc).
    """
    roots = list(roots)
    stats = _proc_stats()
    if any(pid not in stats for pid in roots):
        return None
    tree = descendants(roots, {pid: parent for pid, (parent, _) in stats.items()})
    return sum(stats[pid][1] for pid in tree) / os.sysconf("SC_CLK_TCK")


def worker_pids(cluster: LocalCluster) -> list[int]:
    return [proc.pid for proc in cluster.workers if proc is not None]


def loadavg1() -> float | None:
    """The 1-minute load average (other work on the machine moves absolute numbers)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0-100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered) / 100 - 1e-9))  # p99.9 of 1,000 values is the 999th
    return float(ordered[min(rank, len(ordered)) - 1])


def per_s(count: float, seconds: float | None) -> float | None:
    return count / seconds if seconds else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def wait_for(predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.1) -> bool:
    """Poll ``predicate`` until it holds; Redis errors (a restart in progress) count as 'not yet'."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except (redis.RedisError, StoreError, OSError):
            pass
        time.sleep(poll_s)
    return False


def drained(cluster: LocalCluster) -> bool:
    """Nothing queued, scheduled or in flight."""
    s = cluster.status()
    return bool(s["queued"] == 0 and s["scheduled"] == 0 and s["in_flight"] == 0)


def wait_workers_ready(cluster: LocalCluster, timeout_s: float = 60.0) -> bool:
    """True once every worker's log says Celery is ready to consume."""
    logs = [cluster.root / f"worker-{i}.log" for i, proc in enumerate(cluster.workers) if proc is not None]

    def ready() -> bool:
        return all(_log_says(path, " ready.") for path in logs)

    return wait_for(ready, timeout_s, poll_s=0.2)


def _log_says(path: Path, needle: str) -> bool:
    try:
        return needle in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def warm_up(cluster: LocalCluster, timeout_s: float = 60.0) -> None:
    """Push a few full batches through every worker thread, then forget the simulator's counters."""
    n_groups = max(4, 2 * len(worker_pids(cluster)))
    cluster.producer().bulk(
        {"group_id": f"warmup-{g}", "members": [f"w{m}" for m in range(20)]} for g in range(n_groups)
    )
    wait_for(lambda: drained(cluster), timeout_s, poll_s=0.1)
    assert cluster.simulator is not None
    cluster.simulator.reset()


def last_outcome_id(cluster: LocalCluster) -> str:
    """The id of the outcome stream's newest entry ("0-0" when empty): read from after it with ``read_outcomes``."""
    newest: Any = cluster.client.xrevrange(Keys(cluster.settings().key_prefix).outcomes, count=1)
    return str(newest[0][0]) if newest else "0-0"


def read_outcomes(cluster: LocalCluster, page: int = 10_000, after: str | None = None) -> list[dict[str, str]]:
    """Every entry of the outcome stream (or those after the id ``after``), oldest first."""
    key = Keys(cluster.settings().key_prefix).outcomes
    entries: list[dict[str, str]] = []
    start = "-" if after is None else "(" + after
    while True:
        chunk: Any = cluster.client.xrange(key, start, "+", count=page)
        if not chunk:
            return entries
        entries += [fields for _, fields in chunk]
        if len(chunk) < page:
            return entries
        start = "(" + chunk[-1][0]


def latencies_ms(outcomes: Iterable[dict[str, str]], group_prefix: str) -> list[int]:
    """due -> delivered (Redis clock, ms) of the delivered requests of groups starting with ``group_prefix``."""
    return [
        int(o["at_ms"]) - int(o["due_ms"])
        for o in outcomes
        if o.get("outcome") == "delivered" and o.get("group_id", "").startswith(group_prefix)
    ]


def sim_window(before: dict[str, Any], after: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Calls, members and their rates between two simulator snapshots."""
    calls = after["calls"] - before["calls"]
    calls_ok = after["calls_ok"] - before["calls_ok"]
    members = after["members_unbanned"] - before["members_unbanned"]
    return {
        "seconds": seconds,
        "calls": calls,
        "members": members,
        "calls_per_s": per_s(calls, seconds),
        "members_per_s": per_s(members, seconds),
        "members_per_call": per_s(members, calls_ok),
    }
