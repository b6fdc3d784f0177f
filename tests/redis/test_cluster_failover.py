"""A command in flight when a cluster master dies waits for the promoted replica instead of failing."""

from __future__ import annotations

from pathlib import Path

from imunban.connection import connect, server_time_ms
from imunban.keys import Keys
from imunban.local.redis_cluster import RedisCluster
from imunban.producer import Producer
from imunban.settings import Settings


def test_commands_and_scripts_ride_out_a_master_killed(tmp_path: Path) -> None:
    """SIGKILL the app's master: the next command, the clock and a bulk reach its promoted replica, nothing raised."""
    with RedisCluster(tmp_path / "rc", masters=3, replicas=1, node_timeout_ms=500) as rig:
        client = connect(Settings(), url=rig.url)
        keys = Keys("ride")
        durable = Producer.on(client, Settings(key_prefix="ride", durable_replicas=1))
        assert durable.bulk({"group_id": "g", "member": f"m{i}"} for i in range(100)).stored == 100
        old = rig.kill_master(keys.stats)
        # redis-py alone spent its retries within milliseconds of the kill (a ConnectionError here).
        assert client.zcard(keys.ready("g")) == 100  # what WAIT confirmed is on the promoted replica
        assert server_time_ms(client, keys.stats) > 0
        # Not durable: the promoted replica has no replica of its own until the old master rejoins.
        producer = Producer.on(client, Settings(key_prefix="ride"))
        assert producer.bulk({"group_id": "g", "member": f"n{i}"} for i in range(100)).ready == 100
        assert rig.master_of_slot(rig.slot_of(keys.stats)) is not old
        client.close()
