"""The request store on a real redis-server: enqueue, cancel, claim, ack, requeue, group_gone."""

from __future__ import annotations

import json
import threading
import time

import redis

from helpers import KEYS, assert_gauge, req, run_in_threads, server_ms, true_ready, true_scheduled, wait_server_ms
from imunban.hold import Hold
from imunban.keys import HIGH_BAND_MS, MAX_MEMBERS, request_id
from imunban.linger import PACE_TAU_S, linger_ms
from imunban.schedule import Scheduler
from imunban.settings import LingerPolicy
from imunban.store import HELD, Batch, Store

LONG_LINGER_MS = 60_000
OUTCOME_FIELDS = {"group_id", "member", "outcome", "code", "info", "attempts", "due_ms", "at_ms", "app"}


def stat(r: redis.Redis, name: str) -> int:
    return int(r.hget(KEYS.stats, name) or 0)


def claim_batch(store: Store, group: str, **kwargs: bool | int) -> Batch:
    batch = store.claim(group, **kwargs)  # type: ignore[arg-type]
    assert isinstance(batch, Batch)
    return batch


# -- enqueue -----------------------------------------------------------------------------------


def test_thousand_enqueues_of_one_member_leave_one_pending(r: redis.Redis, store: Store) -> None:
    """1,000 enqueues of the same (group, member), in one call and in many, store one pending request."""
    result = store.enqueue([req("g", "m")] * 500)
    for _ in range(500):
        store.enqueue([req("g", "m")])
    assert result.stored == 500 and result.replaced == 499
    assert r.zrange(KEYS.ready("g"), 0, -1) == ["m"]
    assert true_scheduled(r) == 0
    assert stat(r, "enqueued") == 1_000
    assert stat(r, "deduplicated") == 999
    assert_gauge(r)


def test_same_member_in_other_group_is_another_request(r: redis.Redis, store: Store) -> None:
    """Deduplication is on (group, member): the same member in two groups is two requests."""
    store.enqueue([req("g1", "m"), req("g2", "m"), req("g1", "m")])
    assert r.zcard(KEYS.ready("g1")) == 1 and r.zcard(KEYS.ready("g2")) == 1
    assert_gauge(r)


def test_ready_request_rescheduled_later_by_newer_instruction(r: redis.Redis, store: Store) -> None:
    """Latest instruction wins: a ready request enqueued again for later leaves ready for the schedule."""
    store.enqueue([req("g", "m")])
    later = server_ms(r) + 3_600_000
    result = store.enqueue([req("g", "m", at_ms=later)])
    assert (result.ready, result.scheduled, result.replaced) == (0, 1, 1)
    assert r.zcard(KEYS.ready("g")) == 0
    assert r.zscore(KEYS.sched_group("g"), "m") == later
    assert r.zscore(KEYS.groups, "g") is None
    assert_gauge(r)


def test_scheduled_request_made_due_now_by_newer_instruction(r: redis.Redis, store: Store) -> None:
    """Latest instruction wins: a scheduled request enqueued again without a time is ready at once."""
    store.enqueue([req("g", "m", at_ms=server_ms(r) + 3_600_000)])
    result = store.enqueue([req("g", "m")])
    assert (result.ready, result.scheduled, result.replaced) == (1, 0, 1)
    assert r.zscore(KEYS.sched_group("g"), "m") is None
    assert r.zscore(KEYS.ready("g"), "m") is not None
    assert r.zscore(KEYS.groups, "g") is not None
    assert_gauge(r)


def test_later_instruction_replaces_earlier_schedule(r: redis.Redis, store: Store) -> None:
    """Re-banning with a new expiry moves the scheduled due time to the newest one, even if earlier."""
    now = server_ms(r)
    store.enqueue([req("g", "m", at_ms=now + 7_200_000), req("g", "n", at_ms=now + 5_000_000)])
    result = store.enqueue([req("g", "m", at_ms=now + 3_600_000)])
    assert (result.ready, result.scheduled, result.replaced) == (0, 1, 1)
    assert r.zscore(KEYS.sched_group("g"), "m") == now + 3_600_000
    assert r.zscore(KEYS.schedidx, "g") == now + 3_600_000
    assert true_scheduled(r) == 2
    assert int(r.hget(KEYS.stats, "deduplicated") or 0) == 1
    assert_gauge(r)


def test_past_due_time_is_ready_with_its_due_as_score(r: redis.Redis, store: Store) -> None:
    """A due time in the past (on the server clock) makes the request ready, scored by that due time."""
    past = server_ms(r) - 10_000
    store.enqueue([req("g", "m", at_ms=past)])
    assert r.zscore(KEYS.ready("g"), "m") == past


def test_high_priority_scores_below_every_normal_member(r: redis.Redis, store: Store) -> None:
    """A high member scores due - HIGH_BAND_MS, sorts before older normal ones and is flagged pending-high."""
    now = server_ms(r)
    store.enqueue([req("g", "old1", "old2", at_ms=now - 60_000)])
    store.enqueue([req("g", "urgent", at_ms=now - 1, high=True)])
    assert r.zscore(KEYS.ready("g"), "urgent") == now - 1 - HIGH_BAND_MS
    assert r.zrange(KEYS.ready("g"), 0, 0) == ["urgent"]
    assert r.hget(KEYS.high, request_id("g", "urgent")) == "1"
    assert float(r.zscore(KEYS.groups, "g") or 0) < 0


def test_normal_instruction_clears_high_flag(r: redis.Redis, store: Store) -> None:
    """Latest instruction wins for the priority too: a later normal enqueue drops the high flag."""
    store.enqueue([req("g", "m", high=True)])
    store.enqueue([req("g", "m")])
    assert float(r.zscore(KEYS.ready("g"), "m") or 0) > 0
    assert not r.hexists(KEYS.high, request_id("g", "m"))


def test_enqueue_resets_attempts_of_a_pending_retry(r: redis.Redis, store: Store) -> None:
    """A new instruction for a request waiting to be retried starts with a fresh attempt budget."""
    store.enqueue([req("g", "m")])
    store.requeue(claim_batch(store, "g"), delay_ms=60_000, code=10002)
    assert r.hexists(KEYS.meta, request_id("g", "m"))
    store.enqueue([req("g", "m")])
    assert not r.hexists(KEYS.meta, request_id("g", "m"))
    assert claim_batch(store, "g").items[0].attempts == 0


def test_enqueue_splits_large_input_in_chunks_without_losing_any(r: redis.Redis, store: Store) -> None:
    """A request list larger than one script chunk, over many groups, is stored completely."""
    requests = [req(f"g{i % 37}", f"m{i}") for i in range(2_500)]
    requests.append(req("big", *(f"b{i}" for i in range(1_500))))
    result = store.enqueue(requests)
    assert result.ready == 4_000
    assert true_ready(r) == 4_000
    assert_gauge(r)


# -- cancel ------------------------------------------------------------------------------------


def test_cancel_removes_ready_and_scheduled(r: redis.Redis, store: Store) -> None:
    """cancel removes a ready and a scheduled request (and their flags) and reports how many."""
    store.enqueue([req("g", "ready", high=True), req("g", "later", at_ms=server_ms(r) + 60_000)])
    store.enqueue([req("g", "kept")])
    assert store.cancel("g", ["ready", "later", "absent"]) == 2
    assert r.zrange(KEYS.ready("g"), 0, -1) == ["kept"]
    assert true_scheduled(r) == 0
    assert not r.hexists(KEYS.high, request_id("g", "ready"))
    assert stat(r, "cancelled") == 2
    assert_gauge(r)


def test_cancel_of_last_ready_member_unindexes_group(r: redis.Redis, store: Store) -> None:
    """A group with nothing left ready leaves the groups index."""
    store.enqueue([req("g", "m")])
    store.cancel("g", ["m"])
    assert r.zscore(KEYS.groups, "g") is None
    assert store.claim("g") is None


def test_cancel_of_in_flight_request_revokes_it(r: redis.Redis, store: Store) -> None:
    """cancel ends a leased request too: lease, deadline and attempt count go; its late answer records nothing."""
    store.enqueue([req("g", "m")])
    store.requeue(claim_batch(store, "g"), delay_ms=0, code=10002)
    batch = claim_batch(store, "g")
    rid = request_id("g", "m")
    assert store.cancel("g", ["m"]) == 1
    assert (r.zscore(KEYS.inflight, rid), r.hget(KEYS.leases, rid), r.hget(KEYS.meta, rid)) == (None, None, None)
    assert stat(r, "cancelled") == 1
    assert store.ack(batch, "dead", code=10004, info="bad")[0] == 0
    assert r.hget(KEYS.dead_info, rid) is None


# -- claim -------------------------------------------------------------------------------------


def test_claim_takes_at_most_twenty_lowest_score_first(r: redis.Redis, store: Store) -> None:
    """A claim leases at most 20 members, oldest due first; the next claim takes the rest."""
    now = server_ms(r)
    order = [7, 3, 24, 0, 11, 19, 2, 22, 15, 5, 9, 1, 13, 21, 4, 17, 8, 23, 6, 12, 16, 10, 20, 14, 18]
    store.enqueue([req("g", f"m{i:02}", at_ms=now - 1_000 + i) for i in order])
    first = claim_batch(store, "g")
    assert first.members == [f"m{i:02}" for i in range(MAX_MEMBERS)]
    assert [item.due_ms for item in first.items] == [now - 1_000 + i for i in range(MAX_MEMBERS)]
    second = claim_batch(store, "g")
    assert second.members == [f"m{i:02}" for i in range(20, 25)]
    assert store.claim("g") is None
    assert_gauge(r)


def test_claim_respects_max_members(store: Store) -> None:
    """max_members caps the batch below 20 (bisection claims smaller batches)."""
    store.enqueue([req("g", *(f"m{i}" for i in range(10)))])
    assert len(claim_batch(store, "g", max_members=3).items) == 3


def test_claim_of_zero_members_keeps_the_group_indexed(r: redis.Redis, store: Store) -> None:
    """max_members below 1 still claims one member and never unindexes a group that has ready members."""
    store.enqueue([req("g", "a", "b")])
    assert claim_batch(store, "g", max_members=0).members == ["a"]
    assert r.zscore(KEYS.groups, "g") is not None
    assert claim_batch(store, "g").members == ["b"]


def test_claim_serves_high_priority_first(r: redis.Redis, store: Store) -> None:
    """High-priority members come out first, flagged high, with their real due time."""
    now = server_ms(r)
    store.enqueue([req("g", *(f"n{i}" for i in range(25)), at_ms=now - 60_000)])
    store.enqueue([req("g", "h1", at_ms=now - 2, high=True), req("g", "h2", at_ms=now - 1, high=True)])
    batch = claim_batch(store, "g")
    assert batch.members[:2] == ["h1", "h2"]
    assert [(i.high, i.due_ms) for i in batch.items[:2]] == [(True, now - 2), (True, now - 1)]
    assert not any(i.high for i in batch.items[2:])
    assert not r.hexists(KEYS.high, request_id("g", "h1"))
    assert r.hget(KEYS.leases, request_id("g", "h1")) == f"{batch.token}|{now - 2}|1"


def test_claim_next_stays_on_its_group_in_one_claim(r: redis.Redis, store: Store) -> None:
    """A run whose group has work claims it even when an older normal group waits (fairness as before)."""
    now = server_ms(r)
    store.enqueue([req("old", "a", at_ms=now - 60_000), req("mine", "b", at_ms=now - 1_000)])
    group, batch = store.claim_next("mine")
    assert group == "mine" and isinstance(batch, Batch) and batch.members == ["b"]


def test_claim_next_serves_a_high_priority_group_first(r: redis.Redis, store: Store) -> None:
    """A group holding a high-priority member is claimed before the run's own group."""
    store.enqueue([req("mine", *(f"u{i}" for i in range(30))), req("vip", "boss", high=True)])
    group, batch = store.claim_next("mine")
    assert group == "vip" and isinstance(batch, Batch) and batch.members == ["boss"]
    group, batch = store.claim_next("mine")
    assert group == "mine" and isinstance(batch, Batch) and len(batch.members) == MAX_MEMBERS


def test_claim_next_moves_on_to_the_oldest_claimable_group(r: redis.Redis, store: Store) -> None:
    """With nothing claimable in its own group, a run gets the oldest claimable one; never a lingering one."""
    now = server_ms(r)
    store.enqueue([req("b", "x", at_ms=now - 2_000), req("a", "y", at_ms=now - 5_000)])
    assert store.claim_next("empty")[0] == "a"
    assert store.claim_next("empty")[0] == "b"
    assert store.claim_next("empty") == ("empty", None)
    store.enqueue([req("later", "z")])
    r.zadd(KEYS.groups, {"later": server_ms(r) + LONG_LINGER_MS})  # as a lingering group is indexed
    assert store.claim_next("empty") == ("empty", None)
    assert r.zcard(KEYS.ready("later")) == 1


def test_claim_next_while_held_takes_nothing(r: redis.Redis, store: Store) -> None:
    store.enqueue([req("g", "a")])
    Hold(r, KEYS).set(60010, "test")
    assert store.claim_next("g") == ("g", HELD)
    assert r.zcard(KEYS.ready("g")) == 1


def set_pace(r: redis.Redis, use: float, interval_us: int) -> None:
    """Make the limiter look busy: a pace that reads as ``use`` of a limit of one call per ``interval_us``."""
    seconds, micros = r.time()
    count = use * PACE_TAU_S * 1_000_000 / interval_us
    r.hset(
        KEYS.stats, mapping={"pace_us": seconds * 1_000_000 + micros, "pace": count, "pace_interval_us": interval_us}
    )


def test_idle_limiter_lets_a_due_batch_go_at_once(r: redis.Redis) -> None:
    """No call made lately: a group of 3 is claimable at its oldest due time, whatever the bound."""
    store = Store(r, KEYS, linger=LingerPolicy(LONG_LINGER_MS))
    store.enqueue([req("g", "a", "b", "c")])
    oldest = int(min(score for _, score in r.zrange(KEYS.ready("g"), 0, -1, withscores=True)))
    assert r.zscore(KEYS.groups, "g") == oldest
    assert sorted(claim_batch(store, "g").members) == ["a", "b", "c"]


def test_busy_limiter_lingers_a_partial_group_one_round(r: redis.Redis) -> None:
    """Calls at the limit: a partial group waits the waiting groups x the interval after its oldest member."""
    store = Store(r, KEYS, linger=LingerPolicy(LONG_LINGER_MS))
    set_pace(r, 1.0, 5_264)
    store.enqueue([req("x", "a")])
    store.enqueue([req("y", "a")])
    store.enqueue([req("g", "a", "b")])
    oldest = int(r.zrange(KEYS.ready("g"), 0, 0, withscores=True)[0][1])
    # Two groups were waiting when g was indexed; the pace read a hair later still counts as "at the limit".
    assert r.zscore(KEYS.groups, "g") == oldest + linger_ms(1.0, 2, 5.264, LONG_LINGER_MS) == oldest + 10


def test_lingering_group_is_never_claimed_early(r: redis.Redis) -> None:
    """A group whose linger has not passed on the Redis clock gives no batch and stays indexed."""
    store = Store(r, KEYS, linger=LingerPolicy(LONG_LINGER_MS))
    set_pace(r, 1.0, 1_000_000)  # one call a second: a round of 2 waiting groups is 2 s
    store.enqueue([req("x", "a")])
    store.enqueue([req("y", "a")])
    store.enqueue([req("g", *(f"m{i}" for i in range(MAX_MEMBERS - 1)))])
    assert store.claim("g") is None
    assert [g for g, _ in store.claimable_groups(10)] == ["x"] or store.claimable_groups(10) == []
    assert r.zcard(KEYS.ready("g")) == MAX_MEMBERS - 1


def test_linger_bound_caps_the_wait(r: redis.Redis) -> None:
    """However many groups wait, a partial group waits at most the bound (IMUNBAN_LINGER_MS)."""
    store = Store(r, KEYS, linger=LingerPolicy(300))
    set_pace(r, 1.0, 1_000_000)
    store.enqueue([req("x", "a")])
    store.enqueue([req("g", "a", "b", "c", at_ms=server_ms(r) - 301)])
    assert r.zscore(KEYS.groups, "g") is not None
    assert store.claimable_groups(10)[0] == ("g", 3)
    assert len(claim_batch(store, "g").items) == 3


def test_full_batch_is_claimable_at_once(r: redis.Redis) -> None:
    """A group with >= 20 ready members ignores the linger: every call is full under backlog."""
    store = Store(r, KEYS, linger=LingerPolicy(LONG_LINGER_MS))
    set_pace(r, 1.0, 1_000_000)
    store.enqueue([req("g", *(f"m{i}" for i in range(MAX_MEMBERS + 5)))])
    assert store.claimable_groups(10) == [("g", MAX_MEMBERS + 5)]
    assert len(claim_batch(store, "g").items) == MAX_MEMBERS
    # The 5 left over linger (the limiter is busy).
    assert store.claim("g") is None


def test_high_member_makes_group_claimable_at_once(r: redis.Redis) -> None:
    """A single high-priority member is not held back by the linger."""
    store = Store(r, KEYS, linger=LingerPolicy(LONG_LINGER_MS))
    store.enqueue([req("g", "m", high=True)])
    assert claim_batch(store, "g").members == ["m"]


def test_probe_claim_ignores_linger_and_hold(r: redis.Redis) -> None:
    """A probe claims what is ready even while lingering and while delivery is held."""
    store = Store(r, KEYS, linger=LingerPolicy(LONG_LINGER_MS))
    store.enqueue([req("g", "a", "b")])
    Hold(r, KEYS).set(70009, "wrong key")
    assert store.claim("g") is HELD
    batch = claim_batch(store, "g", probe=True)
    assert sorted(batch.members) == ["a", "b"]
    assert_gauge(r)


def test_hold_blocks_every_claim(r: redis.Redis, store: Store) -> None:
    """While held, claim returns HELD and leases nothing; after release it claims again."""
    store.enqueue([req("g", *(f"m{i}" for i in range(30)))])
    hold = Hold(r, KEYS)
    hold.set(60020, "package expired")
    assert store.claim("g") is HELD
    assert r.zcard(KEYS.inflight) == 0 and r.zcard(KEYS.ready("g")) == 30
    hold.release()
    assert len(claim_batch(store, "g").items) == MAX_MEMBERS


def test_lease_deadline_is_claim_time_plus_lease(r: redis.Redis) -> None:
    """Each claimed member sits in inflight with deadline claimed_at + lease_ms and a lease record."""
    store = Store(r, KEYS, linger=LingerPolicy(0), lease_ms=12_345)
    due = server_ms(r) - 5
    store.enqueue([req("g", "a", "b", at_ms=due)])
    batch = claim_batch(store, "g")
    for member in ("a", "b"):
        rid = request_id("g", member)
        assert r.zscore(KEYS.inflight, rid) == batch.claimed_at_ms + 12_345
        assert r.hget(KEYS.leases, rid) == f"{batch.token}|{due}|0"
    assert r.zcard(KEYS.ready("g")) == 0
    assert r.zscore(KEYS.groups, "g") is None


def test_claim_unknown_group_is_none(store: Store) -> None:
    """Claiming a group with nothing ready returns None."""
    assert store.claim("nobody") is None


def test_concurrent_claims_never_share_a_member(r: redis.Redis, redis_url: str) -> None:
    """Eight threads claiming the same groups at once never lease one member twice, and lose none."""
    members = {(f"g{g}", f"m{i}") for g in range(3) for i in range(200)}
    Store(r, KEYS, linger=LingerPolicy(0)).enqueue([req(g, m) for g, m in sorted(members)])
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        store = Store(client, KEYS, linger=LingerPolicy(0))
        start.wait()
        idle = 0
        while idle < 3:
            got = [store.claim(f"g{g}", max_members=7) for g in range(3)]
            batches = [b for b in got if isinstance(b, Batch)]
            idle = 0 if batches else idle + 1
            with lock:
                seen.extend((b.group_id, m) for b in batches for m in b.members)
        client.close()

    run_in_threads(worker, 8)
    assert len(seen) == len(set(seen)) == len(members)
    assert set(seen) == members
    assert r.zcard(KEYS.inflight) == len(members)
    assert_gauge(r)


# -- ack ---------------------------------------------------------------------------------------


def test_ack_delivered_ends_lease_and_writes_outcome(r: redis.Redis, store: Store) -> None:
    """A delivered ack clears the lease and appends one outcome entry with the documented fields."""
    due = server_ms(r) - 50
    store.enqueue([req("g", "a", "b", at_ms=due)])
    batch = claim_batch(store, "g")
    acked, latencies = store.ack(batch, "delivered")
    assert acked == 2 and len(latencies) == 2 and all(lat >= 50 for lat in latencies)
    assert r.zcard(KEYS.inflight) == 0 and r.hlen(KEYS.leases) == 0
    entries = r.xrange(KEYS.outcomes)
    assert len(entries) == 2
    for (_, fields), member in zip(entries, ["a", "b"], strict=True):
        assert set(fields) == OUTCOME_FIELDS
        assert fields["group_id"] == "g" and fields["member"] == member
        assert fields["outcome"] == "delivered" and fields["code"] == "0" and fields["info"] == ""
        assert fields["attempts"] == "1" and int(fields["due_ms"]) == due
        assert int(fields["at_ms"]) >= batch.claimed_at_ms
    assert stat(r, "delivered") == 2


def test_ack_with_stale_token_does_not_end_the_new_lease(r: redis.Redis, sched: Scheduler) -> None:
    """After a lease is reaped and re-claimed, the old holder's ack is stale and the new lease stands."""
    short = Store(r, KEYS, linger=LingerPolicy(0), lease_ms=1)
    short.enqueue([req("g", "m")])
    old = claim_batch(short, "g")
    time.sleep(0.01)
    assert short.reap() == 1
    assert sched.promote_all() == 1
    store = Store(r, KEYS, linger=LingerPolicy(0), lease_ms=30_000)
    new = claim_batch(store, "g")
    assert new.token != old.token
    assert store.ack(old, "delivered") == (0, [])
    assert stat(r, "stale_acks") == 1 and stat(r, "delivered") == 0
    rid = request_id("g", "m")
    assert r.hget(KEYS.leases, rid) == f"{new.token}|{new.items[0].due_ms}|0"
    assert r.zscore(KEYS.inflight, rid) == new.claimed_at_ms + 30_000
    assert store.requeue(old, delay_ms=0) == 0
    assert r.zscore(KEYS.inflight, rid) is not None
    assert store.ack(new, "delivered")[0] == 1
    assert r.xlen(KEYS.outcomes) == 1


def test_dead_letter_carries_code_info_and_attempts(r: redis.Redis, store: Store) -> None:
    """Dead-lettering after two counted retries records code, info and 3 attempts, and the priority."""
    store.enqueue([req("g", "m", high=True)])
    for _ in range(2):
        store.requeue(claim_batch(store, "g"), delay_ms=0, code=10002)
    batch = claim_batch(store, "g")
    assert batch.items[0].attempts == 2
    assert store.ack(batch, "dead", code=70107, info="account not imported")[0] == 1
    rid = request_id("g", "m")
    info = json.loads(r.hget(KEYS.dead_info, rid) or "{}")
    assert (info["code"], info["info"], info["attempts"], info["high"]) == (70107, "account not imported", 3, True)
    assert r.zscore(KEYS.dead, rid) == info["at_ms"]
    assert not r.hexists(KEYS.meta, rid)
    ((_, fields),) = r.xrange(KEYS.outcomes)
    assert (fields["outcome"], fields["code"], fields["attempts"]) == ("dead", "70107", "3")
    assert stat(r, "dead") == 1


def test_ack_counts_each_outcome(r: redis.Redis, store: Store) -> None:
    """The stats hash counts delivered, dead and group_gone acks by member."""
    store.enqueue([req("a", "1", "2", "3"), req("b", "1"), req("c", "1", "2")])
    store.ack(claim_batch(store, "a"), "delivered")
    store.ack(claim_batch(store, "b"), "dead", code=10004, info="x")
    store.ack(claim_batch(store, "c"), "group_gone", code=10010, info="gone")
    assert (stat(r, "delivered"), stat(r, "dead"), stat(r, "group_gone")) == (3, 1, 2)
    assert r.zcard(KEYS.dead) == 1
    assert_gauge(r)


def test_ack_of_subset_leaves_the_rest_leased(r: redis.Redis, store: Store) -> None:
    """Acking part of a batch (after bisection) ends only those members."""
    store.enqueue([req("g", "a", "b", "c")])
    batch = claim_batch(store, "g")
    assert store.ack(batch.subset(["b"]), "dead", code=10004, info="bad")[0] == 1
    assert sorted(r.zrange(KEYS.inflight, 0, -1)) == [request_id("g", "a"), request_id("g", "c")]


# -- requeue -----------------------------------------------------------------------------------


def test_requeue_without_delay_is_ready_again_in_place(r: redis.Redis, store: Store) -> None:
    """delay 0 puts members back in ready with their original due score (they keep their turn)."""
    due = server_ms(r) - 100
    store.enqueue([req("g", "m", at_ms=due)])
    assert store.requeue(claim_batch(store, "g"), delay_ms=0) == 1
    assert r.zscore(KEYS.ready("g"), "m") == due
    assert r.zcard(KEYS.inflight) == 0 and r.hlen(KEYS.leases) == 0
    assert store.claimable_groups(5) == [("g", 1)]
    assert stat(r, "retried") == 1
    assert_gauge(r)


def test_requeue_with_delay_goes_to_the_schedule(r: redis.Redis, store: Store) -> None:
    """delay > 0 schedules the members at server now + delay, out of ready."""
    store.enqueue([req("g", "m")])
    before = server_ms(r)
    store.requeue(claim_batch(store, "g"), delay_ms=5_000)
    assert r.zcard(KEYS.ready("g")) == 0
    assert float(r.zscore(KEYS.sched_group("g"), "m") or 0) >= before + 5_000
    assert_gauge(r)


def test_requeue_high_priority_keeps_its_priority(r: redis.Redis, store: Store) -> None:
    """A requeued high member is high again, whether ready at once or scheduled."""
    store.enqueue([req("g", "a", "b", high=True)])
    batch = claim_batch(store, "g")
    store.requeue(batch.subset(["a"]), delay_ms=0)
    store.requeue(batch.subset(["b"]), delay_ms=60_000)
    assert float(r.zscore(KEYS.ready("g"), "a") or 0) < 0
    assert r.hget(KEYS.high, request_id("g", "b")) == "1"


def test_attempts_count_only_when_the_failure_counts(r: redis.Redis, store: Store) -> None:
    """Rate-limit and hold requeues cost no attempt; counted ones do, and record the last code."""
    store.enqueue([req("g", "m")])
    store.requeue(claim_batch(store, "g"), delay_ms=0, code=60011, counts_as_attempt=False)
    assert claim_batch_attempts(store) == 0
    store.requeue(claim_batch(store, "g"), delay_ms=0, code=10002, counts_as_attempt=True)
    assert claim_batch_attempts(store) == 1
    store.requeue(claim_batch(store, "g"), delay_ms=0, code=70500, counts_as_attempt=True)
    batch = claim_batch(store, "g")
    assert batch.items[0].attempts == 2
    attempts, first, code, *_ = (r.hget(KEYS.meta, request_id("g", "m")) or "").split("|")
    assert (attempts, code) == ("2", "70500") and int(first) > 0
    store.requeue(batch, delay_ms=0, code=60007, counts_as_attempt=False)
    assert claim_batch_attempts(store) == 2


def claim_batch_attempts(store: Store) -> int:
    batch = claim_batch(store, "g")
    store.requeue(batch, delay_ms=0, counts_as_attempt=False)
    return batch.items[0].attempts


def test_delayed_retry_keeps_the_original_due_time(r: redis.Redis, store: Store, sched: Scheduler) -> None:
    """After a delayed retry the claim reports the original due time, so age and latency count from it."""
    due = server_ms(r) - 1_000
    store.enqueue([req("g", "m", at_ms=due)])
    store.requeue(claim_batch(store, "g"), delay_ms=1, code=10002)
    wait_server_ms(r, server_ms(r) + 5)
    assert sched.promote_all() == 1
    batch = claim_batch(store, "g")
    assert batch.items[0].due_ms == due and batch.items[0].attempts == 1
    assert batch.claimed_at_ms - batch.items[0].due_ms >= 1_000
    _, latencies = store.ack(batch, "delivered")
    assert latencies[0] >= 1_000


def test_transport_failure_code_is_kept_through_a_delayed_retry(r: redis.Redis, store: Store) -> None:
    """A negative code (HTTP 502 as -502) round-trips through meta; attempts and due survive the retry."""
    due = server_ms(r) - 10
    store.enqueue([req("g", "m", at_ms=due)])
    store.requeue(claim_batch(store, "g"), delay_ms=1, code=-502)
    attempts, _, code, original = (r.hget(KEYS.meta, request_id("g", "m")) or "").split("|")
    assert (attempts, code, int(original)) == ("1", "-502", due)
    wait_server_ms(r, server_ms(r) + 5)
    Scheduler(r, KEYS, linger=LingerPolicy(0)).promote_all()
    item = claim_batch(store, "g").items[0]
    assert (item.attempts, item.due_ms) == (1, due)


def test_requeue_does_not_duplicate_a_request_reenqueued_in_flight(r: redis.Redis, store: Store) -> None:
    """A request enqueued again while leased keeps the newer instruction; requeue adds no second copy."""
    store.enqueue([req("g", "a", "b")])
    batch = claim_batch(store, "g")
    later = server_ms(r) + 3_600_000
    store.enqueue([req("g", "a", at_ms=later), req("g", "b")])
    assert store.requeue(batch, delay_ms=0, code=10002) == 0
    assert r.zscore(KEYS.sched_group("g"), "a") == later
    assert r.zscore(KEYS.ready("g"), "a") is None
    assert r.zrange(KEYS.ready("g"), 0, -1) == ["b"]
    assert not r.hexists(KEYS.meta, request_id("g", "b"))
    assert r.zcard(KEYS.inflight) == 0
    assert_gauge(r)


def test_delivered_ack_leaves_a_copy_reenqueued_in_flight(r: redis.Redis, store: Store) -> None:
    """Acking the old lease does not remove the newer pending instruction for the same request."""
    store.enqueue([req("g", "m")])
    batch = claim_batch(store, "g")
    store.enqueue([req("g", "m")])
    store.ack(batch, "delivered")
    assert r.zrange(KEYS.ready("g"), 0, -1) == ["m"]
    assert_gauge(r)


# -- group gone --------------------------------------------------------------------------------


def test_end_group_ends_every_pending_member_as_group_gone(r: redis.Redis, store: Store) -> None:
    """end_group records group_gone for every ready and scheduled member, clears the group, keeps the gauges."""
    now = server_ms(r)
    store.enqueue([req("g", *(f"m{i}" for i in range(30))), req("g", "h", high=True)])
    store.enqueue([req("g", "later", at_ms=now + 60_000), req("other", "x"), req("other", "y", at_ms=now + 60_000)])
    batch = claim_batch(store, "g")
    assert store.ack(batch, "group_gone", code=10010, info="gone")[0] == MAX_MEMBERS
    assert store.end_group("g", code=10010, info="gone") == 12
    assert r.exists(KEYS.ready("g")) == 0 and r.exists(KEYS.sched_group("g")) == 0
    assert r.zscore(KEYS.groups, "g") is None
    assert r.zscore(KEYS.schedidx, "g") is None
    assert not r.hexists(KEYS.high, request_id("g", "h"))
    assert r.zscore(KEYS.sched_group("other"), "y") == now + 60_000  # other groups are untouched
    assert r.zscore(KEYS.ready("other"), "x") is not None
    outcomes = [fields for _, fields in r.xrange(KEYS.outcomes)]
    assert len(outcomes) == 32
    assert all(set(f) == OUTCOME_FIELDS and f["outcome"] == "group_gone" for f in outcomes)
    assert all(int(f["due_ms"]) > 0 for f in outcomes)
    assert [int(f["due_ms"]) for f in outcomes if f["member"] == "later"] == [now + 60_000]
    assert stat(r, "group_gone") == 32
    assert_gauge(r)


# -- the ready gauge ---------------------------------------------------------------------------


def test_ready_gauge_stays_exact_through_every_operation(r: redis.Redis, store: Store, sched: Scheduler) -> None:
    """The `ready` gauge equals the true sum of ready sets after each enqueue/cancel/claim/requeue/..."""
    steps = 0

    def check() -> None:
        nonlocal steps
        steps += 1
        assert_gauge(r)

    now = server_ms(r)
    store.enqueue([req(f"g{i}", *(f"m{j}" for j in range(25))) for i in range(4)])
    check()
    store.enqueue([req("g0", "m1", "m2", at_ms=now + 300), req("g1", "new", high=True)])
    check()
    store.enqueue([req("g2", "m3", "s1", "s2", at_ms=now + 300)])
    check()
    store.cancel("g0", ["m3", "m4", "s1", "none"])
    check()
    b0 = claim_batch(store, "g0")
    check()
    b1 = claim_batch(store, "g1")
    check()
    store.requeue(b0, delay_ms=0)
    check()
    store.requeue(b1.subset(b1.members[:5]), delay_ms=20)
    check()
    store.ack(b1.subset(b1.members[5:]), "delivered")
    check()
    store.enqueue([req("g1", b1.members[0])])
    check()
    wait_server_ms(r, now + 300)
    sched.promote_all()
    assert true_scheduled(r) == 0
    check()
    store.end_group("g3", code=10010, info="gone")
    check()
    b2 = claim_batch(store, "g2")
    store.enqueue([req("g2", b2.members[0])])
    store.requeue(b2, delay_ms=0)
    check()
    store.cancel("g2", b2.members)
    check()
    assert steps == 14


def test_group_gone_also_ends_members_scheduled_far_ahead(store: Store, r: redis.Redis) -> None:
    """10010 ends the group's ready and far-future scheduled members as group_gone; other groups keep theirs."""
    far = server_ms(r) + 180 * 86_400_000  # six months ahead
    store.enqueue([req("g", "a", "b"), req("g", "c", "d", at_ms=far), req("other", "e", at_ms=far)])
    assert store.end_group("g", code=10010, info="group gone") == 4
    ended = {f["member"]: f for _, f in r.xrange(KEYS.outcomes)}
    assert set(ended) == {"a", "b", "c", "d"} and {f["outcome"] for f in ended.values()} == {"group_gone"}
    assert int(ended["c"]["due_ms"]) == far
    assert r.zcard(KEYS.sched_group("g")) == 0 and r.zscore(KEYS.schedidx, "g") is None
    assert r.zscore(KEYS.sched_group("other"), "e") == far


def test_claim_next_spreads_runs_over_the_oldest_claimable_groups(r: redis.Redis, store: Store) -> None:
    """A run that moves on takes the pick-th (modulo) of the spread oldest claimable groups; never a lingering one."""
    now = server_ms(r)
    store.enqueue([req(g, "x", at_ms=now - 5_000 + i) for i, g in enumerate("abcd")])
    store.enqueue([req("later", "z")])
    r.zadd(KEYS.groups, {"later": server_ms(r) + LONG_LINGER_MS})  # as a lingering group is indexed
    assert store.claim_next("empty", spread=3, pick=1)[0] == "b"
    assert store.claim_next("empty", spread=3, pick=5)[0] == "d"  # a, c, d claimable among the 3 oldest: 5 % 3
    assert store.claim_next("empty", spread=10, pick=0)[0] == "a"
    assert store.claim_next("empty", spread=10, pick=7)[0] == "c"  # only c is claimable: the lingering one never
    assert store.claim_next("empty", spread=10, pick=7) == ("empty", None)


def test_claim_next_spread_still_serves_high_priority_first(r: redis.Redis, store: Store) -> None:
    """Whatever the pick, a group holding a high-priority member goes before the others."""
    now = server_ms(r)
    store.enqueue([req(g, "x", at_ms=now - 5_000) for g in "abc"] + [req("vip", "boss", high=True)])
    assert store.claim_next("empty", spread=16, pick=2)[0] == "vip"
