"""The console on a full Redis (maxmemory, noeviction): every view answers, purge and probe-now act and are audited."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from starlette.testclient import TestClient

from helpers import overfill_redis
from imunban.hold import Hold
from imunban.keys import Keys
from imunban.producer import Producer
from web_helpers import OPERATOR, bearer, console_client, make_dead

KEYS = Keys()
OP = bearer(OPERATOR)


@pytest.fixture
def full_console(r: redis.Redis, redis_url: str) -> Iterator[TestClient]:
    """A console over a store with a backlog, a dead letter and a hold, on a Redis then filled past maxmemory."""
    Producer.on(r).enqueue("@TGS#g1", ["a", "b"])
    make_dead(r, "@TGS#g2", ["x", "y"])
    Hold(r, KEYS, probe_base_ms=600_000).set(70009, "wrong key")
    client = console_client(r, redis_url)
    overfill_redis(r)
    try:
        yield client
    finally:
        r.config_set("maxmemory", 0)


@pytest.mark.parametrize(
    "path",
    [
        "/api/status",
        "/api/overview",
        "/api/trace?group_id=%40TGS%23g1&member=a",
        "/api/dead",
        "/api/holds",
        "/api/outcomes",
        "/",
        "/trace?group_id=%40TGS%23g2&member=x",
        "/dead",
        "/holds",
    ],
)
def test_every_view_answers_on_a_full_redis(full_console: TestClient, path: str) -> None:
    """Overview, status, trace, dead letters, holds and outcomes answer 200 at maxmemory, never an error page."""
    response = full_console.get(path, headers=OP)
    assert response.status_code == 200, response.text
    assert (
        "failed: OOM" not in response.text and "Internal Server Error" not in response.text
    )  # the state may say "full"


def test_status_shows_the_backlog_and_the_hold_on_a_full_redis(full_console: TestClient) -> None:
    """/api/status at maxmemory: the queued requests, the dead letters and the hold."""
    doc = full_console.get("/api/status", headers=OP).json()
    assert (doc["queued"], doc["dead"], doc["hold"]["code"]) == (2, 2, 70009)


def test_purge_and_probe_now_act_and_are_audited_on_a_full_redis(full_console: TestClient, r: redis.Redis) -> None:
    """Purging dead letters (which frees memory) and 'probe now' work at maxmemory, each with its audit entry."""
    one = {"requests": [{"group_id": "@TGS#g2", "member": "x"}]}
    purged = full_console.post("/api/dead/purge", json=one, headers=OP)
    assert purged.status_code == 200, purged.text
    assert purged.json() == {"purged": 1}
    everything = full_console.post("/api/dead/purge", json={"all": True}, headers=OP)
    assert everything.json() == {"purged": 1}
    assert full_console.post("/api/probe", json={}, headers=OP).json()["probe"] == 1
    audits = [f["action"] for _, f in r.xrange(KEYS.outcomes) if f.get("outcome") == "audit"]
    assert audits == ["dead.purge", "dead.purge", "probe"]
