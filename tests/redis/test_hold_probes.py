"""Holds and probes end to end on a real Redis (pump + deliverer, scripted API): rotation, 10007, max_age."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence

import pytest
import redis

from helpers import KEYS
from imunban import hold as hold_module
from imunban.classify import classify
from imunban.delivery import Deliverer
from imunban.hold import Hold
from imunban.limiter import MemoryRateLimiter
from imunban.pump import Pump, PumpConfig
from imunban.retry import RetryPolicy
from imunban.schedule import Scheduler
from imunban.settings import LingerPolicy, Settings
from imunban.stats import status
from imunban.store import Store
from imunban.validation import build_request

Answer = Callable[[str, Sequence[str]], int]
UNKNOWN = 99_999  # a code the table does not know: "retry a few times, then dead-letter"


class ScriptedApi:
    """Answers each call with the ErrorCode ``answer(group, members)`` returns; records the calls."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def unban(self, group_id: str, members: Sequence[str]) -> None:
        self.calls.append((group_id, tuple(members)))
        code = self.answer(group_id, members)
        error = classify(code, f"code {code}")
        if error is not None:
            raise error

    def renew_sig(self) -> None:
        pass


class Node:
    """One worker node in-process: a pump whose submitted runs execute at once, on one deliverer."""

    def __init__(self, r: redis.Redis, answer: Answer, *, jitter: float = 0.0, **policy: int) -> None:
        self.store = Store(r, KEYS, linger=LingerPolicy(0))
        self.hold = Hold(r, KEYS)
        self.api = ScriptedApi(answer)
        base = RetryPolicy.from_settings(Settings())
        self.deliverer = Deliverer(
            self.store,
            MemoryRateLimiter(1e9, sleep=lambda s: None),
            self.api,
            self.hold,
            policy=dataclasses.replace(base, **policy),
            # jitter 0: every retry is due again at once, so the test runs retries back to back.
            rand=lambda: jitter,
        )
        self.probed: list[str] = []
        self.pump = Pump(
            r, KEYS, self.store, Scheduler(r, KEYS, linger=LingerPolicy(0)), self.hold, self._run, PumpConfig()
        )
        self.r = r

    def _run(self, app: str, group_id: str, slot: int, probe: bool) -> None:
        if probe:
            self.probed.append(group_id)
        self.deliverer.deliver_group(group_id, probe=probe)
        self.pump.finish(group_id, slot)

    def tick(self, *, probe_due: bool = True) -> None:
        """One pump tick; with ``probe_due`` the probe backoff has passed (scaled time: no minute-long waits)."""
        if probe_due and self.r.exists(KEYS.hold):
            self.r.hset(KEYS.hold, "next_probe_ms", 0)
        self.pump.tick()

    def enqueue(self, group: str, members: Sequence[str]) -> None:
        self.store.enqueue([build_request(group, list(members))])


def drained(r: redis.Redis) -> bool:
    info = status(r, KEYS)
    return bool(info["queued"] == 0 and info["scheduled"] == 0 and info["in_flight"] == 0)


# -- probes rotate ---------------------------------------------------------------------------------


def test_probes_rotate_across_waiting_groups(r: redis.Redis) -> None:
    """Successive probes go to different waiting groups, the one probed longest ago first, never the same head."""
    keys = KEYS
    store = Store(r, keys, linger=LingerPolicy(0))
    submitted: list[str] = []
    pump = Pump(
        r, keys, store, Scheduler(r, keys, linger=LingerPolicy(0)), Hold(r, keys),
        lambda a, g, s, p: submitted.append(g), PumpConfig(),
    )  # fmt: skip
    for g in range(4):
        store.enqueue([build_request(f"g{g}", ["a"])])
    Hold(r, keys).set(60010, "needs App admin permission")
    for _ in range(8):
        r.hset(keys.hold, "next_probe_ms", 0)
        pump.tick()
    assert submitted == ["g0", "g1", "g2", "g3", "g0", "g1", "g2", "g3"]


def test_hold_lifts_while_the_oldest_group_answers_unknown_forever(r: redis.Redis) -> None:
    """Hold on 60010, fixed; the oldest group answers an unknown code forever: the hold lifts, the rest delivered."""
    # The configuration is already fixed; g0 is the oldest waiting group when the probes start.
    node = Node(r, lambda g, m: UNKNOWN if g == "g0" else 0, jitter=1.0, backoff_base_ms=60_000)
    node.hold.set(60010, "needs App admin permission")
    for g in range(4):
        node.enqueue(f"g{g}", ["a", "b"])
    for _ in range(10):
        node.tick()
    assert node.hold.get() is None
    assert status(r, KEYS)["delivered"] == 6
    assert node.probed[:2] == ["g0", "g1"]
    # The unknown answer was retried as usual: its attempt counts, and it waits out its backoff.
    assert str(r.hget(KEYS.meta, "g0\x1fa")).split("|")[0] == "1"


def test_unknown_answer_to_probe_spends_attempts_until_dead(r: redis.Redis) -> None:
    """A probe answering an unknown code is inconclusive: attempts count and the batch dead-letters; the hold stays."""
    node = Node(r, lambda g, m: UNKNOWN, max_attempts=3)
    node.enqueue("g0", ["a"])
    node.hold.set(60010, "needs App admin permission")
    for _ in range(6):
        node.tick()
    info = status(r, KEYS)
    assert info["dead"] == 1
    assert info["hold"]["code"] == 60010
    assert node.probed == ["g0", "g0", "g0"]


def test_hold_class_answer_to_probe_keeps_hold_without_attempt(r: redis.Redis) -> None:
    """A probe answering a configuration code keeps the hold and spends no attempt."""
    node = Node(r, lambda g, m: 60010, max_attempts=1)
    node.enqueue("g0", ["a"])
    node.hold.set(60010, "needs App admin permission")
    for _ in range(5):
        node.tick()
    info = status(r, KEYS)
    assert info["hold"]["code"] == 60010
    assert info["dead"] == 0
    assert r.hget(KEYS.meta, "g0\x1fa") is None
    assert len(node.probed) == 5


# -- 10007 ---------------------------------------------------------------------------------------------


def test_10007_with_two_groups_holds_and_dead_letters_nothing(r: redis.Redis) -> None:
    """Switch off, only two groups active: the app holds at once; no request is dead-lettered."""
    node = Node(r, lambda g, m: 10007, max_attempts=2)
    for g in ("g0", "g1"):
        node.enqueue(g, [f"u{i}" for i in range(20)])
    for _ in range(20):
        node.tick()
    info = status(r, KEYS)
    assert info["hold"]["code"] == 10007
    assert info["dead"] == 0
    assert info["queued"] == 40


def test_10007_switch_off_for_an_hour_of_probes_then_on(r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """4 groups, the switch off for an hour of probes (60 s apart): none dead, the hold stays, all delivered after."""
    # Scaled time: each tick is a probe a minute after the last, so any evidence window under a
    # minute (the old "3 groups in 60 s" rule) sees one probe at a time.
    monkeypatch.setattr(hold_module, "EVIDENCE_WINDOW_MS", 1, raising=False)
    switch = {"on": False}
    node = Node(r, lambda g, m: 0 if switch["on"] else 10007, max_attempts=3)
    for g in range(4):
        node.enqueue(f"g{g}", [f"u{i}" for i in range(20)])
    for _ in range(60):
        node.tick()
        time.sleep(0.002)
    info = status(r, KEYS)
    assert info["dead"] == 0
    assert info["hold"]["code"] == 10007
    assert set(node.probed) == {"g0", "g1", "g2", "g3"}
    switch["on"] = True
    for _ in range(20):
        node.tick()
        if drained(r):
            break
    info = status(r, KEYS)
    assert (info["delivered"], info["dead"], info["hold"]) == (80, 0, None)


def test_10007_is_per_group_when_another_group_succeeds(r: redis.Redis) -> None:
    """10007 from one group while another group keeps succeeding: that group is retried, then dead; no hold."""
    node = Node(r, lambda g, m: 10007 if g == "bad" else 0, max_attempts=3)
    node.enqueue("ok", ["x"])
    node.deliverer.deliver_group("ok")
    node.enqueue("bad", ["a"])
    for i in range(3):
        report = node.deliverer.deliver_group("bad", budget_s=0)  # one call
        assert not report.held
        node.enqueue("ok", [f"y{i}"])  # the rest of the app keeps delivering
        assert node.deliverer.deliver_group("ok", budget_s=0).delivered == 1
    info = status(r, KEYS)
    assert info["hold"] is None
    assert info["dead"] == 1
    dead = r.hget(KEYS.dead_info, "bad\x1fa")
    assert dead is not None and json.loads(dead)["code"] == 10007
    assert [g for g, _ in node.api.calls].count("bad") == 3


def test_10007_after_the_switch_goes_off_never_dead_letters(r: redis.Redis) -> None:
    """A success just before the switch goes off is not evidence forever: the retried 10007s hold, none is dead."""
    switch = {"on": True}
    node = Node(r, lambda g, m: 0 if switch["on"] else 10007, max_attempts=3)
    node.enqueue("ok", ["x"])
    node.tick()
    switch["on"] = False
    node.enqueue("a", ["m1"])
    node.enqueue("b", ["m2"])
    for _ in range(20):
        node.tick()
    info = status(r, KEYS)
    assert info["dead"] == 0
    assert info["hold"]["code"] == 10007


def test_10007_probe_keeps_the_hold_without_attempt(r: redis.Redis) -> None:
    """A probe of a 10007 hold answering 10007 keeps the hold and spends no attempt."""
    node = Node(r, lambda g, m: 10007, max_attempts=1)
    node.enqueue("g0", ["a"])
    node.hold.set(10007, "switch off")
    for _ in range(5):
        node.tick()
    assert status(r, KEYS)["dead"] == 0
    assert r.hget(KEYS.meta, "g0\x1fa") is None


# -- max_age ---------------------------------------------------------------------------------------------


def test_time_on_hold_does_not_count_toward_max_age(r: redis.Redis) -> None:
    """After a hold longer than max_age (scaled: 1 s), the first transient failure retries instead of dead-lettering."""
    node = Node(r, lambda g, m: 10002, max_age_ms=1_000)
    node.enqueue("g", ["a"])
    node.hold.set(60010, "needs App admin permission")
    time.sleep(1.2)
    node.hold.release()
    report = node.deliverer.deliver_group("g", budget_s=0)
    assert (report.dead, report.retried) == (0, 1)


def test_open_hold_does_not_count_toward_max_age(r: redis.Redis) -> None:
    """A probe failing transiently during a hold older than max_age retries the batch: time on hold is not age."""
    node = Node(r, lambda g, m: 10002, max_age_ms=1_000)
    node.enqueue("g", ["a"])
    node.hold.set(60010, "needs App admin permission")
    time.sleep(1.2)
    report = node.deliverer.deliver_group("g", probe=True)
    assert (report.dead, report.retried) == (0, 1)


def test_max_age_still_applies_without_a_hold(r: redis.Redis) -> None:
    """Without a hold, a request older than max_age is dead-lettered on its next failure."""
    node = Node(r, lambda g, m: 10002, max_age_ms=1_000)
    node.enqueue("g", ["a"])
    time.sleep(1.2)
    report = node.deliverer.deliver_group("g", budget_s=0)
    assert (report.dead, report.retried) == (1, 0)
