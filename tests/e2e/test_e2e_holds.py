"""End to end, holds and probes: worker processes, a real redis-server and the simulator over loopback.

Probe backoff is scaled down (IMUNBAN_PROBE_BASE_MS / IMUNBAN_PROBE_CAP_MS) so that seconds here stand
for the minutes between probes in production.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imunban.local.cluster import LocalCluster
from imunban.sim.core import SimConfig

ClusterFactory = Callable[..., LocalCluster]

#: Probes every 0.1 s at first, then at most every 0.4 s (instead of 1 s .. 60 s).
FAST_PROBES = {"IMUNBAN_PROBE_BASE_MS": "100", "IMUNBAN_PROBE_CAP_MS": "400"}


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[ClusterFactory]:
    """Build and start clusters; every one is stopped at teardown, even on failure."""
    started: list[LocalCluster] = []

    def make(**kwargs: Any) -> LocalCluster:
        cluster = LocalCluster(tmp_path / f"cluster{len(started)}", **kwargs)
        started.append(cluster)
        return cluster.start()

    yield make
    for cluster in started:
        cluster.stop()


@pytest.mark.timeout(90)
def test_hold_lifts_while_the_oldest_group_answers_unknown(make_cluster: ClusterFactory) -> None:
    """Hold on 60010, fixed while the oldest group answers an unknown code forever: it lifts, the rest delivered."""
    sim = SimConfig(latency_ms=5, global_error=60010, group_errors={"g0": 99_999})
    # A long retry backoff keeps g0 out of the way once retried: the probes must find the other groups.
    env = {**FAST_PROBES, "IMUNBAN_BACKOFF_BASE_MS": "20000", "IMUNBAN_BACKOFF_CAP_MS": "20000"}
    cluster = make_cluster(workers=2, concurrency=4, sim_config=sim, env=env)
    producer = cluster.producer()
    producer.enqueue("g0", [f"u{i}" for i in range(5)])  # the oldest group
    time.sleep(0.3)
    producer.bulk({"group_id": f"g{g}", "member": f"u{m}"} for g in range(1, 10) for m in range(10))
    assert cluster.wait_until(lambda s: s["hold"] is not None, 20)
    assert cluster.status()["hold"]["code"] == 60010
    assert cluster.simulator is not None
    cluster.simulator.configure(global_error=None)  # the configuration is fixed
    assert cluster.wait_until(lambda s: s["hold"] is None and s["delivered"] == 90, 30)
    assert all(cluster.simulator.unbanned(f"g{g}") == {f"u{m}" for m in range(10)} for g in range(1, 10))
    assert cluster.simulator.unbanned("g0") == frozenset()
    assert cluster.status()["dead"] == 0  # g0 is retried as usual, far from its last attempt


@pytest.mark.timeout(90)
def test_10007_with_two_groups_holds_until_the_switch_is_on(make_cluster: ClusterFactory) -> None:
    """10007 on every call, two groups, 30 probes (half an hour at 60 s apart): held, none dead; then all delivered."""
    # Two attempts and short retry backoff: a 10007 wrongly taken per group would dead-letter within a second.
    env = {**FAST_PROBES, "IMUNBAN_MAX_ATTEMPTS": "2", "IMUNBAN_BACKOFF_BASE_MS": "50", "IMUNBAN_BACKOFF_CAP_MS": "200"}
    cluster = make_cluster(workers=2, concurrency=4, sim_config=SimConfig(latency_ms=5, global_error=10007), env=env)
    cluster.producer().bulk({"group_id": f"g{g}", "member": f"u{m}"} for g in range(2) for m in range(20))
    assert cluster.wait_until(lambda s: s["hold"] is not None, 20)
    assert cluster.wait_until(lambda s: s["hold"]["probes"] >= 30, 30)
    held = cluster.status()
    assert held["hold"]["code"] == 10007
    assert held["dead"] == 0
    assert cluster.simulator is not None
    cluster.simulator.configure(global_error=None)  # the switch is turned on
    assert cluster.wait_drained(20)
    final = cluster.status()
    assert (final["delivered"], final["dead"], final["hold"]) == (40, 0, None)
