"""End to end, several apps: worker processes serve two apps from one apps file, on one multi-app simulator.

Each app has its own SDKAppID, key and admin: the simulator of an app accepts only calls signed with
that app's key, so a request delivered to the wrong app, or signed with the wrong key, never counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imunban.keys import Keys
from imunban.local.cluster import LocalCluster
from imunban.local.redis_cluster import RedisCluster
from imunban.local.redis_server import RedisServer
from imunban.pause import Actor
from imunban.sim.core import SimConfig
from imunban.trace import member_search, trace
from imunban_celery.app import create_celery
from imunban_celery.names import CANCEL_TASK, UNBAN_TASK

ClusterFactory = Callable[..., LocalCluster]
FAST_PROBES = {"IMUNBAN_PROBE_BASE_MS": "100", "IMUNBAN_PROBE_CAP_MS": "400"}
#: Two apps whose hash tags land on different masters of a 3-master cluster (tests/unit/test_cluster_slots.py).
APPS = {"alpha": 190.0, "beta": 190.0}


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[ClusterFactory]:
    """Build and start deployments; every one is stopped at teardown, even on failure."""
    started: list[LocalCluster] = []

    def make(**kwargs: Any) -> LocalCluster:
        cluster = LocalCluster(tmp_path / f"cluster{len(started)}", apps=APPS, **kwargs)
        started.append(cluster)
        return cluster.start()

    yield make
    for cluster in started:
        cluster.stop()


def members(app: str, group: int, count: int) -> list[str]:
    return [f"{app}_{group}_{m}" for m in range(count)]


def assert_each_app_got_its_own(cluster: LocalCluster, groups: int, per_group: int) -> None:
    """Every member reached its app's simulator and nothing reached the other app; no unknown SDKAppID."""
    for app in APPS:
        other = next(name for name in APPS if name != app)
        for g in range(groups):
            assert cluster.sim_of(app).unbanned(f"{app}-g{g}") == set(members(app, g, per_group))
            assert cluster.sim_of(other).unbanned(f"{app}-g{g}") == frozenset()
    assert cluster.multi is not None and cluster.multi.snapshot()["unknown_app_calls"] == 0


def deliver_to_both_apps(cluster: LocalCluster, per_group: int) -> None:
    """Enqueue 3 groups per app through the Python API and a fourth through Celery; wait until each app got its own."""
    producer = cluster.producer()
    for app in APPS:
        producer.bulk({"group_id": f"{app}-g{g}", "members": members(app, g, per_group), "app": app} for g in range(3))
    celery = create_celery(cluster.settings())
    for app in APPS:
        celery.send_task(
            UNBAN_TASK, kwargs={"group_id": f"{app}-g3", "members": members(app, 3, per_group), "app": app}
        )
    assert cluster.wait_until(lambda s: s["delivered"] == 2 * 4 * per_group, 60), cluster.status()
    assert_each_app_got_its_own(cluster, groups=4, per_group=per_group)


@pytest.mark.timeout(120)
def test_two_apps_each_delivered_to_their_own_app(make_cluster: ClusterFactory) -> None:
    """Requests of two apps (Python API and Celery) all reach the right app with the right signature."""
    cluster = make_cluster(workers=2, concurrency=4, sim_config=SimConfig(latency_ms=5))
    deliver_to_both_apps(cluster, per_group=30)
    final = cluster.status()
    assert {name: s["delivered"] for name, s in final["apps"].items()} == {"alpha": 120, "beta": 120}
    assert final["dead"] == 0 and final["hold"] is None


@pytest.mark.timeout(90)
def test_an_unknown_or_missing_app_is_refused_at_intake(make_cluster: ClusterFactory) -> None:
    """With two apps, a Celery message naming no app or an unknown one is rejected and counted, never stored."""
    cluster = make_cluster(workers=1, concurrency=2, sim_config=SimConfig(latency_ms=5))
    celery = create_celery(cluster.settings())
    celery.send_task(UNBAN_TASK, kwargs={"group_id": "g", "members": ["a"], "app": "gamma"})
    celery.send_task(UNBAN_TASK, kwargs={"group_id": "g", "members": ["b"]})
    celery.send_task(CANCEL_TASK, kwargs={"group_id": "g", "members": ["c"], "app": "gamma"})
    celery.send_task(UNBAN_TASK, kwargs={"group_id": "ok", "members": ["d"], "app": "beta"})  # a good one after
    assert cluster.wait_until(lambda s: s["apps"]["beta"]["delivered"] == 1, 30)
    assert cluster.wait_until(lambda s: s["counters"]["rejected_messages"] == 3, 10), cluster.status()
    assert list(cluster.client.scan_iter(match="{" + Keys("imunban", "gamma").tag + "}*")) == []
    assert cluster.status()["queued"] == 0 and cluster.sim_of("alpha").snapshot()["calls"] == 0
    with pytest.raises(ValueError, match="unknown app 'gamma'"):
        cluster.producer().enqueue("g", ["x"], app="gamma")
    with pytest.raises(ValueError, match="app: is required"):
        cluster.producer().enqueue("g", ["x"])


@pytest.mark.timeout(120)
def test_a_hold_on_one_app_does_not_stop_the_other(make_cluster: ClusterFactory) -> None:
    """alpha answers a configuration error (held, nothing dead); beta delivers all the while; alpha resumes after."""
    cluster = make_cluster(
        workers=2,
        concurrency=4,
        sim_config=SimConfig(latency_ms=5),
        app_sim_configs={"alpha": SimConfig(latency_ms=5, global_error=60006)},
        env=FAST_PROBES,
    )
    producer = cluster.producer()
    producer.bulk({"group_id": f"alpha-g{g}", "members": members("alpha", g, 20), "app": "alpha"} for g in range(3))
    assert cluster.wait_until(lambda s: s["apps"]["alpha"]["hold"] is not None, 20)
    producer.bulk({"group_id": f"beta-g{g}", "members": members("beta", g, 20), "app": "beta"} for g in range(3))
    assert cluster.wait_until(lambda s: s["apps"]["beta"]["delivered"] == 60, 30), cluster.status()
    held = cluster.status()["apps"]["alpha"]
    assert held["hold"]["code"] == 60006 and held["delivered"] == 0 and held["dead"] == 0
    assert cluster.status()["apps"]["beta"]["hold"] is None
    cluster.sim_of("alpha").configure(global_error=None)  # alpha's configuration is fixed
    assert cluster.wait_until(lambda s: s["delivered"] == 120 and s["hold"] is None, 30), cluster.status()
    assert_each_app_got_its_own(cluster, groups=3, per_group=20)


@pytest.mark.timeout(120)
def test_a_pause_of_one_app_leaves_the_other_delivering_through_its_own_queue(make_cluster: ClusterFactory) -> None:
    """alpha paused with a backlog takes no thread and no call; beta's Celery messages (routed to imunban.app.beta by
    the app kwarg) and Python requests are all delivered in full batches; alpha drains after resume."""
    cluster = make_cluster(workers=1, concurrency=2, sim_config=SimConfig(latency_ms=5))
    producer = cluster.producer()
    producer.bulk({"group_id": f"alpha-g{g}", "members": members("alpha", g, 100), "app": "alpha"} for g in range(20))
    cluster.deployment.app("alpha").pause.pause("maintenance", Actor("cli", "cli", "test"))
    celery = create_celery(cluster.settings())
    for g in range(3):
        celery.send_task(
            UNBAN_TASK, kwargs={"group_id": f"beta-g{g}", "members": members("beta", g, 40), "app": "beta"}
        )
    producer.bulk({"group_id": "beta-g3", "members": members("beta", 3, 40), "app": "beta"} for _ in range(1))
    assert cluster.wait_until(lambda s: s["apps"]["beta"]["delivered"] == 160, 30), cluster.status()
    assert cluster.sim_of("alpha").snapshot()["calls"] == 0
    assert cluster.sim_of("beta").snapshot()["calls_ok"] == 8  # full batches of 20
    assert cluster.status()["apps"]["alpha"]["queued"] == 2_000
    cluster.deployment.app("alpha").pause.resume(Actor("cli", "cli", "test"))
    assert cluster.wait_until(lambda s: s["apps"]["alpha"]["delivered"] == 2_000, 60), cluster.status()


@pytest.mark.timeout(180)
def test_two_apps_on_a_redis_cluster(tmp_path: Path, make_cluster: ClusterFactory) -> None:
    """State on a 3-master Redis Cluster (each app on its own master), the broker on a plain Redis: all delivered."""
    broker_server = RedisServer(tmp_path / "broker", appendonly=False)
    with RedisCluster(tmp_path / "rc", masters=3) as state, broker_server as broker:
        assert state.node_of(Keys("imunban", "alpha").stats) != state.node_of(Keys("imunban", "beta").stats)
        cluster = make_cluster(
            workers=2,
            concurrency=4,
            sim_config=SimConfig(latency_ms=5),
            redis_url=state.url,
            env={"IMUNBAN_BROKER_URL": broker.url},
        )
        deliver_to_both_apps(cluster, per_group=25)
        final = cluster.status()
        assert (final["queued"], final["scheduled"], final["in_flight"], final["dead"]) == (0, 0, 0, 0)
        # The trace records (a member's shard, built by the scripts from the app's tagged prefix) are in its slot.
        for app in APPS:
            keys = Keys("imunban", app)
            assert trace(cluster.client, keys, f"{app}-g1", f"{app}_1_7")["state"] == "delivered"
            assert member_search(cluster.client, keys, f"{app}_3_0")["found"] == 1
        time.sleep(0.2)
        cluster.stop()
