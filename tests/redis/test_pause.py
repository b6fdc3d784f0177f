"""An operator's pause on a real Redis: nothing is sent while paused, the backlog stays, resume wakes a pump,
and both are audited in the outcome stream in the console's fields."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import redis

from helpers import KEYS, fill_redis, req
from imunban.delivery import Deliverer
from imunban.errors import RedisFullError, ValidationError
from imunban.hold import Hold
from imunban.limiter import LeaseCheck, RedisRateLimiter
from imunban.pause import Actor, Pause
from imunban.pump import Pump
from imunban.report import Report
from imunban.retry import RetryPolicy
from imunban.schedule import Scheduler
from imunban.settings import LingerPolicy, Settings
from imunban.stats import status
from imunban.store import HELD, Batch, Store
from imunban.trace import trace
from imunban.web import actions
from imunban.web.auth import Principal

CLI = Actor("cli", "cli", "alice@ops1")


class CountingApi:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def unban(self, group_id: str, members: Sequence[str]) -> None:
        self.calls.append((group_id, tuple(members)))

    def renew_sig(self) -> None:
        pass


def audits(r: redis.Redis) -> list[dict[str, str]]:
    return [fields for _, fields in r.xrange(KEYS.outcomes) if fields["outcome"] == "audit"]


def make_pump(r: redis.Redis, store: Store) -> tuple[Pump, list[tuple[str, int, bool]]]:
    submitted: list[tuple[str, int, bool]] = []
    pump = Pump(
        r, KEYS, store, Scheduler(r, KEYS, linger=LingerPolicy(0)), Hold(r, KEYS),
        lambda a, g, s, p: submitted.append((g, s, p)),
    )  # fmt: skip
    return pump, submitted


def test_pause_records_who_and_why_and_audits_it(r: redis.Redis) -> None:
    """Pausing stores the reason, since_ms and who; a second pause keeps since_ms; each is one audit entry."""
    pause = Pause(r, KEYS)
    assert pause.pause("DB migration", CLI) is True
    first = pause.get()
    assert first is not None and (first.reason, first.by) == ("DB migration", "cli alice@ops1")
    assert pause.pause("  DB   migration, part 2 ", Actor("operator", "session", "10.0.0.7")) is False
    second = pause.get()
    assert second is not None and second.since_ms == first.since_ms and second.reason == "DB migration, part 2"
    entries = audits(r)
    assert [(e["action"], e["count"], e["role"], e["via"], e["client"]) for e in entries] == [
        ("pause", "1", "cli", "cli", "alice@ops1"),
        ("pause", "0", "operator", "session", "10.0.0.7"),
    ]
    assert entries[0]["info"] == "DB migration" and entries[0]["app"] == KEYS.app


def test_the_audit_entry_has_exactly_the_console_actions_fields(r: redis.Redis) -> None:
    """A pause's audit entry (written by pause.lua) has the same fields as the console's actions.audit."""
    Pause(r, KEYS).pause("x", CLI)

    class Ctx:  # what actions.audit reads of an AppContext
        client, keys, settings = r, KEYS, Settings()

    actions.audit(Ctx(), Principal("operator", "bearer"), "probe", 1, "detail", "127.0.0.1")  # type: ignore[arg-type]
    pause_entry, console_entry = audits(r)
    assert set(pause_entry) == set(console_entry)


def test_a_reason_is_required_short_and_printable() -> None:
    """An empty, over-long or unprintable reason is refused naming the field; nothing is stored."""
    with pytest.raises(ValidationError, match="reason"):
        Pause(redis.Redis(), KEYS).pause("   ", CLI)
    with pytest.raises(ValidationError, match="at most 200"):
        Pause(redis.Redis(), KEYS).pause("x" * 201, CLI)


def test_while_paused_nothing_is_claimed_dispatched_or_reserved(r: redis.Redis, store: Store) -> None:
    """Claim (a probe's too), dispatch and a delivery's reservation all refuse; the backlog is untouched."""
    store.enqueue([req("g", "a", "b")])
    Pause(r, KEYS).pause("stop", CLI)
    assert store.claim("g") is HELD
    assert store.claim("g", probe=True) is HELD
    pump, submitted = make_pump(r, store)
    assert pump.dispatch() == 0 and submitted == []
    assert status(r, KEYS)["queued"] == 2
    limiter = RedisRateLimiter(r, KEYS, 1, 1000.0, sleep=lambda s: None)
    grant = limiter.acquire(LeaseCheck("g", "token", ("a",), 30_000, probe=True))
    assert grant.held and grant.live_members == ()
    assert r.get(KEYS.limiter(1)) is None  # no slot was taken
    assert limiter.acquire().held is False  # a reservation without a lease check is not a delivery run


def test_the_pump_neither_dispatches_nor_probes_while_paused(r: redis.Redis, store: Store) -> None:
    """A paused and held app: the pump ticks (promote, reap) but submits no run and no probe."""
    store.enqueue([req("g", "a")])
    Hold(r, KEYS).set(60010, "bad")
    r.hset(KEYS.hold, "next_probe_ms", 0)
    Pause(r, KEYS).pause("stop", CLI)
    pump, submitted = make_pump(r, store)
    assert pump.tick() == 0 and submitted == []
    assert int(r.hget(KEYS.hold, "probes") or 0) == 0  # no probe turn was taken


def test_a_batch_claimed_before_the_pause_is_not_sent_and_costs_no_attempt(r: redis.Redis, store: Store) -> None:
    """The pause lands between claim and call: the reservation refuses, the batch goes back due now, attempts 0."""
    store.enqueue([req("g", "a", "b")])
    batch = store.claim("g")
    assert isinstance(batch, Batch)
    Pause(r, KEYS).pause("stop", CLI)
    api = CountingApi()
    limiter = RedisRateLimiter(r, KEYS, 1, 1000.0, sleep=lambda s: None)
    deliverer = Deliverer(store, limiter, api, Hold(r, KEYS), policy=RetryPolicy.from_settings(Settings()))
    report = Report()
    deliverer.deliver_batch(batch, report)
    assert api.calls == [] and report.held
    assert trace(r, KEYS, "g", "a")["attempts"] == 0
    assert status(r, KEYS)["in_flight"] == 0


def test_resume_wakes_a_pump_keeps_the_pause_in_history_and_audits(r: redis.Redis, store: Store) -> None:
    """Resume ends the pause, leaves a wake token (a waiting pump returns at once), adds a code-0 hold to the
    history (time paused does not count toward max age) and is audited; a second resume changes nothing."""
    store.enqueue([req("g", "a")])
    pause = Pause(r, KEYS)
    pause.pause("maintenance", CLI)
    r.delete(KEYS.wake)  # the enqueue's own token: the one that counts is resume's
    pump, submitted = make_pump(r, store)
    pump.tick()
    ended = pause.resume(Actor("operator", "session", "10.0.0.7"))
    assert ended is not None and ended.reason == "maintenance" and ended.end_ms >= ended.since_ms
    assert pause.get() is None
    assert pump.wait(5.0) == 0.0  # woken by resume, not timed out
    pump.tick()
    assert submitted == [("g", 0, False)]
    history = Hold(r, KEYS).history()
    assert [(h.code, h.info) for h in history] == [(0, "paused: maintenance")]
    assert Hold(r, KEYS).intervals_since(0) == [(ended.since_ms, ended.end_ms)]
    assert pause.resume(CLI) is None
    assert [(e["action"], e["count"]) for e in audits(r)] == [("pause", "1"), ("resume", "1"), ("resume", "0")]


def test_pause_and_resume_work_on_a_full_redis(r: redis.Redis, store: Store) -> None:
    """At maxmemory an operator can still pause and resume (a few bytes), while intake stays refused."""
    fill_redis(r)
    try:
        pause = Pause(r, KEYS)
        assert pause.pause("Redis is full, investigating", CLI)
        with pytest.raises(RedisFullError):
            store.enqueue([req("g", "a")])
        assert pause.resume(CLI) is not None
    finally:
        r.config_set("maxmemory", 0)
    assert [e["action"] for e in audits(r)] == ["pause", "resume"]


def test_hold_active_is_true_while_paused(r: redis.Redis) -> None:
    """The hold's EXISTS (asked by a delivery with an in-memory limiter) sees a pause as well."""
    hold = Hold(r, KEYS)
    assert not hold.active()
    Pause(r, KEYS).pause("x", CLI)
    assert hold.active()


def test_a_claim_records_when_it_leased_something(r: redis.Redis, store: Store) -> None:
    """claim.lua writes last_claim_ms when it leases a batch, and not when there is nothing to claim."""
    assert store.claim("g") is None
    assert r.hget(KEYS.stats, "last_claim_ms") is None
    store.enqueue([req("g", "a")])
    assert isinstance(store.claim("g"), Batch)
    claimed = int(r.hget(KEYS.stats, "last_claim_ms") or 0)
    assert abs(claimed - int(r.time()[0]) * 1000) < 5_000
