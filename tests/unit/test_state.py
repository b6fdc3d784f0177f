"""The state of an app, its reason and its level: one pure function, given numbers."""

from __future__ import annotations

import pytest

from imunban.state import (
    STATES,
    AppState,
    Facts,
    HoldFacts,
    PauseFacts,
    Thresholds,
    check_line,
    derive,
    fmt_bytes,
    span,
    worst,
)

NOW = 1_800_000_000_000
MIB = 1024 * 1024


def facts(**kw: object) -> Facts:
    """An app with two live workers, nothing due, 100 MiB of 1 GiB used; ``kw`` changes any of it."""
    base: dict[str, object] = {
        "now_ms": NOW,
        "worker_ticks_ms": (NOW - 400, NOW - 900),
        "memory_used_bytes": 100 * MIB,
        "memory_max_bytes": 1024 * MIB,
    }
    return Facts(**{**base, **kw})  # type: ignore[arg-type]


def test_nothing_due_is_idle_and_ok() -> None:
    """No due request: idle, level 0, and the reason says what waits later."""
    state = derive(facts(scheduled=5_000))
    assert (state.state, state.level) == ("idle", 0)
    assert state.reason == "nothing due (5,000 scheduled); 2 workers alive"


def test_due_work_being_claimed_is_delivering() -> None:
    """Due requests, live workers and a recent claim: delivering, with the oldest due age and the limiter use."""
    state = derive(facts(due=1_234, oldest_due_ms=NOW - 1_500, last_claim_ms=NOW - 20, limiter_use=0.87))
    assert (state.state, state.level) == ("delivering", 0)
    assert state.reason == "1,234 requests due, the oldest for 1.5 s; 2 workers alive; limiter at 87 %"


def test_no_live_worker_with_due_work_is_stalled_with_how_long() -> None:
    """The last tick 42 s ago and 1,234 due: stalled, level 2, saying for how long and how many."""
    state = derive(facts(due=1_234, oldest_due_ms=NOW - 50_000, worker_ticks_ms=(NOW - 42_000, NOW - 600_000)))
    assert (state.state, state.level, state.workers_alive) == ("stalled", 2, 0)
    assert state.reason == "no live worker for 42 s while 1,234 requests are due (the oldest for 50 s)"


def test_no_worker_ever_with_due_work_is_stalled_at_once() -> None:
    """No worker known (all stopped cleanly) and one request just due: stalled now, no grace."""
    state = derive(facts(due=1, oldest_due_ms=NOW, worker_ticks_ms=()))
    assert state.state == "stalled"
    assert (
        state.reason
        == "no live worker (none has ticked within the last hour) while 1 request is due (the oldest for 0 ms)"
    )


def test_in_flight_work_without_a_live_worker_is_stalled() -> None:
    """Leases left by a killed worker and nobody to reap them: stalled."""
    state = derive(facts(in_flight=20, worker_ticks_ms=(NOW - 11_000,)))
    assert state.state == "stalled" and state.reason == "no live worker for 11 s while 20 in flight"


def test_a_worker_is_alive_for_ten_seconds_after_its_tick() -> None:
    """Alive up to alive_ms after the last tick (well under the 30 s a check has to say stalled)."""
    assert derive(facts(due=1, oldest_due_ms=NOW, worker_ticks_ms=(NOW - 10_000,))).state == "delivering"
    assert derive(facts(due=1, oldest_due_ms=NOW, worker_ticks_ms=(NOW - 10_001,))).state == "stalled"
    assert Thresholds().alive_ms * 3 <= 30_000


def test_live_workers_that_do_not_claim_are_stalled_after_the_threshold() -> None:
    """The failover trap: workers beat but nothing was claimed for 31 s while a request has been due 40 s."""
    trap = facts(due=7, oldest_due_ms=NOW - 40_000, last_claim_ms=NOW - 31_000)
    state = derive(trap)
    assert (state.state, state.level) == ("stalled", 2)
    assert (
        state.reason
        == "2 workers alive but none has claimed a batch for 31 s while 7 requests are due (the oldest for 40 s)"
    )


def test_a_claim_silence_needs_the_due_work_to_be_as_old() -> None:
    """After an idle hour the last claim is old, but work due 2 s ago is being delivered, not stalled."""
    assert derive(facts(due=7, oldest_due_ms=NOW - 2_000, last_claim_ms=NOW - 3_600_000)).state == "delivering"
    assert derive(facts(due=7, oldest_due_ms=NOW - 40_000, last_claim_ms=NOW - 200)).state == "delivering"


def test_never_claimed_with_old_due_work_is_stalled() -> None:
    """No claim ever recorded while requests are due 35 s: stalled, saying no claim is recorded."""
    state = derive(facts(due=3, oldest_due_ms=NOW - 35_000))
    assert state.state == "stalled" and "no claim is recorded" in state.reason


def test_the_claim_threshold_is_a_setting() -> None:
    """With stall_after 5 s, 6 s without a claim is stalled; the default 30 s is not."""
    slow = facts(due=3, oldest_due_ms=NOW - 6_000, last_claim_ms=NOW - 6_000)
    assert derive(slow, Thresholds(stall_after_ms=5_000)).state == "stalled"
    assert derive(slow).state == "delivering"


def test_a_hold_is_held_with_code_info_and_next_probe() -> None:
    """Held: the code, its info, for how long and when the next probe goes; level 2."""
    hold = HoldFacts(70001, "UserSig expired", NOW - 125_000, NOW + 40_000)
    state = derive(facts(due=10, oldest_due_ms=NOW - 125_000, hold=hold))
    assert (state.state, state.level) == ("held", 2)
    assert state.reason == "held by ErrorCode 70001 (UserSig expired) for 2m 5s; next probe in 40 s"


def test_a_hold_without_a_worker_notes_that_nothing_would_probe() -> None:
    """Held and no worker: still held (the cause), with a note that nothing would probe."""
    hold = HoldFacts(60010, "bad", NOW - 1_000, NOW - 1)
    state = derive(facts(due=10, hold=hold, worker_ticks_ms=()))
    assert state.state == "held" and state.reason.endswith("a probe is due")
    assert state.notes == ("no live worker: nothing would probe",)


def test_a_pause_wins_over_a_hold_and_is_a_warning() -> None:
    """Paused (deliberate): level 1, saying who, how long ago, why and how many wait."""
    pause = PauseFacts("DB migration", NOW - 303_000, "cli alice@ops1")
    state = derive(facts(due=1_234, hold=HoldFacts(60010, "x", NOW, NOW), pause=pause))
    assert (state.state, state.level) == ("paused", 1)
    assert state.reason == ("paused by cli alice@ops1 5m 3s ago: DB migration; 1,234 due requests wait")


def test_a_pause_with_no_worker_is_still_paused_but_noted() -> None:
    """Paused and no worker: paused, noted (level stays 1: nothing is meant to be sent)."""
    state = derive(facts(scheduled=5, pause=PauseFacts("x", NOW, "cli u@h"), worker_ticks_ms=()))
    assert (state.state, state.level) == ("paused", 1)
    assert state.notes == ("no live worker: nothing would deliver after resume",)


def test_redis_at_maxmemory_is_full() -> None:
    """Memory as maxmemory counts it at maxmemory: full, level 2, intake refused."""
    state = derive(facts(due=5, oldest_due_ms=NOW, last_claim_ms=NOW, memory_used_bytes=1024 * MIB))
    assert (state.state, state.level) == ("full", 2)
    assert state.reason.startswith("Redis is full (1.0 GiB of 1.0 GiB maxmemory): intake is refused")


def test_stalled_wins_over_full_and_full_becomes_a_note() -> None:
    """Nothing drains a full Redis without workers: stalled, with full as a level-2 note."""
    state = derive(facts(due=5, worker_ticks_ms=(), memory_used_bytes=2000 * MIB))
    assert state.state == "stalled" and state.level == 2
    assert state.notes == ("Redis is full (2.0 GiB of 1.0 GiB maxmemory): intake is refused",)


def test_memory_over_ninety_percent_is_a_warning() -> None:
    """93 % of maxmemory: the state is unchanged, the level 1 with a note."""
    state = derive(facts(memory_used_bytes=int(0.93 * 1024 * MIB)))
    assert (state.state, state.level) == ("idle", 1)
    assert state.notes == ("Redis memory at 93 % of maxmemory (952.3 MiB of 1.0 GiB maxmemory)",)


def test_without_maxmemory_or_info_there_is_no_full() -> None:
    """No maxmemory (0) or INFO not readable (None): never full, no memory note."""
    assert derive(facts(memory_max_bytes=0, memory_used_bytes=10**12)).level == 0
    assert derive(facts(memory_used_bytes=None)).level == 0


def test_a_lag_over_the_threshold_degrades_delivering() -> None:
    """Delivering with the oldest due request 75 s old (and claims going on): level 1 over a 60 s threshold."""
    lagging = facts(due=9_000, oldest_due_ms=NOW - 75_000, last_claim_ms=NOW - 5)
    state = derive(lagging, Thresholds(lag_ms=60_000))
    assert (state.state, state.level) == ("delivering", 1)
    assert state.notes == ("the oldest due request waits 1m 15s, over the 1m 0s lag threshold",)
    assert derive(lagging, Thresholds(lag_ms=90_000)).level == 0


def test_idle_with_no_worker_and_a_schedule_is_a_warning() -> None:
    """Nothing due yet, but no worker to deliver what is scheduled: idle, level 1."""
    state = derive(facts(scheduled=40, worker_ticks_ms=()))
    assert (state.state, state.level) == ("idle", 1)
    assert state.notes == ("no live worker: 40 scheduled requests will not be delivered when due",)


def test_every_state_is_reachable() -> None:
    """Each of the six states comes out of derive for some facts."""
    seen = {
        derive(facts()).state,
        derive(facts(due=1, oldest_due_ms=NOW, last_claim_ms=NOW)).state,
        derive(facts(hold=HoldFacts(1, "", NOW, NOW))).state,
        derive(facts(pause=PauseFacts("r", NOW, "x"))).state,
        derive(facts(due=1, worker_ticks_ms=())).state,
        derive(facts(memory_used_bytes=2 * 1024 * MIB)).state,
    }
    assert seen == set(STATES)


def test_the_worst_app_is_the_highest_level_then_the_worse_state() -> None:
    """Totals name the worst app: stalled over held at the same level, paused over a lagging delivery."""

    def at(state: str, level: int) -> AppState:
        return AppState(state, "r", level)

    assert worst({"a": at("held", 2), "b": at("stalled", 2), "c": at("idle", 0)})[0] == "b"
    assert worst({"a": at("delivering", 1), "b": at("paused", 1)})[0] == "b"
    assert worst({"a": at("idle", 0), "b": at("delivering", 0)})[0] == "b"


def test_the_check_line_is_one_line_with_level_state_app_reason_and_notes() -> None:
    """OK/WARNING/CRITICAL, the state, the app when several, the reason, notes, how many others are not ok."""
    state = derive(facts(due=5, worker_ticks_ms=(NOW - 42_000,), memory_used_bytes=2 * 1024 * MIB))
    line = check_line(state, "intl", others=1)
    assert "\n" not in line
    assert line.startswith("CRITICAL stalled (app intl): no live worker for 42 s while 5 requests are due")
    assert line.endswith("intake is refused; 1 other app not ok")
    assert check_line(derive(facts())).startswith("OK idle: nothing due")


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0 ms"), (999, "999 ms"), (4_200, "4.2 s"), (42_000, "42 s"), (303_000, "5m 3s"), (7_500_000, "2h 5m")],
)
def test_span_reads_like_a_person_would_say_it(ms: int, text: str) -> None:
    """Durations: ms below a second, one decimal below 10 s, whole seconds below a minute, two units above."""
    assert span(ms) == text


def test_bytes_in_binary_units() -> None:
    """Bytes as Redis counts maxmemory: B, KiB, MiB, GiB."""
    assert [fmt_bytes(n) for n in (512, 2048, 3 * MIB + MIB // 2, 5 * 1024 * MIB)] == [
        "512 B",
        "2.0 KiB",
        "3.5 MiB",
        "5.0 GiB",
    ]
