"""Dead letters on a real redis-server: list, replay (chosen pairs or all), purge."""

from __future__ import annotations

import time

import pytest
import redis

from helpers import KEYS, req, server_ms, true_scheduled
from imunban.deadletter import DeadFilter, DeadLetter, DeadLetters, ReplayResult
from imunban.keys import request_id
from imunban.schedule import Scheduler
from imunban.settings import LingerPolicy
from imunban.store import Batch, Store
from imunban.validation import UnbanRequest


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


def test_matching_filters_by_code_and_group_across_scan_windows(store: Store, dead: DeadLetters) -> None:
    """matching() finds every dead letter of a code and/or group, newest first, however small the scan window."""
    kill(store, "g1", "a", "b", code=10004)
    kill(store, "g2", "c", code=10004)
    kill(store, "g2", "d", code=70107)
    by_code = dead.matching(DeadFilter(code=10004), chunk=1)
    assert sorted((d.group_id, d.member) for d in by_code) == [("g1", "a"), ("g1", "b"), ("g2", "c")]
    assert [d.member for d in dead.matching(DeadFilter(code=10004, group_id="g2"))] == ["c"]
    assert [d.member for d in dead.matching(DeadFilter(group_id="g2"))] == ["d", "c"]
    page = dead.scan(DeadFilter(), 0, 2)
    assert (len(page.letters), page.next_rank) == (2, 2)
    assert dead.scan(DeadFilter(), 2, 2).next_rank is None


def test_purge_some_deletes_only_the_given_dead_letters(store: Store, dead: DeadLetters) -> None:
    """purge_some() deletes the named dead letters (entry and info) and counts only real ones."""
    kill(store, "g", "a", "b", "c")
    assert sum(dead.purge_some([("g", "a"), ("g", "c"), ("g", "never")])) == 2
    assert [d.member for d in dead.list()] == ["b"]
    assert dead.client.hexists(dead.keys.dead_info, request_id("g", "a")) == 0


def test_replay_chosen_pairs_makes_them_pending_due_now(r: redis.Redis, store: Store, dead: DeadLetters) -> None:
    """Replaying given (group, member) pairs schedules them due now; the rest stay dead."""
    kill(store, "g", "a", "b", "c")
    before = server_ms(r)
    assert dead.replay([("g", "a"), ("g", "c"), ("g", "not-dead")]).replayed == 2
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
    assert dead.replay_all().replayed == 2
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
    assert dead.replay(limit=25).replayed == 25
    assert dead.replay_all().replayed == 35
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
    assert dead.replay_all() == ReplayResult(skipped_pending=3)
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
    assert dead.replay_all() == ReplayResult()


def test_dead_letter_from_json_without_fields_defaults(r: redis.Redis, dead: DeadLetters) -> None:
    """A dead entry whose info record is missing still lists, with zero code and attempts."""
    r.zadd(KEYS.dead, {request_id("g", "m"): 5})
    assert dead.list() == [DeadLetter("g", "m", 0, "", 0, 0)]


def test_non_positive_limits_touch_nothing(store: Store, dead: DeadLetters) -> None:
    """limit 0 lists and replays nothing (ZRANGE 0..-1 would otherwise mean every dead letter)."""
    kill(store, "g", "a", "b")
    assert dead.list(limit=0) == [] and dead.list(offset=-1) == []
    assert dead.replay(limit=0) == ReplayResult()
    assert dead.count() == 2


# -- nothing ended comes back (issue 18, item 3) -------------------------------------------------


def vkill(store: Store, group: str, member: str, version: int | None) -> None:
    """Enqueue one request (with ``version``, if any), claim it and dead-letter it."""
    store.enqueue([UnbanRequest(group, (member,), version=version)])
    batch = store.claim(group)
    assert isinstance(batch, Batch)
    store.ack(batch, "dead", code=10004, info="bad")


def nowhere(r: redis.Redis, group: str, member: str) -> bool:
    """The request is neither pending (ready or scheduled), nor in flight, nor a dead letter."""
    rid = request_id(group, member)
    return (
        r.zscore(KEYS.ready(group), member) is None
        and r.zscore(KEYS.sched_group(group), member) is None
        and r.zscore(KEYS.inflight, rid) is None
        and r.zscore(KEYS.dead, rid) is None
    )


@pytest.mark.parametrize("cancel_version", [200, 100, None])
def test_a_cancel_after_death_sticks_through_replay_all(
    r: redis.Redis, store: Store, dead: DeadLetters, cancel_version: int | None
) -> None:
    """Enqueue v100, dead-lettered, then a cancel (higher, equal or no version): replay brings nothing back."""
    vkill(store, "g", "m", 100)
    cancelled = store.cancel("g", ["m"], version=cancel_version)
    result = dead.replay_all()
    assert nowhere(r, "g", "m") and true_scheduled(r) == 0
    assert cancelled == 1  # the dead letter was what it ended
    assert (result.replayed, result.skipped) == (0, 0)
    assert not r.hexists(KEYS.dead_info, request_id("g", "m"))
    assert int(r.hget(KEYS.stats, "cancelled") or 0) == 1


def test_an_unversioned_cancel_after_death_sticks_through_replay_of_the_pair(
    r: redis.Redis, store: Store, dead: DeadLetters
) -> None:
    """Without versions too: a cancel after the request died ends its dead letter; replaying it finds nothing."""
    vkill(store, "g", "m", None)
    assert store.cancel("g", ["m"]) == 1
    result = dead.replay([("g", "m")])
    assert (result.replayed, result.skipped, result.not_dead) == (0, 0, 1)
    assert nowhere(r, "g", "m")


def test_a_stale_cancel_leaves_the_dead_letter_replayable(r: redis.Redis, store: Store, dead: DeadLetters) -> None:
    """A cancel with a lower version than the dead request's is ignored: the dead letter stays and replays."""
    vkill(store, "g", "m", 100)
    assert store.cancel("g", ["m"], version=50) == 0
    assert dead.count() == 1
    assert dead.replay([("g", "m")]).replayed == 1
    assert r.zscore(KEYS.sched_group("g"), "m") is not None


def test_replay_skips_a_dead_letter_a_higher_version_ended_since(
    r: redis.Redis, store: Store, dead: DeadLetters
) -> None:
    """v100 died; v300 was enqueued and delivered: replaying the v100 dead letter is skipped, and said so."""
    vkill(store, "g", "m", 100)
    store.enqueue([UnbanRequest("g", ("m",), version=300)])
    batch = store.claim("g")
    assert isinstance(batch, Batch)
    store.ack(batch, "delivered")
    result = dead.replay([("g", "m")])
    assert nowhere(r, "g", "m")
    assert (result.replayed, result.skipped_ended, result.skipped_pending) == (0, 1, 0)
    assert int(r.hget(KEYS.stats, "replay_skipped") or 0) == 1


def test_replay_skips_a_dead_letter_whose_cancel_was_recorded_before_this_fix(
    r: redis.Redis, store: Store, dead: DeadLetters
) -> None:
    """A dead letter left beside a versioned cancel (a cancel of an older imunban kept it) is skipped, not revived."""
    vkill(store, "g", "m", 100)
    # What an older cancel v200 left: the version recorded as a cancel, the dead letter (with no version in it) kept.
    r.hset(KEYS.versions, request_id("g", "m"), "200c")
    r.hset(KEYS.dead_info, request_id("g", "m"), '{"code": 10004, "info": "bad", "attempts": 1, "at_ms": 1}')
    result = dead.replay_all()
    assert nowhere(r, "g", "m")
    assert (result.replayed, result.skipped_ended) == (0, 1)


def test_replay_counts_a_request_pending_again_as_skipped(r: redis.Redis, store: Store, dead: DeadLetters) -> None:
    """A dead request enqueued again keeps that instruction: its dead letter is dropped and counted as skipped."""
    vkill(store, "g", "a", None)
    vkill(store, "g", "b", None)
    store.enqueue([req("g", "a")])
    result = dead.replay([("g", "a"), ("g", "b"), ("g", "never")])
    assert (result.replayed, result.skipped_pending, result.skipped_ended, result.not_dead) == (1, 1, 0, 1)
    assert result.skipped == 1 and result.matched == 2
