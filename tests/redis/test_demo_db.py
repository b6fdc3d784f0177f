"""The demo's private logical database on a real redis-server (its claim and release are Lua scripts)."""

from __future__ import annotations

import pytest
import redis

from imunban.demo.db import LEASE_KEY, MARKER_KEY, DemoDatabase, with_db
from imunban.errors import StoreError


def test_database_is_private_and_emptied(redis_url: str) -> None:
    """The demo takes an empty database, skips used ones, reclaims a killed demo's, and empties it at the end."""
    used = redis.Redis.from_url(with_db(redis_url, 15))
    used.set("someone:else", "1")
    stale = redis.Redis.from_url(with_db(redis_url, 14))
    stale.set(MARKER_KEY, "old")
    stale.set("imunban-demo:stats", "left over")  # lease expired: a demo killed with SIGKILL
    with DemoDatabase(redis_url) as first, DemoDatabase(redis_url) as second:
        assert (first.db, second.db) == (14, 13)
        client = redis.Redis.from_url(first.url)
        assert client.exists("imunban-demo:stats") == 0
        client.set("imunban-demo:sched", "x")
        assert client.pttl(LEASE_KEY) > 0
    assert client.dbsize() == 0
    assert used.get("someone:else") == b"1"
    for c in (client, used, stale):
        c.close()


def test_database_refuses_when_none_free(redis_url: str) -> None:
    """With every database in use the demo stops with a clear error and touches nothing."""
    clients = [redis.Redis.from_url(with_db(redis_url, db)) for db in range(1, 16)]
    for c in clients:
        c.set("busy", "1")
    with pytest.raises(StoreError, match="empty logical database"), DemoDatabase(redis_url):
        pass
    assert all(c.get("busy") == b"1" for c in clients)
    for c in clients:
        c.close()
