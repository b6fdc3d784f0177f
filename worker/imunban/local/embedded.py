"""The embedded default: one local redis-server managed by imunban when IMUNBAN_REDIS_URL is unset.

Every command on this machine shares it. Its data lives in a per-user data directory with AOF on;
it binds 127.0.0.1 only; ``imunban redis stop`` shuts it down.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from imunban.errors import StoreError
from imunban.local.redis_server import RedisServer
from imunban.settings import Settings

PORT_FILE = "redis.port"


def data_dir(configured: str | None = None) -> Path:
    """``IMUNBAN_DATA_DIR``, else ``$XDG_DATA_HOME/imunban``, else ``~/.local/share/imunban``."""
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "imunban"


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    # Two commands starting at once must not start two servers.
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "embedded.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _running_url(folder: Path) -> str | None:
    try:
        port = int((folder / PORT_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    url = f"redis://127.0.0.1:{port}/0"
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
            client.ping()
    except redis.exceptions.RedisError:
        return None
    return url


def ensure_running(configured_dir: str | None = None) -> str:
    """Return the URL of the embedded server, starting it first if it is not running."""
    folder = data_dir(configured_dir) / "redis"
    with _locked(folder):
        url = _running_url(folder)
        if url is not None:
            return url
        server = RedisServer(folder, appendonly=True, daemonize=True)
        server.start()
        (folder / PORT_FILE).write_text(str(server.port))
        return server.url


def status(configured_dir: str | None = None) -> tuple[Path, str | None]:
    """(data directory, URL if running)."""
    folder = data_dir(configured_dir) / "redis"
    return folder, _running_url(folder)


def stop(configured_dir: str | None = None) -> bool:
    """Shut the embedded server down (AOF flushed); False if it was not running."""
    folder = data_dir(configured_dir) / "redis"
    with _locked(folder):
        url = _running_url(folder)
        if url is None:
            return False
        try:
            with redis.Redis.from_url(url) as client:
                client.shutdown()
        except redis.exceptions.ConnectionError:
            pass  # the server closes the connection as it exits
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"could not stop the embedded redis-server: {exc}") from exc
        (folder / PORT_FILE).unlink(missing_ok=True)
        return True


def resolve_settings(settings: Settings) -> Settings:
    """``settings`` with ``redis_url`` filled in: as configured, else the embedded server's (started on demand)."""
    if settings.redis_url is not None:
        return settings
    return dataclasses.replace(settings, redis_url=ensure_running(settings.data_dir))
