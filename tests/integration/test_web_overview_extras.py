"""The overview's additions: the throughput history from Redis with the calls/s limit, the Redis memory card, and
the runbook's hint beside a hold, a dead letter and a state banner."""

from __future__ import annotations

import redis
from markupsafe import escape

from imunban import runbook
from imunban.hold import Hold
from imunban.keys import Keys
from imunban.pause import Actor, Pause
from imunban.throughput import MINUTE_MS
from web_helpers import OPERATOR, bearer, console_client, make_dead

KEYS = Keys()
OP = bearer(OPERATOR)


def test_throughput_history_comes_from_redis_with_the_calls_limit(r: redis.Redis, redis_url: str) -> None:
    """/api/throughput: per-minute rates from the snapshots in Redis (any console's), and the limit in calls/s."""
    now_minute = int(r.time()[0]) // 60
    for i, minute in enumerate(range(now_minute - 5, now_minute)):
        r.zadd(KEYS.throughput, {f"{minute}:{minute * MINUTE_MS}:{i * 1800}:{i * 95}": minute})
    doc = console_client(r, redis_url).get("/api/throughput", headers=OP).json()
    assert doc["limit_per_s"] == 190 and doc["minutes"] == 24 * 60
    assert doc["delivered"][:4] == [30.0] * 4 and doc["calls"][:4] == [1.58] * 4  # 1,800 and 95 a minute
    assert len(doc["t"]) >= 4 and doc["t"] == sorted(doc["t"])


def test_memory_card_shows_used_max_and_the_intake_line(r: redis.Redis, redis_url: str) -> None:
    """With maxmemory set, the card shows used memory, maxmemory and where intake is refused."""
    old = r.config_get("maxmemory")["maxmemory"]
    r.config_set("maxmemory", 64 * 1024 * 1024)
    try:
        client = console_client(r, redis_url)
        doc = client.get("/api/overview", headers=OP).json()
        memory = doc["memory"]
        assert memory["max_bytes"] == 64 * 1024 * 1024 and memory["used_bytes"] > 0
        assert memory["intake_bytes"] == int(64 * 1024 * 1024 * memory["intake_fraction"])
        page = client.get("/", headers=OP).text
        assert 'id="memory-card"' in page and "64.0 MiB" in page and "intake refused from" in page
    finally:
        r.config_set("maxmemory", old)


def test_the_runbook_hint_beside_a_hold_a_dead_letter_and_a_pause(r: redis.Redis, redis_url: str) -> None:
    """A hold shows what to do and links its runbook entry; so does each dead letter, and the paused banner."""
    client = console_client(r, redis_url)
    make_dead(r, "@TGS#g", ["ghost"], code=10004, info="member ghost does not exist")
    assert "/runbook#code-isolate" in client.get("/dead", headers=OP).text
    Hold(r, KEYS).set(70009, "UserSig verification failed: wrong secret key")
    hint = runbook.CODE_ENTRIES["hold"]
    for path in ("/", "/holds"):
        page = client.get(path, headers=OP).text
        assert "/runbook#code-hold" in page and str(escape(hint.action))[:60] in page, path
    assert client.get("/api/overview", headers=OP).json()["hold_hint"]["anchor"] == "code-hold"
    Pause(r, KEYS).pause("maintenance", Actor("operator", "bearer", "127.0.0.1"))
    banner = client.get("/api/overview", headers=OP).json()["banner"]
    assert banner["anchor"] == "state-paused" and banner["hint"] == runbook.STATE_ENTRIES["paused"].action


def test_the_runbook_page_has_every_entry(r: redis.Redis, redis_url: str) -> None:
    """/runbook lists every state and ErrorCode class under its anchor (what the hints link to)."""
    page = console_client(r, redis_url).get("/runbook", headers=OP)
    assert page.status_code == 200
    for entry in [*runbook.STATE_ENTRIES.values(), *runbook.CODE_ENTRIES.values()]:
        assert f'id="{entry.anchor}"' in page.text
