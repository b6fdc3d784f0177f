"""The Deliverer with the real Redis limiter: a copy whose lease is gone is never sent; leases renew; bugs retry.

The lease check lives in the limiter reservation (``limiter_reserve.lua``), so these tests use
:class:`RedisRateLimiter` rather than the in-memory twin, which cannot see leases. A cancel or a
newer instruction revokes an in-flight copy by removing its lease record; the tests do that directly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence

import pytest
import redis
import urllib3
from urllib3.exceptions import NewConnectionError

from helpers import server_ms
from imunban.api import ApiClient
from imunban.apps import AppConfig
from imunban.delivery import Deliverer
from imunban.hold import Hold
from imunban.keys import Keys, request_id
from imunban.limiter import RedisRateLimiter
from imunban.retry import RetryPolicy
from imunban.schedule import Scheduler
from imunban.secret import Secret
from imunban.settings import LingerPolicy, Settings
from imunban.stats import status
from imunban.store import Batch, Store
from imunban.validation import build_request

APP = 1400000000
#: Fast enough that the limiter's own spacing never matters here; only penalties make callers wait.
RATE = 1_000.0
POLICY = RetryPolicy.from_settings(Settings())


@pytest.fixture
def keys() -> Keys:
    return Keys("t")  # the prefix of the ``store`` fixture


class FakeApi:
    """Answers 0 (or raises what ``fail`` returns); records each call and what ``spy`` saw during it."""

    def __init__(self, fail: Callable[[], Exception | None] = lambda: None, spy: Callable[[], object] = lambda: None):
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.seen: list[object] = []
        self._fail = fail
        self._spy = spy

    def unban(self, group_id: str, members: Sequence[str]) -> None:
        self.calls.append((group_id, tuple(members)))
        self.seen.append(self._spy())
        error = self._fail()
        if error is not None:
            raise error

    def renew_sig(self) -> None:
        pass


def deliverer(store: Store, api: FakeApi, sleep: Callable[[float], None] = time.sleep, **policy: int) -> Deliverer:
    limiter = RedisRateLimiter(store.client, store.keys, APP, RATE, sleep=sleep)
    return Deliverer(
        store,
        limiter,
        api,
        Hold(store.client, store.keys),
        policy=dataclasses.replace(POLICY, **policy),
        rand=lambda: 0.0,
    )


def revoke(r: redis.Redis, keys: Keys, group: str, member: str) -> None:
    """What a cancel or a newer instruction does to an in-flight copy (the lease contract): drop its lease."""
    rid = request_id(group, member)
    r.hdel(keys.leases, rid)
    r.zrem(keys.inflight, rid)


def penalize(store: Store, ms: int) -> int:
    """Push the shared schedule ``ms`` ahead (a rate-limit answer elsewhere); returns the TAT it set."""
    RedisRateLimiter(store.client, store.keys, APP, RATE).penalize(ms)
    return int(store.client.get(store.keys.limiter(APP)) or 0)


def test_member_revoked_while_waiting_for_its_slot_is_not_sent(store: Store, r: redis.Redis, keys: Keys) -> None:
    """A cancel that lands while the batch waits for the limiter takes its member out of the call."""
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        if not naps:
            revoke(r, keys, "g", "a")  # another process cancels "a" meanwhile
        naps.append(seconds)
        time.sleep(seconds)

    api = FakeApi()
    store.enqueue([build_request("g", ["a", "b"])])
    penalize(store, 400)
    report = deliverer(store, api, sleep).deliver_group("g")
    assert api.calls == [("g", ("b",))]
    assert report.delivered == 1 and report.revoked == 1
    assert int(r.hget(keys.stats, "stale_acks") or 0) == 0


def test_batch_wholly_revoked_makes_no_call_and_spends_no_slot(store: Store, r: redis.Redis, keys: Keys) -> None:
    """When every member was revoked during the wait, nothing is called and the limiter slot is left alone."""
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        if not naps:
            revoke(r, keys, "g", "a")
            revoke(r, keys, "g", "b")
        naps.append(seconds)
        time.sleep(seconds)

    api = FakeApi()
    store.enqueue([build_request("g", ["a", "b"])])
    tat = penalize(store, 400)
    report = deliverer(store, api, sleep).deliver_group("g")
    assert api.calls == []
    assert report.calls == 0 and report.revoked == 2 and report.delivered == 0
    assert int(r.get(keys.limiter(APP)) or 0) == tat  # no slot was reserved
    assert status(r, keys)["in_flight"] == 0


def test_reservation_renews_the_lease(r: redis.Redis, keys: Keys) -> None:
    """A batch that waited most of its lease for the limiter still has nearly a full lease when it calls."""
    store = Store(r, keys, linger=LingerPolicy(0), lease_ms=1_000)
    rid = request_id("g", "a")

    def lease_left_ms() -> int:
        return int(float(r.zscore(keys.inflight, rid) or 0)) - int(server_ms(r))

    api = FakeApi(spy=lease_left_ms)
    store.enqueue([build_request("g", ["a"])])
    penalize(store, 800)
    assert deliverer(store, api).deliver_group("g").delivered == 1
    assert len(api.seen) == 1 and isinstance(api.seen[0], int)
    assert api.seen[0] >= 600  # without renewal about 200 ms would be left


def test_lease_lost_during_the_wait_makes_no_call(r: redis.Redis, keys: Keys) -> None:
    """A lease that lapsed while the batch waited and was re-claimed by another worker is not called by the first."""
    short = Store(r, keys, linger=LingerPolicy(0), lease_ms=100)
    other = Store(r, keys, linger=LingerPolicy(0))
    scheduler = Scheduler(r, keys, linger=LingerPolicy(0))
    taken: list[Batch] = []

    def sleep(seconds: float) -> None:
        time.sleep(max(seconds, 0.15))  # at least the whole lease: it lapses during this nap
        if not taken:
            other.reap()
            scheduler.promote_all()
            batch = other.claim("g")
            assert isinstance(batch, Batch)
            taken.append(batch)

    api = FakeApi()
    short.enqueue([build_request("g", ["a"])])
    penalize(short, 600)
    report = deliverer(short, api, sleep).deliver_group("g")
    assert taken and api.calls == []
    assert report.calls == 0 and report.revoked == 1
    lease = str(r.hget(keys.leases, request_id("g", "a")))
    assert lease.startswith(taken[0].token + "|")  # the new owner's lease is intact
    assert int(r.hget(keys.stats, "stale_acks") or 0) == 0


def test_unexpected_exception_is_retried_with_an_attempt_then_dead(
    store: Store, r: redis.Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug inside a run (ValueError from the client) counts an attempt and ends dead as an internal error."""
    api = FakeApi(fail=lambda: ValueError("a bug"))
    run = deliverer(store, api, max_attempts=2)
    scheduler = Scheduler(r, keys, linger=LingerPolicy(0))
    store.enqueue([build_request("g", ["a"])])
    with caplog.at_level(logging.ERROR, logger="imunban.delivery"):
        first = run.deliver_group("g", budget_s=0.0)
    assert first.retried == 1
    assert str(r.hget(keys.meta, request_id("g", "a"))).split("|")[0] == "1"
    tracebacks = [rec for rec in caplog.records if rec.exc_info and rec.exc_info[0] is ValueError]
    assert len(tracebacks) == 1
    scheduler.promote_all()
    second = run.deliver_group("g", budget_s=0.0)
    assert second.dead == 1 and len(api.calls) == 2
    info = status(r, keys)
    assert info["dead"] == 1 and info["in_flight"] == 0
    dead = r.hget(keys.dead_info, request_id("g", "a"))
    assert dead is not None and "internal error: ValueError" in dead


# -- region failover: a new reservation (and lease check) before the backup domain is tried ---------

OK_BODY = b'{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}'
PRIMARY, BACKUP = "https://primary.invalid", "https://backup.invalid"


class TwoDomains:
    """A transport whose primary domain refuses connections (after ``on_connect`` ran); the backup answers OK."""

    def __init__(self, on_connect: Callable[[], object]) -> None:
        self.on_connect = on_connect
        self.sent: list[bytes] = []

    def urlopen(self, method: str, url: str, **kw: object) -> urllib3.BaseHTTPResponse:
        if url.startswith(PRIMARY):
            self.on_connect()  # the connect attempt takes seconds; a cancel lands meanwhile
            raise NewConnectionError(None, "connection refused")  # type: ignore[arg-type]
        body = kw["body"]
        assert isinstance(body, bytes)
        self.sent.append(body)
        return urllib3.HTTPResponse(body=OK_BODY, status=200, preload_content=True)


def two_domain_client(transport: TwoDomains) -> ApiClient:
    app = AppConfig("default", APP, secret_key=Secret("k" * 32), base_url=PRIMARY)
    return ApiClient(app, base_urls=[PRIMARY, BACKUP], transport=transport)


def test_a_copy_cancelled_while_the_primary_failed_is_not_sent_to_the_backup(
    store: Store, r: redis.Redis, keys: Keys
) -> None:
    """A cancel that returned while the primary's connect failed stops the call: the leases are checked again."""
    store.enqueue([build_request("g", ["m"])])
    transport = TwoDomains(lambda: revoke(r, keys, "g", "m"))
    report = deliverer(store, two_domain_client(transport)).deliver_group("g")  # type: ignore[arg-type]
    assert transport.sent == []
    assert report.revoked == 1 and report.delivered == 0


def test_the_backup_gets_only_the_members_still_leased_and_is_preferred_after(
    store: Store, r: redis.Redis, keys: Keys
) -> None:
    """After the primary fails, one new reservation narrows the batch; the backup is then used first."""
    store.enqueue([build_request("g", ["a", "b"])])
    transport = TwoDomains(lambda: revoke(r, keys, "g", "a"))
    client = two_domain_client(transport)
    report = deliverer(store, client).deliver_group("g")  # type: ignore[arg-type]
    assert [json.loads(body)["Members_Account"] for body in transport.sent] == [["b"]]
    assert report.delivered == 1 and report.revoked == 1
    assert client.active_base_url == BACKUP


def test_when_neither_domain_connects_the_batch_is_retried_with_backoff(store: Store) -> None:
    """Primary then backup refuse: one failover only, then the members go back for a retry (nothing sent)."""
    store.enqueue([build_request("g", ["m"])])

    class Nowhere(TwoDomains):
        def urlopen(self, method: str, url: str, **kw: object) -> urllib3.BaseHTTPResponse:
            raise NewConnectionError(None, "connection refused")  # type: ignore[arg-type]

    transport = Nowhere(lambda: None)
    report = deliverer(store, two_domain_client(transport)).deliver_group("g")  # type: ignore[arg-type]
    assert transport.sent == [] and report.retried >= 1
    assert report.calls == 2 * report.batches  # each batch: the primary, one failover to the backup, no more
