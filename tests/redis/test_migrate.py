"""A store written by the single-app layout is moved under app ``default`` once, losing no pending request.

The fixture ``fixtures/single_app_store.json`` was written by imunban before several apps (commit
a384dca, see ``fixtures/make_single_app_store.py``): 3 groups of 25 ready members (20 of one in flight
under a lease, 2 of another dead-lettered), 3 scheduled for 2100, one high-priority versioned member.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis

from imunban.apps import AppConfig
from imunban.deployment import open_deployment
from imunban.keys import Keys, request_id
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
    if leased := store.client.zrange(store.keys.inflight, 0, -1):
        store.client.zadd(store.keys.inflight, dict.fromkeys(leased, 0), xx=True)
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


# -- a merge keeps the gauges and the versions right (issue 18, item 9) ----------------------------------

OLD = Keys.single_app_layout("imunban")
NEW = Keys("imunban")
LATER_MS = 4_102_444_800_000


def true_gauges(r: redis.Redis, keys: Keys) -> tuple[int, int]:
    """(ready, scheduled) counted from the sets themselves."""
    ready = sum(int(r.zcard(k)) for k in r.scan_iter(match=keys.ready_pattern()))
    scheduled = sum(int(r.zcard(k)) for k in r.scan_iter(match=keys.sched_pattern()))
    return ready, scheduled


def gauges(r: redis.Redis, keys: Keys) -> tuple[int, int]:
    return int(r.hget(keys.stats, "ready") or 0), int(r.hget(keys.stats, "scheduled") or 0)


def test_a_member_both_layouts_hold_is_counted_once(r: redis.Redis) -> None:
    """Pending in both layouts (the same set, or ready in one and scheduled in the other): the gauges equal the
    sets after the merge, and nothing is left queued once everything due was delivered."""
    old, new = Store(r, OLD, linger=LingerPolicy(0)), Store(r, NEW, linger=LingerPolicy(0))
    old.enqueue([build_request("@TGS#g", ["both", "cross", "only_old"], None, None)])
    old.enqueue([build_request("@TGS#g", ["later_both"], LATER_MS / 1000, None)])
    new.enqueue([build_request("@TGS#g", ["both", "only_new"], None, None)])
    new.enqueue([build_request("@TGS#g", ["cross", "later_both"], LATER_MS / 1000, None)])
    migrate_single_app_layout(r, "imunban")
    assert gauges(r, NEW) == true_gauges(r, NEW) == (3, 2)
    # "cross" keeps the new layout's instruction (scheduled for later): it is not also ready.
    assert r.zscore(NEW.ready("@TGS#g"), "cross") is None and r.zscore(NEW.sched_group("@TGS#g"), "cross") == LATER_MS
    assert drain(new) == {"@TGS#g": {"both", "only_old", "only_new"}}
    counts = status(r, NEW)
    assert (counts["queued"], counts["scheduled"]) == (0, 2)
    assert gauges(r, NEW) == true_gauges(r, NEW)


def test_versions_merge_by_maximum_and_a_cancel_wins_a_tie(r: redis.Redis) -> None:
    """An applied cancel beats a stale lower version of the other layout (whichever layout had it); a higher
    version of the old layout keeps its due time; a tie between a cancel and an enqueue is the cancel's."""
    old, new = Store(r, OLD, linger=LingerPolicy(0)), Store(r, NEW, linger=LingerPolicy(0))

    def put(store: Store, member: str, version: int, at_s: float | None = None) -> None:
        store.enqueue([build_request("@TGS#g", [member], at_s, None, version=version)])

    put(old, "cancelled_old", 100)
    old.cancel("@TGS#g", ["cancelled_old"], version=200)  # the old layout applied a cancel v200 ...
    put(new, "cancelled_old", 150)  # ... the new layout got a stale v150 before the merge
    put(old, "cancelled_new", 100)  # pending in the old layout at v100 ...
    new.cancel("@TGS#g", ["cancelled_new"], version=200)  # ... cancelled at v200 in the new one
    put(old, "tie", 100)
    old.cancel("@TGS#g", ["tie"], version=150)
    put(new, "tie", 150)
    put(old, "higher_old", 300, LATER_MS / 1000)  # v300 says: later ...
    put(new, "higher_old", 100)  # ... a stale v100 in the new layout says: now
    migrate_single_app_layout(r, "imunban")
    versions = r.hgetall(NEW.versions)
    rid = partial(request_id, "@TGS#g")
    assert versions[rid("cancelled_old")] == "200c" and versions[rid("cancelled_new")] == "200c"
    assert versions[rid("tie")] == "150c" and versions[rid("higher_old")] == "300"
    assert drain(new) == {}  # nothing cancelled is delivered, and v300 is not due yet
    assert r.zscore(NEW.sched_group("@TGS#g"), "higher_old") == LATER_MS
    assert gauges(r, NEW) == true_gauges(r, NEW) == (0, 1)
    # The merged versions govern what comes next: a v150 enqueue is stale against the cancel v200.
    assert new.enqueue([build_request("@TGS#g", ["cancelled_old"], None, None, version=150)]).stale == 1


def test_the_migration_script_is_a_lua_file_with_the_standard_header() -> None:
    """The move lives in lua/migrate.lua (header naming KEYS and ARGV), not inline in migrate.py."""
    import imunban.migrate as module

    assert not hasattr(module, "MIGRATE_LUA")
    assert (Path(module.__file__).parent / "lua" / "migrate.lua").read_text(encoding="utf-8").startswith("-- migrate: ")
