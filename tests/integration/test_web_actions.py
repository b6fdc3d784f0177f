"""The console's actions never revive what ended, keep the hold's probe floor, and audit what they applied."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from imunban.deadletter import DeadLetters
from imunban.errors import RedisFullError
from imunban.hold import Hold
from imunban.keys import Keys, request_id
from imunban.settings import LingerPolicy
from imunban.store import Batch, Store
from imunban.trace import trace
from imunban.validation import UnbanRequest
from imunban.web import actions
from web_helpers import BASE, OPERATOR, bearer, console_client

KEYS = Keys()
OP = bearer(OPERATOR)
FORM = {**OP, "origin": BASE}
LATER = 4102444800  # 2100-01-01, Unix seconds


def store_of(r: redis.Redis) -> Store:
    return Store(r, KEYS, linger=LingerPolicy(0))


def end(r: redis.Redis, group: str, member: str, outcome: str, version: int | None = None) -> None:
    """Enqueue one request (with ``version``), claim it and end it with ``outcome`` as a worker would."""
    store = store_of(r)
    store.enqueue([UnbanRequest(group, (member,), version=version)])
    batch = store.claim(group)
    assert isinstance(batch, Batch) and batch.members == [member]
    store.ack(batch, outcome, code=10004 if outcome == "dead" else 0, info="bad" if outcome == "dead" else "")


def audits(r: redis.Redis) -> list[dict[str, str]]:
    return [fields for _, fields in r.xrange(KEYS.outcomes) if fields["outcome"] == "audit"]


def pending(r: redis.Redis, group: str, member: str) -> bool:
    return trace(r, KEYS, group, member)["state"] in ("ready", "scheduled")


# -- replay: nothing ended comes back (item 3) ---------------------------------------------------------


def test_replay_all_skips_a_dead_letter_a_higher_version_ended_and_says_so(r: redis.Redis, redis_url: str) -> None:
    """v100 died, v300 was delivered since: "Replay all" replays the others, skips it, and the answer counts it."""
    end(r, "@TGS#g", "old", "dead", version=100)
    end(r, "@TGS#g", "old", "delivered", version=300)
    end(r, "@TGS#g", "fine", "dead")
    client = console_client(r, redis_url)
    answer = client.post("/api/dead/replay", json={"all": True}, headers=OP).json()
    assert not pending(r, "@TGS#g", "old")
    assert answer == {"replayed": 1, "skipped": 1, "skipped_pending": 0, "skipped_ended": 1, "not_dead": 0}
    assert pending(r, "@TGS#g", "fine")
    (entry,) = audits(r)
    assert entry["count"] == "1" and "skipped 1" in entry["info"]


def test_the_replay_form_flash_says_what_was_skipped(r: redis.Redis, redis_url: str) -> None:
    """The dead-letter page's "Replay all" comes back with a flash that counts the skipped and says why."""
    end(r, "@TGS#g", "old", "dead", version=100)
    end(r, "@TGS#g", "old", "delivered", version=300)
    client = console_client(r, redis_url)
    done = client.post("/actions/dead/replay", data={"scope": "matching"}, headers=FORM)
    assert done.status_code == 303
    page = client.get(done.headers["location"], headers=OP).text
    assert "replayed 0 dead letter(s)" in page
    assert "skipped 1: cancelled, superseded or pending again since they died" in page
    assert not pending(r, "@TGS#g", "old")


# -- probe now keeps the 70050 floor (item 7) ----------------------------------------------------------


def test_probe_now_three_times_in_a_70050_hold_sends_no_early_probe(r: redis.Redis, redis_url: str) -> None:
    """Three presses within milliseconds: the next probe stays a minute after the 70050 answer; each says when."""
    hold = Hold(r, KEYS)
    hold.set(70050, "too many failed signature checks")
    since = (hold.get() or pytest.fail("no hold")).since_ms
    client = console_client(r, redis_url)
    answers = [client.post("/api/probe", json={}, headers=OP).json() for _ in range(3)]
    state = hold.get() or pytest.fail("no hold")
    assert state.next_probe_ms >= since + 60_000
    assert [a["next_probe_ms"] for a in answers] == [state.next_probe_ms] * 3
    assert all(a["probe"] == 1 and a["next_probe_at"].endswith("Z") for a in answers)
    assert "next probe allowed at" in answers[0]["message"]
    page = client.get("/holds", headers=OP).text
    assert "Probe now is allowed from" in page
    done = client.post("/actions/probe", data={}, headers=FORM)
    assert "next probe allowed at" in client.get(done.headers["location"], headers=OP).text
    assert (hold.get() or pytest.fail("no hold")).next_probe_ms == state.next_probe_ms


def test_the_overview_hold_card_says_when_a_probe_is_allowed(r: redis.Redis, redis_url: str) -> None:
    """The overview's hold card shows the earliest time a probe may go during a 70050 hold."""
    Hold(r, KEYS).set(70050, "too many failed signature checks")
    page = console_client(r, redis_url).get("/", headers=OP).text
    assert "<dt>probe allowed from</dt>" in page


# -- reschedule is one script; cancel and reschedule take a version (item 8) ---------------------------


def once_after_first_round_trip(monkeypatch: pytest.MonkeyPatch, act: Callable[[], object]) -> list[bool]:
    """Run ``act`` once, right after the console's first pipeline to Redis returns (a check-then-act window)."""
    real = redis.client.Pipeline.execute
    fired: list[bool] = []

    def execute(self: redis.client.Pipeline, *args: Any, **kwargs: Any) -> Any:
        replies = real(self, *args, **kwargs)
        if not fired:
            fired.append(True)
            act()
        return replies

    monkeypatch.setattr(redis.client.Pipeline, "execute", execute)
    return fired


def test_a_cancel_landing_during_a_reschedule_is_not_undone(
    r: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel that lands while the console reschedules: the request ends cancelled, never back."""
    store_of(r).enqueue([UnbanRequest("@TGS#g", ("m",), at_ms=LATER * 1000)])
    client = console_client(r, redis_url)
    once_after_first_round_trip(monkeypatch, lambda: store_of(r).cancel("@TGS#g", ["m"]))
    client.post("/api/reschedule", json={"group_id": "@TGS#g", "members": ["m"], "at": LATER + 86_400}, headers=OP)
    assert not pending(r, "@TGS#g", "m")


def test_a_delivery_landing_during_a_reschedule_is_not_scheduled_again(
    r: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery that lands while the console reschedules: the member is delivered or rescheduled, never both."""
    store_of(r).enqueue([UnbanRequest("@TGS#g", ("m",))])
    client = console_client(r, redis_url)
    delivered: list[int] = []

    def deliver() -> None:
        batch = store_of(r).claim("@TGS#g")
        if isinstance(batch, Batch):
            delivered.append(store_of(r).ack(batch, "delivered")[0])

    once_after_first_round_trip(monkeypatch, deliver)
    client.post("/api/reschedule", json={"group_id": "@TGS#g", "members": ["m"], "at": LATER}, headers=OP)
    assert not (delivered and pending(r, "@TGS#g", "m"))


def test_console_cancel_and_reschedule_take_a_version(r: redis.Redis, redis_url: str) -> None:
    """A version lower than the one applied changes nothing; a bad one is a 400 naming the field, nothing stored."""
    store_of(r).enqueue([UnbanRequest("@TGS#g", ("m",), at_ms=LATER * 1000, version=100)])
    client = console_client(r, redis_url)
    body = {"group_id": "@TGS#g", "members": ["m"]}
    assert client.post("/api/cancel", json={**body, "version": 50}, headers=OP).json() == {"cancelled": 0}
    moved = client.post("/api/reschedule", json={**body, "at": LATER + 60, "version": 50}, headers=OP)
    assert moved.json() == {"rescheduled": 0}
    assert trace(r, KEYS, "@TGS#g", "m")["due_ms"] == LATER * 1000
    for bad in ("100", -1, True, 2**63):
        answer = client.post("/api/cancel", json={**body, "version": bad}, headers=OP)
        assert answer.status_code == 400 and answer.json()["error"].startswith("version:"), bad
    bad_form = client.post(
        "/actions/scheduled/reschedule", data={"group_id": "@TGS#g", "sel": "m", "at": "2101-01-01", "version": "x"},
        headers=FORM,
    )  # fmt: skip
    assert bad_form.status_code == 400 and "version" in bad_form.text  # the styled error page names it
    moved = client.post("/api/reschedule", json={**body, "at": LATER + 60, "version": 200}, headers=OP)
    assert moved.json() == {"rescheduled": 1}
    form = client.post("/actions/scheduled/cancel", data={"group_id": "@TGS#g", "sel": "m", "version": "300"},
                       headers=FORM)  # fmt: skip
    assert form.status_code == 303 and not pending(r, "@TGS#g", "m")
    assert r.hget(KEYS.versions, request_id("@TGS#g", "m")) == "300c"
    assert audits(r)[-1]["action"] == "cancel" and "version 300" in audits(r)[-1]["info"]


# -- an action that stops part way is audited (weaker finding) -----------------------------------------


def test_a_replay_that_stops_part_way_audits_what_it_applied(
    r: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of a replay: the second one fails (Redis full); the audit says the first was applied, with the error."""
    for member in ("a", "b"):
        end(r, "@TGS#g", member, "dead")
    monkeypatch.setattr(actions, "CHUNK", 1)
    real = DeadLetters.replay
    calls: list[int] = []

    def replay(self: DeadLetters, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RedisFullError("dead letters")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DeadLetters, "replay", replay)
    client = console_client(r, redis_url)
    pairs = [{"group_id": "@TGS#g", "member": m} for m in ("a", "b")]
    answer = client.post("/api/dead/replay", json={"requests": pairs}, headers=OP)
    assert answer.status_code == 503 and "stopped part way" in answer.json()["error"]
    (entry,) = audits(r)
    assert (entry["action"], entry["count"]) == ("dead.replay", "1")
    assert "stopped part way" in entry["info"] and "full" in entry["info"]
