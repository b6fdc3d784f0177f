"""``imunban enqueue --file`` into a Redis that fills up: refused with a clear message and an exact count."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from helpers import overfill_redis, set_maxmemory
from imunban.cli import main
from imunban.keys import Keys
from imunban.local.redis_server import RedisServer
from imunban.settings import LingerPolicy
from imunban.store import Batch, Store
from imunban.validation import UnbanRequest

KEYS = Keys("imunban")
#: What one enqueue script call may add after passing the maxmemory check just under the limit.
MARGIN = 256 * 1024


@pytest.fixture
def small_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """A private redis-server (noeviction) for one test; the CLI is pointed at it."""
    server = RedisServer(tmp_path / "redis", appendonly=False).start()
    monkeypatch.setenv("IMUNBAN_REDIS_URL", server.url)
    client = redis.Redis.from_url(server.url, decode_responses=True)
    yield client
    client.close()
    server.stop()


def stored_members(r: redis.Redis) -> int:
    keys = [*r.scan_iter(match=KEYS.ready("*")), *r.scan_iter(match=KEYS.sched_group("*"))]
    return sum(int(r.zcard(key)) for key in keys)


def test_an_oversized_file_is_refused_with_the_count_it_stored(
    small_redis: redis.Redis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file bigger than the room left: exit 2, 'Redis is full', a count equal to what is stored, limit kept."""
    lines = 60_000
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps({"group_id": f"g{i % 100}", "member": f"m{i}"}) + "\n" for i in range(lines)))
    limit = set_maxmemory(small_redis, 2 * 1024 * 1024)
    rc = main(["enqueue", "--file", str(path)])
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    assert "Redis is full (maxmemory reached)" in err
    found = re.search(r"(\d+) of (\d+) requests from the file's (\d+) lines were stored before the refusal", err)
    assert found, err
    assert int(found[2]) == lines and int(found[3]) == lines
    assert 0 < int(found[1]) < lines
    assert int(found[1]) == stored_members(small_redis)
    used = int(small_redis.info("memory")["used_memory"])
    print(f"maxmemory {limit}, used after the refusal {used}, over by {used - limit}")
    assert used <= limit + MARGIN


def test_enqueue_into_a_full_redis_exits_non_zero_saying_nothing_was_stored(
    small_redis: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """Positional enqueue at maxmemory: exit 2 and '0 requests ... were stored'."""
    small_redis.config_set("maxmemory", 1)  # already over: every deny-oom write is refused
    rc = main(["enqueue", "@TGS#g", "alice"])
    _, err = capsys.readouterr()
    assert rc == 2
    assert "Redis is full (maxmemory reached)" in err and "0 requests were stored" in err
    small_redis.config_set("maxmemory", 0)
    assert stored_members(small_redis) == 0


def test_status_trace_and_dead_purge_work_on_a_full_redis(
    small_redis: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """At maxmemory: `imunban status --json` and `trace` answer, `dead purge --all --yes` deletes the dead letters."""
    store = Store(small_redis, KEYS, linger=LingerPolicy(0))
    store.enqueue([UnbanRequest("@TGS#g", ("a", "b"))])
    batch = store.claim("@TGS#g", max_members=1)
    assert isinstance(batch, Batch)
    store.ack(batch, "dead", code=10004, info="bad member")
    overfill_redis(small_redis)
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dead"] == 1
    assert main(["trace", "@TGS#g", "b", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "ready"
    assert main(["dead", "purge", "--all", "--yes"]) == 0
    assert "purged 1 dead letter" in capsys.readouterr().out
    assert small_redis.zcard(KEYS.dead) == 0
