"""Latency of ``imunban bench``: due -> delivered at several loads, from each way a request comes in.

For each load (a fraction of 20 x the configured limit, in members/s) and each source, one window
of Poisson arrivals in events of 1-20 members for random groups:

- ``celery``: ``send_task("imunban.unban")`` by a paced publisher subprocess
  (:mod:`imunban_celery.bench_paced`), as a system that is not Python would publish;
- ``python``: ``Producer.enqueue`` (or ``bulk`` for events that fell due together) straight into Redis;
- ``scheduled``: the same events enqueued up front with ``at`` = their arrival time.

Every latency is from the producer's send (issue 20): the Unix ms of ``send_task`` or of the Python
call, on the bench host's clock, to the outcome's ``at_ms`` (Redis clock, the same host); a scheduled
request's from its ``at``. ``due_*`` (from the due time intake assigned) is kept for reference.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imunban.bench.config import BenchConfig
from imunban.bench.naive import child_env
from imunban.bench.scenarios import cluster_for, ready
from imunban.bench.util import (
    Log,
    drained,
    last_outcome_id,
    percentile,
    read_outcomes,
    sim_window,
    wait_for,
    warm_up,
)
from imunban.local.cluster import LocalCluster

SOURCES = ("celery", "python", "scheduled")
#: Mean members per event (uniform 1-20).
MEAN_EVENT = 10.5
#: Seconds between enqueueing the scheduled events and the first due time.
LEAD_S = 2.0
#: Reported percentiles: key prefix, q.
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9))


@dataclass(frozen=True)
class Event:
    t: float  # seconds from the window's start
    group_id: str
    members: tuple[str, ...]


def poisson_events(rng: random.Random, members_per_s: float, seconds: float, groups: int, prefix: str) -> list[Event]:
    """Events of 1-20 new members for random groups, arriving as a Poisson process of ``members_per_s`` on average."""
    events: list[Event] = []
    rate = members_per_s / MEAN_EVENT
    t, n = rng.expovariate(rate), 0
    while t < seconds:
        k = rng.randint(1, 20)
        events.append(Event(t, f"{prefix}{rng.randrange(groups):04d}", tuple(f"u{n + j:07d}" for j in range(k))))
        n += k
        t += rng.expovariate(rate)
    return events


def summarize(values: list[int], prefix: str = "") -> dict[str, Any]:
    """p50, p90, p99, p99.9 and max of ``values`` (ms), keys prefixed with ``prefix``."""
    out: dict[str, Any] = {f"{prefix}{k}_ms": percentile(values, q) for k, q in PERCENTILES}
    out[f"{prefix}max_ms"] = max(values) if values else None
    return out


def _python(cluster: LocalCluster, events: list[Event]) -> dict[str, int]:
    """Each event enqueued at its time; events already due when the loop comes round go in one bulk.

    Returns member -> Unix ms of the call that sent it (an event that fell due earlier in a bulk: its own
    due time on this clock, so the time it waited for the loop counts too)."""
    producer = cluster.producer()
    started, i = time.monotonic(), 0
    wall0 = time.time() - (time.monotonic() - started)
    sent: dict[str, int] = {}
    while i < len(events):
        now = time.monotonic() - started
        j = i
        while j < len(events) and events[j].t <= now:
            j += 1
        call_ms = int(time.time() * 1000)
        for e in events[i:j]:
            sent.update(dict.fromkeys(e.members, min(call_ms, int((wall0 + e.t) * 1000))))
        if j == i + 1:
            producer.enqueue(events[i].group_id, list(events[i].members))
        elif j > i:
            producer.bulk({"group_id": e.group_id, "members": list(e.members)} for e in events[i:j])
        i = j
        if i < len(events):
            time.sleep(max(0.0, events[i].t - (time.monotonic() - started)))
    return sent


def _scheduled(cluster: LocalCluster, events: list[Event]) -> None:
    """All events enqueued up front, each due at its arrival time; returns when the last one is due."""
    base = time.time() + LEAD_S
    cluster.producer().bulk({"group_id": e.group_id, "members": list(e.members), "at": base + e.t} for e in events)
    time.sleep(max(0.0, base + (events[-1].t if events else 0.0) - time.time()))


def _celery(cluster: LocalCluster, events: list[Event], folder: Path, timeout_s: float) -> dict[str, int]:
    """Run the paced ``send_task`` publisher; returns member -> Unix ms of its send."""
    schedule, sent = folder / "schedule.jsonl", folder / "sent.txt"
    schedule.write_text(
        "".join(json.dumps({"t": e.t, "group_id": e.group_id, "members": list(e.members)}) + "\n" for e in events)
    )
    cmd = [sys.executable, "-m", "imunban_celery.bench_paced", str(schedule), str(sent)]
    with open(folder / "publisher.log", "ab") as log:
        out = subprocess.run(cmd, env=child_env(cluster.env()), stdout=subprocess.PIPE, stderr=log, timeout=timeout_s)
    if out.returncode != 0:
        raise RuntimeError(f"imunban_celery.bench_paced exited with {out.returncode}; see {folder / 'publisher.log'}")
    sent_ms = [int(line) for line in sent.read_text().split()]
    return {m: ms for e, ms in zip(events, sent_ms, strict=True) for m in e.members}


def _window(cfg: BenchConfig, cluster: LocalCluster, load: float, source: str, root: Path) -> dict[str, Any]:
    rate = load * cfg.drain_target_per_s
    prefix = f"l{round(100 * load):03d}{source[0]}-"
    events = poisson_events(random.Random(f"{cfg.seed}-{prefix}"), rate, cfg.latency_s, cfg.latency_groups, prefix)
    requests = sum(len(e.members) for e in events)
    after = last_outcome_id(cluster)
    before = cluster.sim_stats()
    started = time.monotonic()
    sent_ms: dict[str, int] = {}
    if source == "celery":
        folder = root / prefix.rstrip("-")
        folder.mkdir(parents=True, exist_ok=True)
        sent_ms = _celery(cluster, events, folder, cfg.latency_s + 120)
    elif source == "python":
        sent_ms = _python(cluster, events)
    else:
        _scheduled(cluster, events)
    arrivals_s = time.monotonic() - started
    window = sim_window(before, cluster.sim_stats(), arrivals_s)
    done = wait_for(lambda: drained(cluster), 30.0 + 2 * cfg.latency_s, poll_s=0.05)
    outcomes = [
        o
        for o in read_outcomes(cluster, after=after)
        if o.get("outcome") == "delivered" and o.get("group_id", "").startswith(prefix)
    ]
    due = [int(o["at_ms"]) - int(o["due_ms"]) for o in outcomes]
    # From the producer's send (Celery, Python); a scheduled request from the time it asked for (its `at`).
    latencies = [int(o["at_ms"]) - sent_ms[o["member"]] for o in outcomes if o["member"] in sent_ms] or due
    result: dict[str, Any] = {
        "load": load,
        "source": source,
        "members_per_s": rate,
        "events": len(events),
        "requests": requests,
        "delivered": len(latencies),
        "drained": done,
        **summarize(latencies),
        "early": sum(1 for v in latencies if v < 0),
        "calls_per_s": window["calls_per_s"],
        "members_per_call": window["members_per_call"],
    }
    result.update(summarize(due, "due_"))  # from the due time intake assigned: for reference only
    result["measured_from"] = "send" if sent_ms else "requested due time"
    return result


#: Members of the same-second burst (issue 20: "a burst of 2,000 requests due in the same second").
BURST_MEMBERS = 2_000
#: One round trip of the simulator's API latency, in the burst's bound (BenchConfig has no field for it).
BURST_ROUND_TRIP_S = 0.03


def burst_bound_s(members: int, rate_limit: float, round_trip_s: float = BURST_ROUND_TRIP_S) -> float:
    """The burst's bound: 1.1 x N / (20 x limit) (full batches at the limit, 10 % slack) + one round trip."""
    return 1.1 * members / (20 * rate_limit) + round_trip_s


def _burst(cfg: BenchConfig, cluster: LocalCluster) -> dict[str, Any]:
    """BURST_MEMBERS requests in 100 groups, all due at the same instant, enqueued ahead: lateness from that instant."""
    at = time.time() + LEAD_S
    cluster.producer().bulk(
        {"group_id": f"burst-{g:03d}", "members": [f"b{g:03d}-{m:02d}" for m in range(BURST_MEMBERS // 100)], "at": at}
        for g in range(100)
    )
    after = last_outcome_id(cluster)
    wait_for(lambda: drained(cluster), 60.0, poll_s=0.05)
    at_ms = at * 1000
    late = [int(o["at_ms"]) - at_ms for o in read_outcomes(cluster, after=after)
            if o.get("outcome") == "delivered" and o.get("group_id", "").startswith("burst-")]  # fmt: skip
    bound = burst_bound_s(BURST_MEMBERS, cfg.rate_limit)
    return {
        "members": BURST_MEMBERS,
        "delivered": len(late),
        "bound_s": bound,
        "last_s": max(late) / 1000 if late else None,
        **summarize([round(v) for v in late]),
        "early": sum(1 for v in late if v < 0),
    }


def latency(cfg: BenchConfig, root: Path, log: Log) -> dict[str, Any]:
    """Every load in ``cfg.latency_loads`` from every source, lowest load first, each window drained before the next."""
    windows: list[dict[str, Any]] = []
    with cluster_for(cfg, root / "latency") as cluster:
        ready(cluster, log)
        warm_up(cluster)
        for load in cfg.latency_loads:
            for source in SOURCES:
                part = _window(cfg, cluster, load, source, root / "latency")
                windows.append(part)
                log(
                    f"  {100 * load:3.0f} % {source:9s}: p50 {part['p50_ms']} p99 {part['p99_ms']} "
                    f"p99.9 {part['p999_ms']} ms, {part['delivered']}/{part['requests']} delivered, "
                    f"{part['members_per_call'] or 0:.1f} members/call"
                )
        burst = _burst(cfg, cluster)
        log(f"  burst of {burst['members']:,} due in the same instant: last {burst['last_s']} s "
            f"(bound {burst['bound_s']:.3f} s), {burst['early']} early")  # fmt: skip
    return {
        "burst": burst,
        "capacity_per_s": cfg.drain_target_per_s,
        "loads": list(cfg.latency_loads),
        "seconds": cfg.latency_s,
        "groups": cfg.latency_groups,
        "windows": windows,
    }
