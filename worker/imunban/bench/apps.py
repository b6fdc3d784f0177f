"""The "apps" scenario of ``imunban bench`` (docs/semantics.md#several-apps and #targets).

Two apps, A and B, each with its own SDKAppID, key, limit (``cfg.rate_limit``) and simulator limit
(``cfg.api_limit`` per sliding second), served by the same workers from one apps file:

1. A drains a backlog of ``apps_backlog`` members while B receives a trickle of ``apps_trickle_per_s``
   requests/s through Celery (``send_task("imunban.unban", app="B")`` by the paced publisher
   subprocess, :mod:`imunban_celery.bench_paced`, to B's intake queue), one every 200 ms through
   ``Producer.enqueue`` and one every 2 s through ``imunban enqueue --app B`` (a new process each):
   A's members/s against 20 x its limit, B's send -> delivered p99 of each source (the producer's clock
   at the send, before the CLI process starts; one host, so one clock) against 250 ms;
2. A's simulator answers a configuration error (60006) to every call, so A is held, while B drains a
   backlog of ``apps_b_backlog`` members: B's members/s against 20 x its limit, nothing of A dead;
   then A's error is lifted and A resumes by itself.

Worker, Redis and bench-process CPU are reported for phase 1: two apps at full speed are twice the
calls of the single-app drain on the same two cores.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

from imunban.bench.config import BenchConfig
from imunban.bench.naive import child_env
from imunban.bench.scenarios import cluster_for, ready
from imunban.bench.util import Log, cpu_total, per_s, percentile, tree_cpu, wait_for, worker_pids
from imunban.keys import Keys
from imunban.local.cluster import LocalCluster

APP_A, APP_B = "A", "B"
#: The ErrorCode A's simulator answers in phase 2: a configuration error, which holds A.
HOLD_CODE = 60006
TRICKLE_GROUPS = 50


def _outcome_key(cluster: LocalCluster, app: str) -> str:
    return Keys(cluster.settings().key_prefix, app).outcomes


def _last_id(cluster: LocalCluster, app: str) -> str:
    newest: Any = cluster.client.xrevrange(_outcome_key(cluster, app), count=1)
    return str(newest[0][0]) if newest else "0-0"


def _outcomes(cluster: LocalCluster, app: str, after: str) -> list[dict[str, str]]:
    key, start, found = _outcome_key(cluster, app), "(" + after, []
    while True:
        chunk = cast(list[tuple[str, dict[str, str]]], cluster.client.xrange(key, start, "+", count=10_000))
        found += [fields for _, fields in chunk]
        if len(chunk) < 10_000:
            return found
        start = "(" + chunk[-1][0]


def _app_status(cluster: LocalCluster, app: str) -> dict[str, Any]:
    return cast(dict[str, Any], cluster.status()["apps"][app])


def _app_drained(cluster: LocalCluster, app: str) -> bool:
    s = _app_status(cluster, app)
    return bool(s["queued"] == 0 and s["scheduled"] == 0 and s["in_flight"] == 0)


def _backlog(app: str, prefix: str, members: int) -> list[dict[str, Any]]:
    """``members`` requests in groups of 100 (each group five full calls), all due now."""
    per_group = 100
    return [
        {"group_id": f"{prefix}{g:05d}", "app": app,
         "members": [f"u{m:03d}" for m in range(min(per_group, members - g * per_group))]}
        for g in range((members + per_group - 1) // per_group)
    ]  # fmt: skip


def _warm_up(cluster: LocalCluster) -> None:
    producer = cluster.producer()
    for app in (APP_A, APP_B):
        producer.bulk({"group_id": f"warm-{app}-{g}", "members": [f"w{m}" for m in range(20)], "app": app}
                      for g in range(8))  # fmt: skip
    wait_for(lambda: all(_app_drained(cluster, a) for a in (APP_A, APP_B)), 60)
    assert cluster.multi is not None
    cluster.multi.reset()


def _span_rate(sim: dict[str, Any]) -> tuple[float | None, float | None]:
    """(first -> last call seconds, members/s over it) of one app's simulator snapshot."""
    first, last = sim["first_call_s"], sim["last_call_s"]
    span = (last - first) if first is not None and last is not None else None
    return span, per_s(sim["members_unbanned"], span)


def _sent_ms(folder: Path) -> dict[str, int]:
    """member -> Unix ms of its ``send_task`` (the paced publisher's sent.txt, in schedule order)."""
    items = [json.loads(line) for line in (folder / "trickle.jsonl").read_text().splitlines() if line]
    stamps = [int(line) for line in (folder / "sent.txt").read_text().split()]
    return {m: ms for item, ms in zip(items, stamps, strict=False) for m in item["members"]}


def _start_trickle(cluster: LocalCluster, cfg: BenchConfig, seconds: float, folder: Path) -> subprocess.Popen[bytes]:
    """The paced Celery publisher: ``apps_trickle_per_s`` one-member requests/s for app B, for ``seconds``."""
    rng = random.Random(f"{cfg.seed}-apps-trickle")
    n = int(seconds * cfg.apps_trickle_per_s)
    schedule = folder / "trickle.jsonl"
    schedule.write_text("".join(
        json.dumps({"t": i / cfg.apps_trickle_per_s, "group_id": f"trickle-{rng.randrange(TRICKLE_GROUPS):03d}",
                    "members": [f"t{i:06d}"], "app": APP_B}) + "\n"
        for i in range(n)
    ))  # fmt: skip
    cmd = [sys.executable, "-m", "imunban_celery.bench_paced", str(schedule), str(folder / "sent.txt")]
    log = open(folder / "publisher.log", "ab")  # noqa: SIM115  (the child owns it)
    try:
        return subprocess.Popen(cmd, env=child_env(cluster.env()), stdout=subprocess.PIPE, stderr=log)
    finally:
        log.close()


#: One-member requests for B through the Python producer and the CLI during phase 1: (interval s, group prefix).
PY_EVERY_S, CLI_EVERY_S = 0.2, 2.0


def _python_and_cli(cluster: LocalCluster, seconds: float, stop: threading.Event) -> dict[str, int]:
    """B's requests through ``Producer.enqueue`` (every PY_EVERY_S) and ``imunban enqueue --app B`` (every
    CLI_EVERY_S), for ``seconds``; returns member -> Unix ms of the call (before the CLI process starts)."""
    producer, env = cluster.producer(), child_env(cluster.env())
    sent: dict[str, int] = {}
    started, n, next_cli = time.monotonic(), 0, 0.0
    children: list[subprocess.Popen[bytes]] = []
    while not stop.is_set() and time.monotonic() - started < seconds:
        n += 1
        if time.monotonic() - started >= next_cli:
            member = f"c{n:06d}"
            sent[member] = int(time.time() * 1000)
            cmd = [sys.executable, "-m", "imunban", "enqueue", "--app", APP_B, f"cli-{n % 10:03d}", member]
            children.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            next_cli += CLI_EVERY_S
        member = f"p{n:06d}"
        sent[member] = int(time.time() * 1000)
        producer.enqueue(f"py-{n % 10:03d}", [member], app=APP_B)
        stop.wait(PY_EVERY_S)
    for child in children:
        child.wait(timeout=60)
    return sent


def _from_send(outcomes: list[dict[str, str]], sent: dict[str, int], prefix: str) -> list[int]:
    """send -> delivered (ms) of the delivered members of groups starting with ``prefix``."""
    return [int(o["at_ms"]) - sent[o["member"]] for o in outcomes
            if o.get("group_id", "").startswith(prefix) and o["member"] in sent]  # fmt: skip


def apps(cfg: BenchConfig, root: Path, log: Log) -> dict[str, Any]:
    """Phase 1 (A's backlog beside B's Celery trickle) and phase 2 (A held, B's backlog), as the module says."""
    folder = root / "apps"
    folder.mkdir(parents=True, exist_ok=True)
    limits = {APP_A: cfg.rate_limit, APP_B: cfg.rate_limit}
    target = 20 * cfg.rate_limit
    with cluster_for(cfg, folder, apps=limits) as cluster:
        ready(cluster, log)
        _warm_up(cluster)
        phase1 = _phase1(cfg, cluster, folder, target, log)
        phase2 = _phase2(cfg, cluster, target, log)
    return {"rate_limit": cfg.rate_limit, "api_limit": cfg.api_limit, "target_per_s": target,
            "phase1": phase1, "phase2": phase2}  # fmt: skip


def _phase1(cfg: BenchConfig, cluster: LocalCluster, folder: Path, target: float, log: Log) -> dict[str, Any]:
    assert cluster.multi is not None
    sim_a, sim_b = cluster.sim_of(APP_A), cluster.sim_of(APP_B)
    expected_s = cfg.apps_backlog / target
    after_b = _last_id(cluster, APP_B)
    pids = worker_pids(cluster)
    redis_pid = [cluster.redis_server.process.pid] if cluster.redis_server and cluster.redis_server.process else []
    publisher = _start_trickle(cluster, cfg, expected_s + 4.0, folder)
    stop, direct = threading.Event(), {}
    feeder = threading.Thread(target=lambda: direct.update(_python_and_cli(cluster, expected_s + 4.0, stop)))
    feeder.start()
    time.sleep(1.5)  # the publisher imports Celery and connects: its trickle is flowing when A's backlog lands
    cpu0, redis0, own0, wall0 = tree_cpu(pids), cpu_total(redis_pid), time.process_time(), time.monotonic()
    cluster.producer().bulk(_backlog(APP_A, "backlog-", cfg.apps_backlog))
    enqueue_s = time.monotonic() - wall0
    drained_a = wait_for(lambda: _app_drained(cluster, APP_A), max(120.0, 5 * expected_s), poll_s=0.1)
    cpu1, redis1, own1, wall1 = tree_cpu(pids), cpu_total(redis_pid), time.process_time(), time.monotonic()
    snap_a, snap_b_during = sim_a.snapshot(), sim_b.snapshot()
    out, _ = publisher.communicate(timeout=expected_s + 120)
    stop.set()
    feeder.join()
    sent = json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {}
    drained_b = wait_for(lambda: _app_drained(cluster, APP_B), 60, poll_s=0.1)
    outcomes = [o for o in _outcomes(cluster, APP_B, after_b) if o.get("outcome") == "delivered"]
    # Every latency from the producer's send (its clock; one host), not from the due time intake assigned.
    b_lat = _from_send(outcomes, _sent_ms(folder), "trickle-")
    b_due = [int(o["at_ms"]) - int(o["due_ms"]) for o in outcomes if o.get("group_id", "").startswith("trickle-")]
    b_py, b_cli = _from_send(outcomes, direct, "py-"), _from_send(outcomes, direct, "cli-")
    span, rate = _span_rate(snap_a)
    wall = wall1 - wall0
    calls = snap_a["calls"] + snap_b_during["calls"]
    cpu = cpu1 - cpu0 if cpu1 is not None and cpu0 is not None else None
    result: dict[str, Any] = {
        "a_backlog": cfg.apps_backlog,
        "a_enqueue_s": enqueue_s,
        "a_drained": drained_a,
        "a_members_delivered": snap_a["members_unbanned"],
        "a_first_to_last_call_s": span,
        "a_members_per_s": rate,
        "a_ratio_to_20x_limit": rate / target if rate is not None else None,
        "a_members_per_call": per_s(snap_a["members_unbanned"], snap_a["calls_ok"]),
        "a_rate_limited": snap_a["rate_limited"],
        "a_max_calls_in_1s": snap_a["max_calls_in_1s"],
        "b_sent": sent.get("sent"),
        "b_publisher_max_behind_ms": sent.get("max_behind_ms"),
        "b_delivered": len(b_lat),
        "b_drained": drained_b,
        "b_p50_ms": percentile(b_lat, 50),
        "b_p99_ms": percentile(b_lat, 99),
        "b_max_ms": max(b_lat) if b_lat else None,
        "b_due_p99_ms": percentile(b_due, 99),
        "b_python_delivered": len(b_py),
        "b_python_p50_ms": percentile(b_py, 50),
        "b_python_p99_ms": percentile(b_py, 99),
        "b_cli_delivered": len(b_cli),
        "b_cli_p50_ms": percentile(b_cli, 50),
        "b_cli_p99_ms": percentile(b_cli, 99),
        "b_rate_limited": sim_b.snapshot()["rate_limited"],
        "calls": calls,
        "worker_cpu_s": cpu,
        "worker_cpu_s_per_call": per_s(cpu, calls) if cpu is not None else None,
        "cores_used": {
            "workers": cpu / wall if cpu is not None and wall else None,
            "simulator_and_bench": (own1 - own0) / wall if wall else None,
            "redis": (redis1 - redis0) / wall if redis1 is not None and redis0 is not None and wall else None,
        },
    }
    log(f"  A: {rate or 0:,.0f} members/s ({(result['a_ratio_to_20x_limit'] or 0):.3f} of 20 x limit); "
        f"B from send p99: Celery {result['b_p99_ms']} ms ({len(b_lat)}), Python {result['b_python_p99_ms']} ms "
        f"({len(b_py)}), CLI {result['b_cli_p99_ms']} ms ({len(b_cli)}); workers {result['cores_used']['workers']} "
        "cores")  # fmt: skip
    return result


def _phase2(cfg: BenchConfig, cluster: LocalCluster, target: float, log: Log) -> dict[str, Any]:
    sim_a, sim_b = cluster.sim_of(APP_A), cluster.sim_of(APP_B)
    sim_a.configure(global_error=HOLD_CODE)
    held_backlog = min(cfg.apps_b_backlog, 20_000)
    producer = cluster.producer()
    producer.bulk(_backlog(APP_A, "held-", held_backlog))
    held = wait_for(lambda: _app_status(cluster, APP_A)["hold"] is not None, 30, poll_s=0.05)
    sim_b.reset()
    producer.bulk(_backlog(APP_B, "b-backlog-", cfg.apps_b_backlog))
    drained_b = wait_for(lambda: _app_drained(cluster, APP_B), max(120.0, 5 * cfg.apps_b_backlog / target), 0.1)
    snap_b = sim_b.snapshot()
    status_a = _app_status(cluster, APP_A)
    still_held = status_a["hold"] is not None
    span, rate = _span_rate(snap_b)
    sim_a.configure(global_error=None)
    resumed_at = time.monotonic()
    resumed = wait_for(lambda: _app_drained(cluster, APP_A), 120, poll_s=0.2)
    result = {
        "a_held": held,
        "a_still_held_after_b": still_held,
        "a_waiting": status_a["queued"] + status_a["in_flight"],
        "a_dead": status_a["dead"],
        "b_backlog": cfg.apps_b_backlog,
        "b_drained": drained_b,
        "b_members_delivered": snap_b["members_unbanned"],
        "b_first_to_last_call_s": span,
        "b_members_per_s": rate,
        "b_ratio_to_20x_limit": rate / target if rate is not None else None,
        "b_members_per_call": per_s(snap_b["members_unbanned"], snap_b["calls_ok"]),
        "b_rate_limited": snap_b["rate_limited"],
        "a_resumed": resumed,
        "a_resume_s": time.monotonic() - resumed_at,
        "a_dead_after_resume": _app_status(cluster, APP_A)["dead"],
    }
    log(f"  A held: {held}; B: {rate or 0:,.0f} members/s ({(result['b_ratio_to_20x_limit'] or 0):.3f}); "
        f"A resumed: {resumed}")  # fmt: skip
    return result
