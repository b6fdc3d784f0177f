"""A whole deployment on one machine: Redis, the API simulator and worker processes.

The demo, the benchmark and the end-to-end tests all run on this, so what they exercise is the
real thing: ``imunban worker`` processes talking to a real redis-server and to the simulator
over loopback HTTP. Everything it starts, it stops (also on errors and Ctrl-C).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import redis

from imunban.apps import AppConfig, Apps
from imunban.connection import connect
from imunban.deployment import Deployment, open_deployment
from imunban.local.redis_server import RedisServer
from imunban.producer import Producer
from imunban.settings import Secret, Settings
from imunban.sim.core import SimConfig, Simulator
from imunban.sim.multi import MultiSimulator
from imunban.sim.server import SimulatorServer
from imunban.stats import status_of_apps

DEMO_SDKAPPID = 1400000000


class LocalCluster:
    """Start with :meth:`start` (or ``with``); stop with :meth:`stop`."""

    def __init__(
        self,
        root: Path,
        *,
        workers: int = 2,
        concurrency: int = 8,
        sim_config: SimConfig | None = None,
        env: Mapping[str, str] | None = None,
        redis_url: str | None = None,
        appendonly: bool = True,
        apps: Mapping[str, float] | None = None,
        app_sim_configs: Mapping[str, SimConfig] | None = None,
        worker_env: Callable[[int], Mapping[str, str]] | None = None,
    ) -> None:
        """``apps``: app name -> rate limit, served from an apps file and one multi-app simulator
        (each app its own SDKAppID, key and admin; ``app_sim_configs`` its own faults).
        ``worker_env``: variables of worker ``index`` only, called as it starts (the failover drill's API taps)."""
        self.root = root
        self.n_workers = workers
        self.concurrency = concurrency
        self.sim_config = sim_config or SimConfig()
        self.extra_env = dict(env or {})
        self.worker_env = worker_env
        self.external_redis_url = redis_url
        self.redis_server: RedisServer | None = None
        if redis_url is None:
            self.redis_server = RedisServer(root / "redis", appendonly=appendonly)
        self.secret = secrets.token_hex(32)  # a throwaway key shared by the workers and the simulator
        self.simulator: Simulator | None = None
        #: With ``apps``: the apps, and the simulator serving them all (``simulator`` is the first app's).
        self.apps: Apps | None = None
        self.multi: MultiSimulator | None = None
        if apps:
            self.apps = Apps(
                [
                    AppConfig(
                        name,
                        DEMO_SDKAPPID + 1 + i,
                        f"admin_{name}",
                        Secret(secrets.token_hex(32)),
                        base_url="http://127.0.0.1:1",
                        rate_limit_per_s=float(limit),
                    )
                    for i, (name, limit) in enumerate(apps.items())
                ]
            )
        self.app_sim_configs = dict(app_sim_configs or {})
        self.sim_server: SimulatorServer | None = None
        self.workers: list[subprocess.Popen[bytes] | None] = []
        self._client: redis.Redis | None = None
        self._deployment: Deployment | None = None

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> LocalCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            if self.redis_server is not None:
                self.redis_server.start()
            if self.apps is None:
                self.simulator = Simulator(self.settings(base_url="http://127.0.0.1:1").single_app, self.sim_config)
                self.sim_server = SimulatorServer(self.simulator).start()
            else:
                self.multi = MultiSimulator.for_apps(self.apps, self.sim_config, self.app_sim_configs)
                self.simulator = next(iter(self.multi.simulators.values()))
                self.sim_server = SimulatorServer(self.multi).start()
                self._write_apps_file()
            for index in range(self.n_workers):
                self.workers.append(None)
                self.start_worker(index)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop workers (TERM, then KILL after 10 s), the simulator, then Redis."""
        for proc in self.workers:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.workers:
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.workers = [None] * len(self.workers)
        if self._client is not None:
            self._client.close()
            self._client = None
            self._deployment = None
        if self.sim_server is not None:
            self.sim_server.stop()
            self.sim_server = None
        if self.redis_server is not None:
            self.redis_server.stop()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- configuration -------------------------------------------------------------------------

    @property
    def redis_url(self) -> str:
        if self.external_redis_url is not None:
            return self.external_redis_url
        assert self.redis_server is not None
        return self.redis_server.url

    @property
    def api_url(self) -> str:
        assert self.sim_server is not None
        return self.sim_server.url

    def env(self, base_url: str | None = None) -> dict[str, str]:
        """IMUNBAN_* variables a process of this cluster runs with."""
        env = {
            "IMUNBAN_REDIS_URL": self.redis_url,
            "IMUNBAN_SDKAPPID": str(DEMO_SDKAPPID),
            "IMUNBAN_IDENTIFIER": "administrator",
            "IMUNBAN_SECRET_KEY": self.secret,
            "IMUNBAN_BASE_URL": base_url or self.api_url,
            "IMUNBAN_CONCURRENCY": str(self.concurrency),
        }
        if self.apps is not None:
            for name in ("SDKAPPID", "IDENTIFIER", "SECRET_KEY", "BASE_URL"):
                del env[f"IMUNBAN_{name}"]
            env["IMUNBAN_APPS_FILE"] = str(self.apps_file)
        env.update(self.extra_env)
        return env

    @property
    def apps_file(self) -> Path:
        return self.root / "apps.toml"

    def _write_apps_file(self) -> None:
        """The apps as TOML, pointing at the simulator, keys in files beside it (never on a command line)."""
        assert self.apps is not None
        lines: list[str] = []
        for app in self.apps:
            assert app.secret_key is not None
            key_file = self.root / f"{app.name}.key"
            key_file.write_text(app.secret_key.reveal(), encoding="utf-8")
            key_file.chmod(0o600)
            lines += [
                f"[apps.{app.name}]",
                f"sdkappid = {app.sdkappid}",
                f'identifier = "{app.identifier}"',
                f'base_url = "{self.api_url}"',
                f'secret_key_file = "{key_file.name}"',
                f"rate_limit = {app.rate_limit_per_s}",
                "",
            ]
        self.apps_file.write_text("\n".join(lines), encoding="utf-8")

    def sim_of(self, app: str) -> Simulator:
        """The simulator of one app (a cluster with ``apps``)."""
        assert self.multi is not None
        return self.multi[app]

    def settings(self, base_url: str | None = None) -> Settings:
        return Settings.from_env(self.env(base_url))

    # -- workers -------------------------------------------------------------------------------

    def start_worker(self, index: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMUNBAN_")}
        env.update(self.env())
        if self.worker_env is not None:
            env.update(self.worker_env(index))
        log = open(self.root / f"worker-{index}.log", "ab")  # noqa: SIM115  (owned by the child)
        self.workers[index] = subprocess.Popen(
            [sys.executable, "-m", "imunban", "worker", "--name", f"w{index}-{os.getpid()}@localhost"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop them in order
        )
        log.close()

    def kill_worker(self, index: int) -> None:
        """SIGKILL one worker: a crash mid-batch, leases left behind."""
        proc = self.workers[index]
        if proc is not None:
            proc.kill()
            proc.wait()
            self.workers[index] = None

    def stop_worker(self, index: int, timeout_s: float = 30.0) -> int | None:
        """TERM one worker (Celery's warm shutdown: running tasks finish, prefetched messages go back).

        Returns its exit status, or None if it had to be SIGKILLed after ``timeout_s``.
        """
        proc = self.workers[index]
        if proc is None:
            return None
        proc.send_signal(signal.SIGTERM)
        try:
            status: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            status = None
        self.workers[index] = None
        return status

    def exited(self) -> dict[int, int]:
        """Workers that ended by themselves (nobody stopped or killed them): index -> exit status."""
        return {
            i: proc.returncode for i, proc in enumerate(self.workers) if proc is not None and proc.poll() is not None
        }

    def restart_redis(self, down_s: float = 0.5) -> None:
        """Shut Redis down (AOF flushed), wait, start it again on the same port and data."""
        assert self.redis_server is not None, "an external Redis is not ours to restart"
        self.redis_server.stop()
        time.sleep(down_s)
        self.redis_server.start()

    # -- observation ---------------------------------------------------------------------------

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = connect(self.settings(), url=self.redis_url)
        return self._client

    @property
    def deployment(self) -> Deployment:
        """The cluster's deployment, as a producer or the console sees it (no delivery in this process)."""
        if self._deployment is None:
            self._deployment = open_deployment(self.settings(), client=self.client, apps=self.apps)
        return self._deployment

    def producer(self) -> Producer:
        return Producer(self.deployment)

    def status(self) -> dict[str, Any]:
        """Status of the store: the totals (with the deployment's counters), each app's under ``apps``."""
        return status_of_apps(self.client, [app.keys for app in self.deployment])

    def sim_stats(self) -> dict[str, Any]:
        assert self.simulator is not None
        return self.simulator.snapshot()

    def wait_until(self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float, poll_s: float = 0.1) -> bool:
        """Poll status until ``predicate(status)`` holds; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.status()):
                return True
            time.sleep(poll_s)
        return False

    def wait_drained(self, timeout_s: float) -> bool:
        """True once nothing is queued, scheduled or in flight."""
        return self.wait_until(lambda s: s["queued"] == 0 and s["scheduled"] == 0 and s["in_flight"] == 0, timeout_s)
