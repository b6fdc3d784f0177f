"""A local Redis Cluster of N masters on loopback, from the same redis-server binary (tests, bench).

Each node is a :class:`~imunban.local.redis_server.RedisServer` started with ``--cluster-enabled yes``;
the 16384 slots are split in N contiguous ranges (``CLUSTER ADDSLOTS``), the nodes are introduced
(``CLUSTER MEET``) and the rig waits until every node reports ``cluster_state:ok``. With
``replicas=1`` each master gets a replica (``CLUSTER REPLICATE``, as ``redis-cli --cluster create
--cluster-replicas 1`` does) and the cluster fails over by itself: a master SIGKILLed is noticed
after ``node_timeout_ms`` and its replica is elected. The rig serves the slots it still has while a
master is down (``cluster-require-full-coverage no``): one app's failover must not stop the others.
Slots move with :mod:`imunban.local.reshard`. Every node is stopped by its own pid.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
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

    def __init__(
        self,
        root: Path,
        *,
        masters: int = 3,
        replicas: int = 0,
        appendonly: bool = False,
        node_timeout_ms: int = 5000,
    ) -> None:
        """``replicas``: per master (0 or more); ``node_timeout_ms``: how long a silent node takes to be failed."""
        if masters < 1:
            raise ValueError("a cluster needs at least one master")
        if replicas < 0:
            raise ValueError("replicas must be 0 or more")
        self.root = root
        self.n_masters = masters
        self.n_replicas = replicas
        self.nodes = [
            RedisServer(
                root / f"node{i}",
                port=free_cluster_port(),
                appendonly=appendonly,
                extra_args=(
                    *("--cluster-enabled", "yes"),
                    *("--cluster-config-file", str(root / f"node{i}" / "nodes.conf")),
                    *("--cluster-node-timeout", str(node_timeout_ms)),
                    # The slots of the other masters stay served while one master is failing over.
                    *("--cluster-require-full-coverage", "no"),
                    # A replica always stands for election, however long its master was silent.
                    *("--cluster-replica-validity-factor", "0"),
                ),
            )
            for i in range(masters * (1 + replicas))
        ]
        #: Nodes SIGKILLed by :meth:`kill_master` (not counted as known nodes any more).
        self.killed: list[RedisServer] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self, timeout_s: float = 30.0) -> RedisCluster:
        try:
            for node in self.nodes:
                node.start()
            masters = self.nodes[: self.n_masters]
            for node, slots in zip(masters, slot_ranges(self.n_masters), strict=True):
                with node.client() as client:
                    client.execute_command("CLUSTER ADDSLOTS", *slots)
            first = self.nodes[0]
            with first.client() as client:
                for node in self.nodes[1:]:
                    client.execute_command("CLUSTER MEET", "127.0.0.1", node.port)
            self._wait(lambda: all(self._knows_all(node) for node in self.nodes), timeout_s, "every node known")
            for i, replica in enumerate(self.nodes[self.n_masters :]):
                master_id = self.node_id(masters[i % self.n_masters])
                with replica.client() as client:
                    client.execute_command("CLUSTER REPLICATE", master_id)
            self.wait_ok(timeout_s)
            self._wait(self._replicas_synced, timeout_s, "replicas in sync")
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def live(self) -> list[RedisServer]:
        """The nodes not SIGKILLed."""
        return [node for node in self.nodes if node not in self.killed]

    def wait_ok(self, timeout_s: float = 30.0) -> None:
        """Until every live node says ``cluster_state:ok`` and knows every node."""
        self._wait(lambda: all(self._node_ok(node) for node in self.live), timeout_s, "cluster_state:ok")

    def _wait(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if predicate():
                    return
            except redis.exceptions.RedisError:
                pass  # a node restarting or failing over: ask again
            if time.monotonic() > deadline:
                raise StoreError(f"the local Redis Cluster: no {what} within {timeout_s:g}s")
            time.sleep(0.05)

    def _info(self, node: RedisServer) -> dict[str, str]:
        with node.client() as client:
            info = client.execute_command("CLUSTER INFO")
        if isinstance(info, dict):  # redis-py parses the reply
            return {str(k): str(v) for k, v in info.items()}
        text = info.decode() if isinstance(info, bytes) else str(info)
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def _knows_all(self, node: RedisServer) -> bool:
        return self._info(node).get("cluster_known_nodes") == str(len(self.nodes))

    def _node_ok(self, node: RedisServer) -> bool:
        return self._info(node).get("cluster_state") == "ok" and self._knows_all(node)

    def _replicas_synced(self) -> bool:
        for replica in self.nodes[self.n_masters :]:
            with replica.client() as client:
                info = client.info("replication")
            if info.get("role") != "slave" or info.get("master_link_status") != "up":
                return False
        return True

    def node_id(self, node: RedisServer) -> str:
        with node.client() as client:
            reply = client.execute_command("CLUSTER MYID")
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    def slot_of(self, key: str) -> int:
        with self.live[0].client() as client:
            return int(client.execute_command("CLUSTER KEYSLOT", key))

    def master_of_slot(self, slot: int) -> RedisServer:
        """The live node that serves ``slot`` now, as the nodes themselves say (CLUSTER SLOTS of a live node)."""
        with self.live[0].client() as client:
            ranges = client.execute_command("CLUSTER SLOTS")
        ports = {node.port: node for node in self.nodes}
        for item in ranges:
            start, end, master = item[0], item[1], item[2]
            if int(start) <= slot <= int(end):
                return ports[int(master[1])]
        raise StoreError(f"slot {slot} is served by no node")

    def node_of(self, key: str) -> int:
        """Index in :attr:`nodes` of the master that serves ``key`` now."""
        return self.nodes.index(self.master_of_slot(self.slot_of(key)))

    @staticmethod
    def is_master(node: RedisServer) -> bool:
        with node.client() as client:
            return str(client.info("replication").get("role")) == "master"

    def kill_master(self, key: str) -> RedisServer:
        """SIGKILL the master that serves ``key`` (a crash: what its replica had not received is gone)."""
        node = self.master_of_slot(self.slot_of(key))
        node.kill()
        self.killed.append(node)
        return node

    def restart(self, node: RedisServer) -> None:
        """Start a SIGKILLed node again on its port and nodes.conf: it rejoins as a replica of its successor."""
        node.start()
        self.killed.remove(node)

    def wait_promotion(self, key: str, old: RedisServer, timeout_s: float = 30.0) -> RedisServer:
        """Until a live master other than ``old`` serves ``key``'s slot and answers as a master; return it."""
        slot = self.slot_of(key)

        def promoted() -> bool:
            node = self.master_of_slot(slot)
            return node is not old and self.is_master(node)

        self._wait(promoted, timeout_s, f"new master for slot {slot}")
        return self.master_of_slot(slot)

    def stop(self) -> None:
        """Stop every node that was started (each by its own process), also after a failed start."""
        for node in self.live:
            try:
                node.stop()
            except redis.exceptions.RedisError:
                node.kill()

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
