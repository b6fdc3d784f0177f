"""End to end: real redis-server, the simulator over loopback HTTP, `imunban worker` processes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imunban.keys import Keys
from imunban.local.cluster import LocalCluster
from imunban.sim.core import SimConfig

ClusterFactory = Callable[..., LocalCluster]


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[ClusterFactory]:
    """Build and start clusters; every one is stopped at teardown, even on failure."""
    started: list[LocalCluster] = []

    def make(**kwargs: Any) -> LocalCluster:
        kwargs.setdefault("sim_config", SimConfig(latency_ms=30))
        cluster = LocalCluster(tmp_path / f"cluster{len(started)}", **kwargs)
        started.append(cluster)
        return cluster.start()

    yield make
    for cluster in started:
        cluster.stop()


def outcomes(cluster: LocalCluster) -> list[dict[str, str]]:
    return [fields for _, fields in cluster.client.xrange(Keys(cluster.settings().key_prefix).outcomes)]


def test_interleaved_single_enqueues_three_workers(make_cluster: ClusterFactory) -> None:
    """200 groups x 50 members enqueued one by one: all delivered; past what the limiter allowed, calls are full."""
    cluster = make_cluster(workers=3, concurrency=6, env={"IMUNBAN_LINGER_MS": "400"})
    producer = cluster.producer()
    started = time.monotonic()
    for m in range(50):
        for g in range(200):
            producer.enqueue(f"g{g}", [f"u{m}"])
    enqueue_s = time.monotonic() - started
    assert cluster.wait_drained(120)
    sim = cluster.sim_stats()
    assert sim["members_unbanned"] >= 10_000
    assert sim["distinct_unbanned"] == 10_000
    sizes = {int(k): v for k, v in sim["batch_sizes"].items()}
    assert max(sizes) <= 20
    calls = sum(sizes.values())
    # SPEC §2: while the limiter has calls to spare a due batch goes at once, so how small the calls are
    # while members trickle in depends on how fast this box enqueues (at most the limit's calls in that
    # time); what is left when the enqueue ends is a backlog, drained in full calls but for one partial
    # call per group. One member per call would be 10,000 calls.
    limit_per_s = float(cluster.settings().single_app.rate_limit_per_s)
    assert calls <= limit_per_s * (enqueue_s + 1) + 10_000 / 20 + 200, sorted(sizes.items())
    assert sim["rate_limited"] == 0
    assert sim["max_calls_in_1s"] <= 200
    assert cluster.status()["delivered"] == 10_000


def test_full_groups_make_full_calls(make_cluster: ClusterFactory) -> None:
    """100 groups x 60 members: at least 95 % of calls carry 20 members, none more."""
    cluster = make_cluster(workers=2)
    cluster.producer().bulk({"group_id": f"g{g}", "member": f"u{m}"} for m in range(60) for g in range(100))
    assert cluster.wait_drained(60)
    sizes = {int(k): v for k, v in cluster.sim_stats()["batch_sizes"].items()}
    assert max(sizes) <= 20
    assert sizes.get(20, 0) >= 0.95 * sum(sizes.values())


def test_worker_killed_mid_batch_loses_nothing(make_cluster: ClusterFactory) -> None:
    """SIGKILL of a worker mid-run: every member still delivered, duplicates only counted."""
    cluster = make_cluster(workers=2, sim_config=SimConfig(latency_ms=80), env={"IMUNBAN_LEASE_MS": "3000"})
    cluster.producer().bulk({"group_id": f"g{g}", "member": f"u{m}"} for m in range(100) for g in range(60))
    assert cluster.wait_until(lambda s: s["delivered"] > 500 and s["in_flight"] > 0, 60)
    cluster.kill_worker(0)
    assert cluster.wait_drained(90)
    sim = cluster.sim_stats()
    assert sim["distinct_unbanned"] == 6_000
    status = cluster.status()
    assert status["delivered"] + status["counters"]["stale_acks"] >= 6_000
    assert status["dead"] == 0


def test_faults_retried_until_delivered(make_cluster: ClusterFactory) -> None:
    """10 % HTTP 502, 5 % 10002, 2 % timeouts: every member delivered, retries recorded."""
    sim = SimConfig(latency_ms=30, http_502_rate=0.10, error_10002_rate=0.05, hang_rate=0.02, hang_s=6.0, seed=7)
    cluster = make_cluster(
        workers=2, sim_config=sim, env={"IMUNBAN_BACKOFF_BASE_MS": "200", "IMUNBAN_BACKOFF_CAP_MS": "2000"}
    )
    cluster.producer().bulk({"group_id": f"g{g}", "member": f"u{m}"} for m in range(40) for g in range(50))
    assert cluster.wait_drained(120)
    assert cluster.sim_stats()["distinct_unbanned"] == 2_000
    status = cluster.status()
    assert status["dead"] == 0
    assert status["counters"]["retried"] > 0
    assert max(int(o["attempts"]) for o in outcomes(cluster)) > 1


def test_poison_member_isolated(make_cluster: ClusterFactory) -> None:
    """A poison member in a full batch: 19 delivered, the poison one dead-lettered with 10004."""
    cluster = make_cluster(workers=1, sim_config=SimConfig(latency_ms=5, poison_members=frozenset({"bad"})))
    members = [f"u{i}" for i in range(19)] + ["bad"]
    cluster.producer().enqueue("g", members)
    assert cluster.wait_drained(30)
    status = cluster.status()
    assert status["delivered"] == 19
    assert status["dead"] == 1
    dead = [o for o in outcomes(cluster) if o["outcome"] == "dead"]
    assert [(o["member"], o["code"]) for o in dead] == [("bad", "10004")]


def test_global_error_holds_then_resumes(make_cluster: ClusterFactory) -> None:
    """A global 10007 holds delivery within a handful of calls, dead-letters nothing, and resumes alone."""
    cluster = make_cluster(workers=2, sim_config=SimConfig(latency_ms=10, global_error=10007))
    cluster.producer().bulk({"group_id": f"g{g}", "member": f"u{m}"} for m in range(20) for g in range(50))
    assert cluster.wait_until(lambda s: s["hold"] is not None, 30)
    time.sleep(2)
    held = cluster.status()
    assert held["hold"]["code"] == 10007
    assert held["dead"] == 0
    calls_while_held = cluster.sim_stats()["calls"]
    # The first 10007 holds; calls already past their reservation still land (at most one per delivery thread:
    # 2 workers x IMUNBAN_CONCURRENCY 8), and a probe or two. 12 was seen exceeded (14) on a loaded machine.
    assert calls_while_held <= 2 * 8 + 2
    assert cluster.simulator is not None
    cluster.simulator.configure(global_error=None)
    assert cluster.wait_drained(60)
    final = cluster.status()
    assert final["hold"] is None
    assert final["delivered"] == 1_000
    assert final["dead"] == 0


def test_scheduled_on_time_cancel_and_reschedule(make_cluster: ClusterFactory) -> None:
    """Scheduled requests are never early and land within 1 s; cancel and reschedule work."""
    cluster = make_cluster(workers=1)
    producer = cluster.producer()
    now = time.time()
    for i in range(30):
        producer.enqueue(f"g{i % 3}", [f"u{i}"], at=now + 2 + i * 0.1)
    producer.enqueue("g0", ["cancelled"], at=now + 2)
    producer.cancel("g0", ["cancelled"])
    producer.enqueue("g1", ["moved"], at=now + 60)
    producer.enqueue("g1", ["moved"], at=now + 3)  # latest instruction wins
    assert cluster.wait_drained(30)
    ended = outcomes(cluster)
    assert {o["member"] for o in ended} == {f"u{i}" for i in range(30)} | {"moved"}
    for o in ended:
        lateness_ms = int(o["at_ms"]) - int(o["due_ms"])
        assert 0 <= lateness_ms < 1_000, o
    assert cluster.sim_stats()["members_unbanned"] == 31


def test_redis_restart_loses_nothing(make_cluster: ClusterFactory) -> None:
    """Redis restarted mid-run (AOF on): nothing lost, everything delivered."""
    cluster = make_cluster(workers=2, sim_config=SimConfig(latency_ms=50))
    producer = cluster.producer()
    producer.bulk({"group_id": f"g{g}", "member": f"u{m}"} for m in range(60) for g in range(50))
    producer.bulk({"group_id": f"s{g}", "member": f"u{m}", "at": time.time() + 4} for m in range(20) for g in range(20))
    assert cluster.wait_until(lambda s: s["delivered"] > 300, 60)
    cluster.restart_redis()
    assert cluster.wait_drained(120)
    assert cluster.sim_stats()["distinct_unbanned"] == 3_400
    assert cluster.status()["dead"] == 0


def test_high_priority_ahead_of_backlog(make_cluster: ClusterFactory) -> None:
    """50 high requests enqueued behind 20,000 due expiries overtake them: at least half of the backlog still
    pending when they arrive is delivered after the last of them; the backlog drains.

    Decided by the order of the outcome stream, not by a time limit (the machine may be slow; the order holds).
    """
    cluster = make_cluster(workers=2)
    producer = cluster.producer()
    producer.bulk({"group_id": f"raid{g}", "member": f"u{m}"} for m in range(2_000) for g in range(10))
    time.sleep(1.0)
    delivered_before = sum(1 for o in outcomes(cluster) if o["member"].startswith("u"))
    for i in range(50):
        producer.enqueue(f"room{i % 7}" if i % 2 else f"raid{i % 10}", [f"vip{i}"], priority="high")
    assert cluster.wait_drained(60)
    ended = outcomes(cluster)
    vip = [n for n, o in enumerate(ended) if o["member"].startswith("vip")]
    assert len(vip) == 50
    pending_then = 20_000 - delivered_before
    after_last_vip = sum(1 for o in ended[vip[-1] + 1 :] if o["member"].startswith("u"))
    assert after_last_vip >= pending_then // 2, (after_last_vip, pending_then)
    assert cluster.sim_stats()["distinct_unbanned"] == 20_050
