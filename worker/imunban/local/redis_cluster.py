"""A local Redis Cluster of N masters on loopback, from the same redis-server binary (tests, bench).

Each node is a :class:`~imunban.local.redis_server.RedisServer` started with ``--cluster-enabled yes``;
the 16384 slots are split in N contiguous ranges (``CLUSTER ADDSLOTS``), the nodes are introduced
(``CLUSTER MEET``) and the rig waits until every node reports ``cluster_state:ok``. No replicas: it
exercises routing and one-slot scripts, not cluster failover. Every node is stopped by its own pid.
"""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

import redis

from imunban.errors import StoreError
from imunban.local.redis_server import RedisServer

#: Hash slots of every Redis Cluster.
SLOTS = 16384
#: A node's cluster bus listens on its port + this; the port must leave room for it.
BUS_OFFSET = 10_000


def free_cluster_port() -> int:
    """A loopback port whose bus port (+10000) is free too; both below 65536 (Redis requires port <= 55535)."""
    for _ in range(200):
        port = random.randint(20_000, 55_535 - 1)
        if all(_is_free(p) for p in (port, port + BUS_OFFSET)):
            return port
    raise StoreError("no free pair of loopback ports (port, port + 10000) for a Redis Cluster node")


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def slot_ranges(masters: int) -> list[range]:
    """The slots of each master: ``masters`` contiguous ranges covering 0..16383."""
    bounds = [SLOTS * i // masters for i in range(masters + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(masters)]


class RedisCluster:
    """Start with :meth:`start` (or ``with``); ``url`` is the ``redis+cluster://`` URL of every node."""

    def __init__(self, root: Path, *, masters: int = 3, appendonly: bool = False) -> None:
        if masters < 1:
            raise ValueError("a cluster needs at least one master")
        self.root = root
        self.nodes = [
            RedisServer(
                root / f"node{i}",
                port=free_cluster_port(),
                appendonly=appendonly,
                extra_args=(
                    *("--cluster-enabled", "yes"),
                    *("--cluster-config-file", str(root / f"node{i}" / "nodes.conf")),
                    *("--cluster-node-timeout", "5000"),
                ),
            )
            for i in range(masters)
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self, timeout_s: float = 30.0) -> RedisCluster:
        try:
            for node in self.nodes:
                node.start()
            for node, slots in zip(self.nodes, slot_ranges(len(self.nodes)), strict=True):
                with node.client() as client:
                    client.execute_command("CLUSTER ADDSLOTS", *slots)
            first = self.nodes[0]
            with first.client() as client:
                for node in self.nodes[1:]:
                    client.execute_command("CLUSTER MEET", "127.0.0.1", node.port)
            self.wait_ok(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ok(self, timeout_s: float = 30.0) -> None:
        """Until every node says ``cluster_state:ok`` and knows every other node."""
        deadline = time.monotonic() + timeout_s
        while True:
            if all(self._node_ok(node) for node in self.nodes):
                return
            if time.monotonic() > deadline:
                raise StoreError(f"the local Redis Cluster did not reach cluster_state:ok within {timeout_s:g}s")
            time.sleep(0.05)

    def _node_ok(self, node: RedisServer) -> bool:
        with node.client() as client:
            info = client.execute_command("CLUSTER INFO")
        if isinstance(info, dict):  # redis-py parses the reply
            fields = {str(k): str(v) for k, v in info.items()}
        else:
            text = info.decode() if isinstance(info, bytes) else str(info)
            fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
        return fields.get("cluster_state") == "ok" and fields.get("cluster_known_nodes") == str(len(self.nodes))

    def node_of(self, key: str) -> int:
        """Index of the master that holds ``key`` (by CLUSTER KEYSLOT and the slot ranges)."""
        with self.nodes[0].client() as client:
            slot = int(client.execute_command("CLUSTER KEYSLOT", key))
        return next(i for i, slots in enumerate(slot_ranges(len(self.nodes))) if slot in slots)

    def stop(self) -> None:
        """Stop every node that was started (each by its own process), also after a failed start."""
        for node in self.nodes:
            try:
                node.stop()
            except redis.exceptions.RedisError:
                node.kill()

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
