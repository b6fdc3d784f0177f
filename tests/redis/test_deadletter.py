"""Dead letters on a real redis-server: list, replay (chosen pairs or all), purge."""

from __future__ import annotations

import time

import pytest
import redis

from helpers import KEYS, req, server_ms, true_scheduled
from imunban.deadletter import DeadLetter, DeadLetters
from imunban.keys import request_id
from imunban.schedule import Scheduler
from imunban.settings import LingerPolicy
from imunban.store import Batch, Store


@pytest.fixture
def dead(r: redis.Redis) -> DeadLetters:
    return DeadLetters(r, KEYS)


def kill(store: Store, group: str, *members: str, high: bool = False, code: int = 10004) -> None:
    """Enqueue, claim and dead-letter ``members`` of ``group``."""
    store.enqueue([req(group, *members, high=high)])
    batch = store.claim(group)
    assert isinstance(batch, Batch)
    store.ack(batch, "dead", code=code, info=f"bad {group}")


def test_list_shows_code_info_attempts_oldest_first(store: Store, dead: DeadLetters) -> None:
    """list() returns dead letters oldest first with their code, info, attempts and time."""
    kill(store, "g1", "a", code=70107)
    time.sleep(0.002)
    kill(store, "g2", "b", code=10004)
    letters = dead.list()
    assert [(d.group_id, d.member, d.code, d.info, d.attempts) for d in letters] == [
        ("g1", "a", 70107, "bad g1", 1),
        ("g2", "b", 10004, "bad g2", 1),
    ]
    assert letters[0].at_ms <= letters[1].at_ms
    assert set(letters[0].as_dict()) == {"group_id", "member", "code", "info", "attempts", "at_ms"}
    assert dead.count() == 2


def test_list_pages_with_offset_and_limit(store: Store, dead: DeadLetters) -> None:
    """offset/limit page through the dead letters."""
    kill(store, "g", *(f"m{i}" for i in range(5)))
    assert len(dead.list(limit=2)) == 2
    assert len(dead.list(offset=4, limit=10)) == 1
    assert dead.list(offset=5) == []


def test_replay_chosen_pairs_makes_them_pending_due_now(r: redis.Redis, store: Store, dead: DeadLetters) -> None:
    """Replaying given (group, member) pairs schedules them due now; the rest stay dead."""
    kill(store, "g", "a", "b", "c")
    before = server_ms(r)
    assert dead.replay([("g", "a"), ("g", "c"), ("g", "not-dead")]) == 2
    assert [d.member for d in dead.list()] == ["b"]
    for member in ("a", "c"):
        due = r.zscore(KEYS.sched_group("g"), member)
        assert due is not None and before <= due <= server_ms(r)
        assert not r.hexists(KEYS.dead_info, request_id("g", member))
    assert int(r.hget(KEYS.stats, "replayed") or 0) == 2


def test_replayed_requests_are_delivered_again_with_fresh_attempts(
    r: redis.Redis, store: Store, dead: DeadLetters
) -> None:
    """A replayed dead letter is promoted, claimable, and starts with zero attempts."""
    store.enqueue([req("g", "m")])
    for _ in range(3):
        batch = store.claim("g")
        assert isinstance(batch, Batch)
        store.requeue(batch, delay_ms=0, code=10002)
    batch = store.claim("g")
    assert isinstance(batch, Batch)
    store.ack(batch, "dead", code=10002, info="gave up")
    assert dead.list()[0].attempts == 4
    dead.replay([("g", "m")])
    assert Scheduler(r, KEYS, linger=LingerPolicy(0)).promote_all() == 1
    again = store.claim("g")
    assert isinstance(again, Batch)
    assert again.items[0].attempts == 0


def test_replay_keeps_the_high_flag(r: redis.Redis, store: Store, dead: DeadLetters) -> None:
    """A high-priority dead letter is high again after replay and promotion."""
    kill(store, "g", "h", high=True)
    kill(store, "g", "n")
    assert dead.replay_all() == 2
    assert r.hget(KEYS.high, request_id("g", "h")) == "1"
    assert not r.hexists(KEYS.high, request_id("g", "n"))
    Scheduler(r, KEYS, linger=LingerPolicy(0)).promote_all()
    batch = store.claim("g")
    assert isinstance(batch, Batch)
    assert [(i.member, i.high) for i in batch.items] == [("h", True), ("n", False)]


def test_replay_all_empties_the_dead_letters(r: redis.Redis, store: Store, dead: DeadLetters) -> None:
    """replay_all() schedules every dead letter, across several calls if needed."""
    for g in range(3):
        kill(store, f"g{g}", *(f"m{i}" for i in range(20)))
    assert dead.replay(limit=25) == 25
    assert dead.replay_all() == 35
    assert dead.count() == 0 and r.hlen(KEYS.dead_info) == 0
    assert true_scheduled(r) == 60


def test_replay_does_not_duplicate_a_request_pending_or_in_flight_again(
    r: redis.Redis, store: Store, dead: DeadLetters
) -> None:
    """A dead request enqueued again (ready, scheduled or leased) keeps that newer instruction on replay."""
    kill(store, "g", "ready", "sched", "leased")
    later = server_ms(r) + 3_600_000
    store.enqueue([req("g", "ready"), req("g", "sched", at_ms=later), req("g", "leased")])
    batch = store.claim("g", max_members=1)
    assert isinstance(batch, Batch) and batch.members == ["leased"]
    assert dead.replay_all() == 0
    assert dead.count() == 0
    assert r.zscore(KEYS.sched_group("g"), "sched") == later
    assert true_scheduled(r) == 1
    assert r.zrange(KEYS.ready("g"), 0, -1) == ["ready"]
    assert r.zrange(KEYS.inflight, 0, -1) == [request_id("g", "leased")]


def test_purge_deletes_every_dead_letter(r: redis.Redis, store: Store, dead: DeadLetters) -> None:
    """purge() removes all dead letters and says how many there were."""
    kill(store, "g", "a", "b")
    assert dead.purge() == 2
    assert dead.count() == 0 and dead.list() == []
    assert r.exists(KEYS.dead_info) == 0
    assert dead.purge() == 0
    assert dead.replay_all() == 0


def test_dead_letter_from_json_without_fields_defaults(r: redis.Redis, dead: DeadLetters) -> None:
    """A dead entry whose info record is missing still lists, with zero code and attempts."""
    r.zadd(KEYS.dead, {request_id("g", "m"): 5})
    assert dead.list() == [DeadLetter("g", "m", 0, "", 0, 0)]


def test_non_positive_limits_touch_nothing(store: Store, dead: DeadLetters) -> None:
    """limit 0 lists and replays nothing (ZRANGE 0..-1 would otherwise mean every dead letter)."""
    kill(store, "g", "a", "b")
    assert dead.list(limit=0) == [] and dead.list(offset=-1) == []
    assert dead.replay(limit=0) == 0
    assert dead.count() == 2
