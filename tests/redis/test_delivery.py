"""The Deliverer against a real Redis, with a scripted fake API: every error class does the right thing."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import pytest
import redis

from imunban.classify import classify
from imunban.delivery import CLAIM_SPREAD, Deliverer
from imunban.errors import TransportError
from imunban.hold import Hold
from imunban.keys import Keys
from imunban.limiter import Grant, LeaseCheck, MemoryRateLimiter
from imunban.retry import RetryPolicy
from imunban.schedule import Scheduler
from imunban.settings import LingerPolicy, Settings
from imunban.stats import status
from imunban.store import Batch, Store
from imunban.validation import build_request

Answer = Callable[[str, Sequence[str]], int]


class FakeApi:
    """Answers each call with the ErrorCode ``answer(group, members)`` returns; records calls."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.answer: Answer = answer or (lambda g, m: 0)
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.renewals = 0

    def unban(self, group_id: str, members: Sequence[str]) -> None:
        self.calls.append((group_id, tuple(members)))
        code = self.answer(group_id, members)
        error = classify(code, f"code {code}")
        if error is not None:
            raise error

    def renew_sig(self) -> None:
        self.renewals += 1


class Limiter(MemoryRateLimiter):
    """A limiter that never sleeps and counts penalties."""

    def __init__(self) -> None:
        super().__init__(1e9, sleep=lambda s: None)
        self.penalties = 0

    def penalize(self, penalty_ms: int = 1000) -> None:
        self.penalties += 1


@pytest.fixture
def keys() -> Keys:
    return Keys("t")


DEFAULT_POLICY = RetryPolicy.from_settings(Settings())


def make(store: Store, api: FakeApi, jitter: float = 0.0, **policy: int) -> tuple[Deliverer, Limiter]:
    """A Deliverer on ``store``; ``jitter`` 0 makes every retry due at once, 1 the full backoff."""
    limiter = Limiter()
    hold = Hold(store.client, store.keys)
    deliverer = Deliverer(
        store,
        limiter,
        api,
        hold,
        policy=dataclasses.replace(DEFAULT_POLICY, **policy),
        rand=lambda: jitter,
        pick=lambda n: 0,  # a run that moves on takes the oldest claimable group (the spread's first)
    )
    return deliverer, limiter


def enqueue(store: Store, group: str, members: Sequence[str]) -> None:
    store.enqueue([build_request(group, list(members))])


def test_success_acks_batches_of_twenty(store: Store) -> None:
    """45 ready members go out as 20 + 20 + 5 and all end delivered."""
    api = FakeApi()
    deliverer, _ = make(store, api)
    enqueue(store, "g", [f"u{i}" for i in range(45)])
    report = deliverer.deliver_group("g")
    assert [len(m) for _, m in api.calls] == [20, 20, 5]
    assert report.delivered == 45
    assert status(store.client, store.keys)["delivered"] == 45


def test_rate_limited_requeues_without_attempt_and_penalizes(store: Store) -> None:
    """60007 pushes the shared limiter back and requeues at once without spending an attempt."""
    answers = iter([60007, 0])
    api = FakeApi(lambda g, m: next(answers))
    deliverer, limiter = make(store, api)
    enqueue(store, "g", ["a"])
    report = deliverer.deliver_group("g")
    assert limiter.penalties == 1
    assert report.delivered == 1
    assert len(api.calls) == 2


def test_transient_error_retries_with_attempts(store: Store, r: redis.Redis, keys: Keys) -> None:
    """10002 hands members back with an attempt counted and they are delivered on the next try."""
    answers = iter([10002])
    api = FakeApi(lambda g, m: next(answers, 0))
    deliverer, _ = make(store, api)
    enqueue(store, "g", ["a", "b"])
    report = deliverer.deliver_group("g")  # zero jitter: the retry is ready at once
    assert report.retried == 2 and report.delivered == 2
    assert [fields["attempts"] for _, fields in r.xrange(keys.outcomes)] == ["2", "2"]


def test_backoff_delay_goes_through_the_schedule(store: Store, r: redis.Redis, keys: Keys) -> None:
    """With a real backoff delay the retry waits in the schedule, not in the ready set."""
    api = FakeApi(lambda g, m: 10002)
    deliverer, _ = make(store, api, jitter=1.0)  # the full backoff: 1 s base for the first retry
    enqueue(store, "g", ["a"])
    deliverer.deliver_group("g")
    info = status(r, keys)
    assert info["scheduled"] == 1 and info["queued"] == 0
    assert int(r.hget(keys.meta, "g\x1fa").split("|")[0]) == 1


def test_attempts_exhausted_dead_letters_with_last_code(store: Store, r: redis.Redis, keys: Keys) -> None:
    """An unknown code is retried max_attempts times, then dead-lettered with that code."""
    api = FakeApi(lambda g, m: 12345)
    deliverer, _ = make(store, api, max_attempts=3)
    enqueue(store, "g", ["a"])
    scheduler = Scheduler(r, keys, linger=LingerPolicy(0))
    for _ in range(3):
        deliverer.deliver_group("g")
        scheduler.promote_all()
    assert len(api.calls) == 3
    info = status(r, keys)
    assert info["dead"] == 1 and info["queued"] == 0
    fields = r.xrange(keys.outcomes)[-1][1]
    assert (fields["outcome"], fields["code"], fields["attempts"]) == ("dead", "12345", "3")


def test_renew_then_retry_once(store: Store) -> None:
    """70001 renews the UserSig and retries the same batch once."""
    answers = iter([70001, 0])
    api = FakeApi(lambda g, m: next(answers))
    deliverer, _ = make(store, api)
    enqueue(store, "g", ["a"])
    assert deliverer.deliver_group("g").delivered == 1
    assert api.renewals == 1


def test_renew_failing_twice_holds(store: Store, r: redis.Redis, keys: Keys) -> None:
    """70001 again after renewal is a configuration problem: hold, nothing dead-lettered."""
    api = FakeApi(lambda g, m: 70001)
    deliverer, _ = make(store, api)
    enqueue(store, "g", ["a"])
    report = deliverer.deliver_group("g")
    assert report.held
    info = status(r, keys)
    assert info["hold"]["code"] == 70001
    assert info["dead"] == 0 and info["queued"] == 1


def test_global_error_holds_and_probe_releases(store: Store, r: redis.Redis, keys: Keys) -> None:
    """70009 holds delivery; claims stop; a successful probe releases the hold and delivers."""
    code = {"now": 70009}
    api = FakeApi(lambda g, m: code["now"])
    deliverer, _ = make(store, api)
    enqueue(store, "g", ["a", "b"])
    enqueue(store, "h", ["c"])
    assert deliverer.deliver_group("g").held
    assert deliverer.deliver_group("h").held  # claims refuse while held
    assert len(api.calls) == 1
    code["now"] = 0
    probe = deliverer.deliver_group("g", probe=True)
    assert probe.delivered == 2
    assert status(r, keys)["hold"] is None
    assert deliverer.deliver_group("h").delivered == 1


def test_probe_failing_transiently_keeps_hold(store: Store, r: redis.Redis, keys: Keys) -> None:
    """A probe that meets a 502-like failure proves nothing: the hold stays, the batch is retried as usual."""
    Hold(r, keys).set(60006, "SDKAppID invalid")
    api = FakeApi(lambda g, m: 10002)
    deliverer, _ = make(store, api)
    enqueue(store, "g", ["a"])
    assert deliverer.deliver_group("g", probe=True).retried == 1
    info = status(r, keys)
    assert info["hold"] is not None
    assert info["queued"] == 1
    assert r.hget(keys.meta, "g\x1fa").startswith("1|")  # type: ignore[union-attr]  # its attempt counts


def test_10007_without_a_recent_success_elsewhere_holds(store: Store, r: redis.Redis, keys: Keys) -> None:
    """10007 when no other group was delivered to lately is global: the first one holds, nothing is retried."""
    api = FakeApi(lambda g, m: 10007)
    deliverer, _ = make(store, api, jitter=1.0)
    for g in ("g1", "g2", "g3"):
        enqueue(store, g, ["a"])
    report = deliverer.deliver_group("g1")
    assert [g for g, _ in api.calls] == ["g1"]
    assert report.retried == 0 and report.held
    info = status(r, keys)
    assert info["hold"]["code"] == 10007
    assert info["dead"] == 0


def test_run_moves_on_to_oldest_waiting_group(store: Store) -> None:
    """When its own group is empty a run serves the oldest waiting group instead of ending."""
    api = FakeApi()
    deliverer, _ = make(store, api)
    for g in ("a", "b", "c"):
        enqueue(store, g, ["m1", "m2"])
    report = deliverer.deliver_group("b")
    assert [g for g, _ in api.calls] == ["b", "a", "c"]
    assert report.delivered == 6


def test_run_moves_on_to_the_picked_one_of_the_oldest_groups(store: Store) -> None:
    """A run that moves on asks for a pick among CLAIM_SPREAD groups and goes to that one of the oldest claimable."""
    api = FakeApi()
    asked: list[int] = []

    def second(n: int) -> int:
        asked.append(n)
        return 1

    deliverer = Deliverer(store, Limiter(), api, Hold(store.client, store.keys), pick=second)
    for g in ("a", "b", "c", "d"):
        enqueue(store, g, ["m1"])
    deliverer.deliver_group("none")
    assert [g for g, _ in api.calls] == ["b", "c", "d", "a"]  # the 2nd oldest claimable each time; a is left
    assert set(asked) == {CLAIM_SPREAD}


def test_poison_member_isolated_by_bisection(store: Store, r: redis.Redis, keys: Keys) -> None:
    """A 10004 batch of 20 is bisected: 19 delivered, the poison member dead with 10004."""
    api = FakeApi(lambda g, m: 10004 if "bad" in m else 0)
    deliverer, _ = make(store, api)
    enqueue(store, "g", [f"u{i}" for i in range(19)] + ["bad"])
    report = deliverer.deliver_group("g")
    assert report.delivered == 19 and report.dead == 1
    assert len(api.calls) <= 1 + 2 * 5  # one split level per halving of 20
    dead = r.hget(keys.dead_info, "g\x1fbad")
    assert dead is not None and '"code":10004' in dead.replace(" ", "")


def test_hold_during_second_half_of_bisection_requeues_nothing_twice(store: Store, r: redis.Redis, keys: Keys) -> None:
    """A hold that arrives in the second half of a bisection leaves the finished first half alone."""
    answers = iter([10004, 0, 60010])  # the whole batch, its first half, its second half
    api = FakeApi(lambda g, m: next(answers))
    deliverer, _ = make(store, api)
    enqueue(store, "g", ["a", "b", "c", "d"])
    report = deliverer.deliver_group("g")
    assert report.held and report.delivered == 2
    assert int(r.hget(keys.stats, "stale_acks") or 0) == 0
    info = status(r, keys)
    assert info["in_flight"] == 0 and info["queued"] + info["scheduled"] == 2


def test_group_gone_ends_every_ready_member(store: Store, r: redis.Redis, keys: Keys) -> None:
    """10010 ends the claimed batch and every other ready member of the group as group_gone."""
    api = FakeApi(lambda g, m: 10010)
    deliverer, _ = make(store, api)
    enqueue(store, "g", [f"u{i}" for i in range(30)])
    report = deliverer.deliver_group("g")
    assert report.group_gone == 30
    assert len(api.calls) == 1
    info = status(r, keys)
    assert info["group_gone"] == 30 and info["queued"] == 0 and info["dead"] == 0


def test_permanent_error_dead_letters_whole_batch(store: Store, r: redis.Redis, keys: Keys) -> None:
    """60015 (account type) is permanent for the request: dead-lettered, not retried."""
    api = FakeApi(lambda g, m: 60015)
    deliverer, _ = make(store, api)
    enqueue(store, "g", ["a", "b"])
    assert deliverer.deliver_group("g").dead == 2
    assert len(api.calls) == 1


def test_high_priority_group_served_first(store: Store) -> None:
    """A running delivery serves a group holding a high-priority member before its own next batch."""
    api = FakeApi()
    deliverer, _ = make(store, api)
    enqueue(store, "big", [f"u{i}" for i in range(60)])
    store.enqueue([build_request("vip", ["boss"], priority="high")])
    deliverer.deliver_group("big")
    assert api.calls[0] == ("vip", ("boss",))
    assert sum(len(m) for g, m in api.calls if g == "big") == 60


def test_budget_stops_the_run(store: Store) -> None:
    """A run hands its thread back when the budget is spent; the rest stays ready."""
    api = FakeApi()
    deliverer, _ = make(store, api)
    enqueue(store, "g", [f"u{i}" for i in range(100)])
    report = deliverer.deliver_group("g", budget_s=0.0)
    assert report.batches == 1
    assert status(store.client, store.keys)["queued"] == 80


def test_stale_lease_ack_is_counted_not_applied(store: Store, r: redis.Redis, keys: Keys) -> None:
    """An ack after the lease was reaped and re-claimed does not end the new lease."""
    short = Store(r, keys, linger=LingerPolicy(0), lease_ms=1)
    enqueue(short, "g", ["a"])
    old = short.claim("g")
    assert isinstance(old, Batch)
    time.sleep(0.01)
    Store(r, keys, linger=LingerPolicy(0)).reap()
    Scheduler(r, keys, linger=LingerPolicy(0)).promote_all()
    new = store.claim("g")
    assert new is not None
    acked, _ = short.ack(old, "delivered")
    assert acked == 0
    assert status(r, keys)["in_flight"] == 1


def test_api_error_codes_reach_report(store: Store) -> None:
    """The report counts calls by ErrorCode, with every transport failure (here HTTP 502) as "transport"."""
    answers = iter([10002, -1, 0])

    class Api(FakeApi):
        def unban(self, group_id: str, members: Sequence[str]) -> None:
            self.calls.append((group_id, tuple(members)))
            code = next(answers)
            if code == -1:
                raise TransportError(0, "HTTP 502", http_status=502)
            error = classify(code, "")
            if error is not None:
                raise error

    deliverer, _ = make(store, Api())
    enqueue(store, "g", ["a"])
    report = deliverer.deliver_group("g")
    assert report.codes == {"10002": 1, "transport": 1, "0": 1}
    assert report.delivered == 1


def test_an_internal_error_counts_as_internal(store: Store) -> None:
    """An exception of our own around the call counts as "internal", not as an ErrorCode or a transport failure."""

    class Api(FakeApi):
        def unban(self, group_id: str, members: Sequence[str]) -> None:
            raise KeyError("a bug")

    deliverer, _ = make(store, Api())
    enqueue(store, "g", ["a"])
    assert set(deliverer.deliver_group("g").codes) == {"internal"}


def test_log_lines_carry_app_group_and_code(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """A dead letter's and a retry's log records carry app, group_id and code (fields of a JSON line)."""
    deliverer, _ = make(store, FakeApi(lambda g, m: 10004 if g == "bad" else 10002), max_attempts=5)
    enqueue(store, "bad", ["x"])
    enqueue(store, "slow", ["y"])
    with caplog.at_level("INFO", logger="imunban.delivery"):
        deliverer.deliver_group("bad")
        deliverer.deliver_group("slow")
    fields = {(r.__dict__.get("app"), r.__dict__.get("group_id"), r.__dict__.get("code")) for r in caplog.records}
    assert ("default", "bad", 10004) in fields
    assert ("default", "slow", 10002) in fields


def test_hold_set_while_waiting_for_slot_skips_the_call(store: Store, r: redis.Redis, keys: Keys) -> None:
    """A batch whose slot comes after another worker set the hold is handed back uncalled."""
    api = FakeApi()
    deliverer, limiter = make(store, api)

    def acquire(check: LeaseCheck | None = None) -> Grant:
        Hold(r, keys).set(60006, "SDKAppID invalid")  # another worker, meanwhile
        return Grant(0.0)

    limiter.acquire = acquire  # type: ignore[method-assign]
    enqueue(store, "g", ["a", "b"])
    report = deliverer.deliver_group("g")
    assert report.held and api.calls == []
    info = status(r, keys)
    assert info["queued"] == 2 and info["dead"] == 0
    assert r.hget(keys.meta, "g\x1fa") is None  # no attempt spent
