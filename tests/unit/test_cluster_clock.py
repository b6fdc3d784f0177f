"""On a Redis Cluster every due-time decision reads the clock of the node that owns the app's slot."""

from __future__ import annotations

from typing import Any

from redis.cluster import RedisCluster

from imunban.connection import server_time_ms
from imunban.keys import Keys


class TwoClocks(RedisCluster):  # type: ignore[misc]
    """A cluster client (no connection) whose nodes' clocks differ by a minute: the app's node is ahead."""

    def __init__(self, app_key: str) -> None:  # no super().__init__: nothing is dialled
        self.app_node = object()
        self.app_key = app_key
        self.asked: list[object] = []

    def get_node_from_key(self, key: str, replica: bool = False) -> Any:
        return self.app_node if key == self.app_key else object()

    def time(self, target_nodes: Any = None) -> tuple[int, int]:
        self.asked.append(target_nodes)
        return (1_800_000_060, 0) if target_nodes is self.app_node else (1_800_000_000, 500_000)


def test_the_apps_node_clock_is_read() -> None:
    """server_time_ms(client, key) asks the node of ``key``'s slot, not the default node."""
    keys = Keys("p", "cn")
    client = TwoClocks(keys.stats)
    assert server_time_ms(client, keys.stats) == 1_800_000_060_000
    assert client.asked == [client.app_node]


def test_without_a_key_the_default_node_answers() -> None:
    """Without a key (a plain client's case) the client's own TIME is used."""
    client = TwoClocks("x")
    assert server_time_ms(client) == 1_800_000_000_500
    assert client.asked == [None]
