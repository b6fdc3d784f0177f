"""Script calls on a real Redis Cluster with replicas: per-node pipelines, WAIT on the app's node, slot moves.

One cluster (3 masters, one replica each) for the module; each test uses its own key prefix, so its
app's hash tag (and slot) is its own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
from redis.cluster import RedisCluster as ClusterClient

from helpers import req
from imunban.cluster_scripts import run_on_cluster
from imunban.connection import connect
from imunban.errors import DurabilityError
from imunban.keys import Keys
from imunban.local.redis_cluster import RedisCluster
from imunban.local.reshard import move_slot
from imunban.producer import Producer
from imunban.scripts import GroupArgs, register, script_keys
from imunban.settings import DEFAULT_TRACE_TTL_S, Durability, LingerPolicy, Settings
from imunban.store import Store


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    with RedisCluster(tmp_path_factory.mktemp("rc"), masters=3, replicas=1, node_timeout_ms=1000) as cluster:
        yield cluster


@pytest.fixture
def client(rig: RedisCluster) -> Iterator[redis.Redis]:
    client = connect(Settings(), url=rig.url)
    yield client
    client.close()


def items(n: int, groups: int = 20) -> list[dict[str, str]]:
    return [{"group_id": f"g{i % groups}", "member": f"m{i}"} for i in range(n)]


def keys_in_slot(node: Any, slot: int) -> int:
    with node.client() as c:
        return int(c.execute_command("CLUSTER COUNTKEYSINSLOT", slot))


def replica_of(rig: RedisCluster, master: Any) -> Any:
    for node in rig.live:
        with node.client() as c:
            info = c.info("replication")
        if info.get("role") == "slave" and int(info["master_port"]) == master.port:
            return node
    raise AssertionError(f"no replica of :{master.port}")


def test_durable_bulk_is_on_the_replica_of_the_apps_node(rig: RedisCluster, client: redis.Redis) -> None:
    """DURABLE_REPLICAS=1 on a cluster: bulk returns once WAIT on the app's node counted its replica (it has it all)."""
    settings = Settings(key_prefix="durable", durable_replicas=1, durable_timeout_ms=2_000)
    result = Producer.on(client, settings).bulk(items(5_000))
    assert result.stored == 5_000
    slot = rig.slot_of(Keys("durable").stats)
    master = rig.master_of_slot(slot)
    assert keys_in_slot(replica_of(rig, master), slot) == keys_in_slot(master, slot) > 20


def test_wait_for_more_replicas_than_the_node_has_fails(client: redis.Redis) -> None:
    """WAIT runs on the node that took the write: two replicas asked, one there, the intake is a DurabilityError."""
    store = Store(client, Keys("short"), durability=Durability(replicas=2, timeout_ms=50))
    with pytest.raises(DurabilityError, match="only 1 of 2 replica"):
        store.enqueue([req("g", "a")])


def test_scripts_flushed_on_every_node_are_reloaded(rig: RedisCluster, client: redis.Redis) -> None:
    """SCRIPT FLUSH on every master (a promoted replica, a restart): the next bulk reloads them on its node."""
    producer = Producer.on(client, Settings(key_prefix="flushed"))
    assert producer.bulk(items(100)).stored == 100
    for node in rig.live:
        with node.client() as c:
            c.script_flush()
    again = producer.bulk(items(200))
    assert (again.ready, again.replaced) == (200, 100)  # the first 100 were there already


def test_a_call_mid_migration_is_retried_and_applied_whole(rig: RedisCluster, client: redis.Redis) -> None:
    """A script whose slot is half moved gets TRYAGAIN/ASK: it waits, then runs once, on the new owner, wholly."""
    keys = Keys("moving")
    Producer.on(client, Settings(key_prefix="moving")).bulk(items(400, groups=40))  # ~80 keys in the slot
    slot = rig.slot_of(keys.stats)
    source = rig.master_of_slot(slot)
    target = next(n for n in rig.live[: rig.n_masters] if n is not source)
    enqueue = register(client, "enqueue")
    packed = GroupArgs()
    packed.add("new-group", [f"n{i}" for i in range(50)], "", "0", "")
    args = [LingerPolicy(0).script_arg, "1", DEFAULT_TRACE_TTL_S * 1000, *packed.argv()]
    call = (enqueue, script_keys(keys, "enqueue", packed.groups), args)
    waits: list[float] = []
    waited = threading.Event()
    replies: list[Any] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        waited.set()
        threading.Event().wait(seconds)

    caller = threading.Thread(
        target=lambda: replies.extend(
            run_on_cluster(cast(ClusterClient, client), [call], operation="enqueue", sleep=sleep)
        )
    )

    def half_moved(batch: int) -> None:
        if batch == 1:  # some keys on each side: the call cannot run anywhere yet
            caller.start()
            assert waited.wait(10), "the call never waited for the migration"

    move = move_slot(rig, slot, target, batch=10, between_batches=half_moved)
    caller.join(30)
    assert move.batches > 1 and waits
    assert [int(n) for n in replies[0]] == [50, 0, 0, 0]  # ready, scheduled, replaced, stale: applied once
    with target.client() as c:
        assert c.zcard(keys.ready("new-group")) == 50
    assert keys_in_slot(source, slot) == 0
    # The moved app goes on: the client follows MOVED to the new owner.
    after = Producer.on(client, Settings(key_prefix="moving")).bulk(items(500, groups=40))
    assert (after.ready, after.replaced) == (500, 400)
