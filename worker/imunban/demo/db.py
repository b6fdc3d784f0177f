"""The demo's own logical database on the chosen Redis server, so it never touches a real deployment.

The store has a key prefix, but the Celery queues (``imunban``, ``imunban.internal``) do not: demo
workers on a real deployment's database would consume its messages. So the demo takes an empty
logical database (15 down to 1), holds it with a lease, and empties it when it ends. A database a
killed demo left behind (its marker still there, its lease run out) is taken back the next time.
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis

from imunban.errors import StoreError
from imunban.scripts import register

MARKER_KEY = "imunban-demo:db"
LEASE_KEY = "imunban-demo:lease"
LEASE_MS = 30_000
#: The demo keeps its own scripts in demo/lua/, apart from the engine's.
LUA_PACKAGE = "imunban.demo"


def with_db(url: str, db: int) -> str:
    """``url`` pointing at logical database ``db`` (path for redis://, ``?db=`` for unix://)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "db"]
    path = f"/{db}"
    if parts.scheme == "unix":
        path, query = parts.path, [*query, ("db", str(db))]
    # Built by hand: urlunsplit drops the "//" of unix:///path, which redis-py and Settings need.
    return f"{parts.scheme}://{parts.netloc}{path}" + (f"?{urlencode(query)}" if query else "")


def db_of(url: str) -> int:
    parts = urlsplit(url)
    raw = dict(parse_qsl(parts.query)).get("db") or parts.path.strip("/") or "0"
    return int(raw) if raw.isdigit() else 0


class DemoDatabase:
    """A logical database the demo has to itself (store and Celery queues), emptied at the end."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.token = secrets.token_hex(8)
        self.db = -1
        self.url = ""
        self._client: redis.Redis | None = None

    def __enter__(self) -> DemoDatabase:
        base = db_of(self.base_url)
        for db in range(15, 0, -1):
            if db == base:
                continue
            url = with_db(self.base_url, db)
            client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
            try:
                if register(client, "claim", package=LUA_PACKAGE)(
                    keys=[MARKER_KEY, LEASE_KEY], args=[self.token, LEASE_MS]
                ):
                    self.db, self.url, self._client = db, url, client
                    return self
            except redis.ResponseError:
                pass  # no such database, or SELECT refused (Redis Cluster): try the next
            except redis.RedisError as exc:
                client.close()
                raise StoreError(f"the demo cannot use Redis at {safe_url(self.base_url)}: {exc}") from exc
            client.close()
        raise StoreError(
            f"the demo needs an empty logical database (1-15) on {safe_url(self.base_url)} and found none; "
            "unset IMUNBAN_REDIS_URL to run it on the embedded Redis"
        )

    def refresh(self) -> None:
        """Keep the lease: a demo killed with SIGKILL leaves a database the next demo may reclaim."""
        if self._client is not None:
            self._client.pexpire(LEASE_KEY, LEASE_MS)

    def server_pid(self) -> int:
        assert self._client is not None
        return int(self._client.info("server")["process_id"])

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            try:
                register(self._client, "release", package=LUA_PACKAGE)(keys=[LEASE_KEY], args=[self.token])
            except redis.RedisError as exc:
                raise StoreError(f"could not empty the demo's database {self.db}: {exc}") from exc
            finally:
                self._client.close()
                self._client = None


def safe_url(url: str) -> str:
    """The URL without credentials (user info or query), for messages."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
