"""A Redis Sentinel deployment on loopback: 1 primary, N replicas, M sentinels (the failover drill's rig).

Every process is a ``redis-server`` (the one :func:`redis_server_binary` finds; ``--sentinel`` makes
it a sentinel) on a free 127.0.0.1 port, AOF on, started and stopped by its own pid. :meth:`kill_primary`
SIGKILLs whichever node is the primary now; :meth:`wait_promotion` waits for the sentinels to agree
on a new one; :meth:`rejoin` brings the killed node back as a replica of the new one.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from imunban.errors import StoreError
from imunban.local.redis_server import RedisServer, free_port, redis_server_binary, wait_or_kill

#: Sentinel timings for the drill: a dead primary is noticed after 1 s; a stuck failover is retried after 5 s.
DOWN_AFTER_MS = 1_000
FAILOVER_TIMEOUT_MS = 5_000


class SentinelServer:
    """One ``redis-server sentinel.conf --sentinel`` process; it rewrites its conf file in ``folder``."""

    def __init__(self, folder: Path, service: str, primary_port: int, quorum: int, **auth: str | None) -> None:
        self.folder = folder
        self.port = free_port()
        self.service = service
        self.primary_port = primary_port
        self.quorum = quorum
        self.password = auth.get("password")
        self.sentinel_password = auth.get("sentinel_password")
        self.process: subprocess.Popen[bytes] | None = None

    def conf(self) -> str:
        s = self.service
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            "daemonize no",
            f'dir "{self.folder}"',
            f'logfile "{self.folder / "sentinel.log"}"',
            f"sentinel monitor {s} 127.0.0.1 {self.primary_port} {self.quorum}",
            f"sentinel down-after-milliseconds {s} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {s} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {s} 1",
        ]
        if self.password:
            lines.append(f"sentinel auth-pass {s} {self.password}")
        if self.sentinel_password:
            # Sentinels also use it to talk to each other.
            lines.append(f"requirepass {self.sentinel_password}")
        return "\n".join(lines) + "\n"

    def start(self) -> SentinelServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "sentinel.conf"
        conf.write_text(self.conf())
        self.process = subprocess.Popen(
            [redis_server_binary(), str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(
            "127.0.0.1", self.port, password=self.sentinel_password, decode_responses=True, socket_timeout=2
        )

    def primary(self) -> tuple[str, int] | None:
        """The primary this sentinel names now, None if it does not answer."""
        try:
            with self.client() as client:
                reply = client.sentinel_get_master_addr_by_name(self.service)
        except redis.exceptions.RedisError:
            return None
        return (str(reply[0]), int(reply[1])) if reply else None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            wait_or_kill(self.process)
            self.process = None


class SentinelRig:
    """1 primary, ``replicas`` replicas and ``sentinels`` sentinels (quorum 2), all on loopback."""

    def __init__(
        self,
        root: Path,
        *,
        service: str = "imunban",
        replicas: int = 2,
        sentinels: int = 3,
        password: str | None = None,
        sentinel_password: str | None = None,
    ) -> None:
        self.root = root
        self.service = service
        self.password = password
        self.sentinel_password = sentinel_password
        self.primary = RedisServer(root / "node0", password=password, extra_args=self._auth_args())
        self.nodes = [self.primary]
        for index in range(1, replicas + 1):
            replica_of = ("--replicaof", "127.0.0.1", str(self.primary.port))
            self.nodes.append(
                RedisServer(root / f"node{index}", password=password, extra_args=replica_of + self._auth_args())
            )
        auth = {"password": password, "sentinel_password": sentinel_password}
        self.sentinels = [
            SentinelServer(root / f"sentinel{i}", service, self.primary.port, min(2, sentinels), **auth)
            for i in range(sentinels)
        ]

    def _auth_args(self) -> tuple[str, ...]:
        # Every node may become a replica of any other, so each knows the password to replicate with.
        return ("--masterauth", self.password) if self.password else ()

    def url(self, *, db: int = 0, password: str | None = None) -> str:
        """``redis+sentinel://`` for this rig (``password`` overrides the primary's, to try a wrong one)."""
        secret = self.password if password is None else password
        auth = f":{secret}@" if secret else ""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{auth}{hosts}/{self.service}/{db}"

    # -- life cycle ----------------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> SentinelRig:
        try:
            for node in self.nodes:
                node.start()
            self._wait(
                lambda: self._online_replicas(self.primary) >= len(self.nodes) - 1, timeout_s, "replicas in sync"
            )
            for sentinel in self.sentinels:
                sentinel.start()
            self._wait(self._sentinels_agree, timeout_s, "sentinels to see every replica and each other")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop sentinels first (so they start no failover), then every node still running."""
        for sentinel in self.sentinels:
            sentinel.stop()
        for node in self.nodes:
            if node.process is not None:
                node.stop()

    def __enter__(self) -> SentinelRig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- failover ------------------------------------------------------------------------------

    def current_primary(self) -> RedisServer:
        """The node the sentinels name as primary now."""
        for sentinel in self.sentinels:
            address = sentinel.primary()
            if address is not None:
                return self._node(address[1])
        raise StoreError("no sentinel answered")

    def kill_primary(self) -> RedisServer:
        """SIGKILL the current primary (a crash: only what reached a replica or the AOF survives)."""
        node = self.current_primary()
        node.kill()
        return node

    def wait_promotion(self, old: RedisServer, timeout_s: float = 30.0) -> RedisServer:
        """Wait until a majority of sentinels name a new primary that answers as one; return it."""

        def promoted() -> bool:
            names = [s.primary() for s in self.sentinels]
            ports = {a[1] for a in names if a is not None and a[1] != old.port}
            if len(ports) != 1 or sum(1 for a in names if a is not None and a[1] in ports) < 2:
                return False
            return self._role(self._node(ports.pop())) == "master"

        self._wait(promoted, timeout_s, "a new primary")
        return self.current_primary()

    def rejoin(self, old: RedisServer, primary: RedisServer) -> None:
        """Start a killed node again, on its port and data, as a replica of ``primary`` (the old primary comes back)."""
        old.extra_args = ("--replicaof", "127.0.0.1", str(primary.port), *self._auth_args())
        old.start(timeout_s=60.0)  # it loads its AOF first: seconds on a loaded machine

    def wait_replicas(self, count: int, timeout_s: float = 30.0) -> None:
        """Wait until the current primary has ``count`` replicas online (WAIT can then be confirmed)."""
        self._wait(lambda: self._online_replicas(self.current_primary()) >= count, timeout_s, f"{count} replica(s)")

    # -- helpers -------------------------------------------------------------------------------

    def _node(self, port: int) -> RedisServer:
        for node in self.nodes:
            if node.port == port:
                return node
        raise StoreError(f"port {port} is not a node of this rig")

    def _info(self, node: RedisServer) -> dict[str, object]:
        try:
            with redis.Redis("127.0.0.1", node.port, password=self.password, socket_timeout=2) as client:
                return dict(client.info("replication"))
        except redis.exceptions.RedisError:
            return {}

    def _role(self, node: RedisServer) -> str | None:
        role = self._info(node).get("role")
        return None if role is None else str(role)

    def _online_replicas(self, node: RedisServer) -> int:
        info = self._info(node)
        return sum(
            1
            for key, value in info.items()
            if key.startswith("slave") and isinstance(value, dict) and value.get("state") == "online"
        )

    def _sentinels_agree(self) -> bool:
        for sentinel in self.sentinels:
            try:
                with sentinel.client() as client:
                    state = client.sentinel_master(self.service)
            except redis.exceptions.RedisError:
                return False
            if int(state.get("num-slaves", 0)) < len(self.nodes) - 1:
                return False
            if int(state.get("num-other-sentinels", 0)) < len(self.sentinels) - 1:
                return False
        return True

    @staticmethod
    def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise StoreError(f"sentinel rig: no {what} within {timeout_s:g}s")
            time.sleep(0.02)
