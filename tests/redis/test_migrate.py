"""A store written by the single-app layout is moved under app ``default`` once, losing no pending request.

The fixture ``fixtures/single_app_store.json`` was written by imunban before several apps (commit
a384dca, see ``fixtures/make_single_app_store.py``): 3 groups of 25 ready members (20 of one in flight
under a lease, 2 of another dead-lettered), 3 scheduled for 2100, one high-priority versioned member.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import redis

from imunban.apps import AppConfig
from imunban.deployment import open_deployment
from imunban.keys import Keys
from imunban.migrate import has_legacy_keys, migrate_single_app_layout
from imunban.runtime import prepare_worker
from imunban.schedule import Scheduler
from imunban.settings import LingerPolicy, Secret, Settings
from imunban.stats import status
from imunban.store import Batch, Store
from imunban.validation import build_request

FIXTURE = Path(__file__).with_name("fixtures") / "single_app_store.json"
#: Members pending in the fixture: 75 ready (2 of them dead since), 3 scheduled, 1 high.
PENDING = {f"@TGS#g{g}": {f"user{g}_{m}" for m in range(25)} for g in range(3)}
PENDING["@TGS#g1"] -= {"user1_0", "user1_1"}
PENDING["@TGS#hi"] = {"vip"}
SCHEDULED = {"@TGS#later": {"s1", "s2", "s3"}}


def load_fixture(client: redis.Redis) -> int:
    """Write the old-layout keys of the fixture with their old names; returns how many keys."""
    data: dict[str, dict[str, Any]] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    for key, value in data.items():
        ((kind, content),) = value.items()
        if kind == "zset":
            client.zadd(key, {member: score for member, score in content})
        elif kind == "hash":
            client.hset(key, mapping=content)
        elif kind == "string":
            client.set(key, content)
        elif kind == "stream":
            for fields in content:
                client.xadd(key, fields)
    return len(data)


def drain(store: Store) -> dict[str, set[str]]:
    """Reap expired leases, then claim every claimable batch (acking it): what would be delivered, by group."""
    sched = Scheduler(store.client, store.keys, linger=LingerPolicy(0))
    store.client.zadd(store.keys.inflight, {m: 0 for m in store.client.zrange(store.keys.inflight, 0, -1)}, xx=True)
    store.reap()
    sched.promote_all()  # reaped requests come back through their group's schedule, due at once
    got: dict[str, set[str]] = {}
    while groups := store.claimable_groups(100):
        for group, _ in groups:
            batch = store.claim(group)
            assert isinstance(batch, Batch)
            got.setdefault(group, set()).update(batch.members)
            store.ack(batch, "delivered")
    return got


def test_the_old_store_moves_under_default_and_every_pending_request_survives(r: redis.Redis) -> None:
    """All keys renamed, none left behind, the counts unchanged and every pending member claimable."""
    written = load_fixture(r)
    assert has_legacy_keys(r, "imunban")
    report = migrate_single_app_layout(r, "imunban")
    assert (report.app, report.renamed, report.merged) == ("default", written, 0)
    assert report.group_keys == 5  # 4 ready keys and 1 scheduled
    assert list(r.scan_iter("imunban:*")) == []
    keys = Keys("imunban")
    counts = status(r, keys)
    assert counts["queued"] + counts["in_flight"] == 74 and counts["scheduled"] == 3 and counts["dead"] == 2
    assert int(r.hget(keys.stats, "migrated_keys") or 0) == written
    assert r.get(keys.limiter(1400000000)) is not None  # the GCRA state came along
    assert drain(Store(r, keys, linger=LingerPolicy(0))) == PENDING
    assert {m for m in r.zrange(keys.sched_group("@TGS#later"), 0, -1)} == SCHEDULED["@TGS#later"]


def test_a_second_run_finds_nothing(r: redis.Redis) -> None:
    """Idempotent: once moved, a worker start migrates nothing and counts nothing more."""
    written = load_fixture(r)
    assert migrate_single_app_layout(r, "imunban").moved == written
    assert not has_legacy_keys(r, "imunban")
    assert migrate_single_app_layout(r, "imunban").moved == 0
    assert int(r.hget(Keys("imunban").stats, "migrated_keys") or 0) == written


def test_keys_written_by_the_new_layout_first_are_merged_not_overwritten(r: redis.Redis) -> None:
    """A producer of the new version wrote before any worker migrated: both sets of requests survive,
    the new instruction wins for a member pending in both, and the counters add up."""
    load_fixture(r)
    keys = Keys("imunban")
    new = Store(r, keys, linger=LingerPolicy(0))
    new.enqueue([build_request("@TGS#g2", ["fresh"], None, None)])
    new.enqueue([build_request("@TGS#g2", ["user2_5"], 4102444800, None)])  # rescheduled by the newer instruction
    report = migrate_single_app_layout(r, "imunban")
    assert report.merged >= 3 and report.renamed > 0  # stats, groups, ready:@TGS#g2 at least
    assert list(r.scan_iter("imunban:*")) == []
    assert int(r.hget(keys.stats, "enqueued") or 0) == 79 + 2
    want = {group: set(members) for group, members in PENDING.items()}
    want["@TGS#g2"] = (want["@TGS#g2"] - {"user2_5"}) | {"fresh"}
    assert "user2_5" in r.zrange(keys.sched_group("@TGS#g2"), 0, -1)
    got = drain(new)
    # user2_5 kept its old ready copy too (both layouts held it): it may be claimed once more, never lost.
    got["@TGS#g2"].discard("user2_5")
    assert got == want


def test_a_worker_start_migrates_and_logs_it(r: redis.Redis, redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """prepare_worker (every worker's start) runs the migration and logs what it moved."""
    written = load_fixture(r)
    app = AppConfig("default", sdkappid=1400000000, secret_key=Secret("k"), base_url="http://127.0.0.1:9")
    settings = Settings(redis_url=redis_url, single_app=app)
    with caplog.at_level(logging.WARNING, logger="imunban.migrate"):
        prepare_worker(open_deployment(settings))
    assert f"{written} key(s) renamed" in caplog.text and "to app 'default'" in caplog.text
    assert list(r.scan_iter("imunban:*")) == []
