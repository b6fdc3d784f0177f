"""One state per app, with its reason: one pure function of what Redis says (no I/O here).

:mod:`imunban.health` reads the facts (the hold, the operator's pause, the workers' heartbeats, the
oldest due request, the last claim, the limiter's pace, Redis memory against ``maxmemory``);
:func:`derive` turns them into one state and a sentence an operator woken at 3 a.m. can act on.
When several conditions hold, the first of these is the state and the others become notes:

=============  ====================================================================================
``paused``     an operator paused delivery (``imunban pause``): nothing is sent until resumed
``held``       a configuration error holds delivery; probes lift it by themselves
``stalled``    requests are due (or in flight) and no worker is alive; or workers are alive but none
               has claimed a batch for ``stall_after_ms`` while a request has been due as long
               (the failover trap: a worker that beats but does not consume)
``full``       Redis is at ``maxmemory``: intake is refused (delivery drains, which frees memory)
``delivering`` requests are due and being claimed
``idle``       nothing is due
=============  ====================================================================================

Each state has a level, what ``imunban status --check`` exits with: 0 (delivering, idle), 1 (degraded:
a note such as the oldest due request over the lag threshold, Redis memory over 90 % of maxmemory, no
live worker while requests are scheduled), 2 (stalled, held, full). ``paused`` is 1: a pause is an
operator's deliberate act, so a check must not page anyone for it as for an outage, yet nothing is
delivered, so it is not "ok" either (a forgotten pause shows as a warning until it is resumed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imunban.heartbeat import ALIVE_MS

STATES = ("delivering", "idle", "held", "paused", "stalled", "full")
#: Worst first: between two apps at the same level, the one whose state comes first is the worse.
WORST_FIRST = ("stalled", "full", "held", "paused", "delivering", "idle")
#: The level of each state (the exit status of ``imunban status --check``).
LEVEL = {"stalled": 2, "full": 2, "held": 2, "paused": 1, "delivering": 0, "idle": 0}
#: How a level is named in the one line of ``imunban status --check`` (Nagios' words).
LEVEL_NAMES = ("OK", "WARNING", "CRITICAL")
#: Defaults: ``IMUNBAN_STALL_AFTER_S`` (Settings.stall_after_s) and ``imunban status --check --lag-s``.
STALL_AFTER_MS = 30_000
LAG_MS = 60_000
#: Redis memory above this share of maxmemory is a warning; at maxmemory intake is refused (``full``).
MEMORY_WARN = 0.9


@dataclass(frozen=True)
class Thresholds:
    """When a worker counts as alive, a silence as a stall, a lag or a memory use as degraded."""

    alive_ms: int = ALIVE_MS
    stall_after_ms: int = STALL_AFTER_MS
    lag_ms: int = LAG_MS
    memory_warn: float = MEMORY_WARN


@dataclass(frozen=True)
class HoldFacts:
    code: int
    info: str
    since_ms: int
    next_probe_ms: int


@dataclass(frozen=True)
class PauseFacts:
    reason: str
    since_ms: int
    by: str


@dataclass(frozen=True)
class Facts:
    """What one app's state is derived from, all times on the Redis server's clock (ms)."""

    now_ms: int
    #: Requests due now (queued), in flight, scheduled for later.
    due: int = 0
    in_flight: int = 0
    scheduled: int = 0
    #: Due time of the oldest request waiting to be sent, None if none.
    oldest_due_ms: int | None = None
    #: When a batch of the app was last claimed, None if never recorded.
    last_claim_ms: int | None = None
    #: The last tick of every worker that ticked within the last hour.
    worker_ticks_ms: tuple[int, ...] = ()
    hold: HoldFacts | None = None
    pause: PauseFacts | None = None
    #: Redis memory as maxmemory counts it, and maxmemory (0: no limit); None: could not be read.
    memory_used_bytes: int | None = None
    memory_max_bytes: int = 0
    #: Share of the rate limit used lately (1.0: at the limit), None before any call.
    limiter_use: float | None = None

    def workers_alive(self, alive_ms: int) -> int:
        return sum(1 for tick in self.worker_ticks_ms if self.now_ms - tick <= alive_ms)

    @property
    def last_tick_age_ms(self) -> int | None:
        return None if not self.worker_ticks_ms else max(0, self.now_ms - max(self.worker_ticks_ms))

    @property
    def oldest_due_age_ms(self) -> int | None:
        return None if self.oldest_due_ms is None else max(0, self.now_ms - self.oldest_due_ms)

    @property
    def last_claim_age_ms(self) -> int | None:
        return None if self.last_claim_ms is None else max(0, self.now_ms - self.last_claim_ms)

    @property
    def memory_ratio(self) -> float | None:
        if self.memory_used_bytes is None or self.memory_max_bytes <= 0:
            return None
        return self.memory_used_bytes / self.memory_max_bytes


@dataclass(frozen=True)
class AppState:
    """One app's state, its reason, its level and what it was derived from, as operators see it."""

    state: str
    reason: str
    level: int
    #: Other conditions the state does not name (each may raise the level).
    notes: tuple[str, ...] = ()
    workers_alive: int = 0
    last_tick_age_ms: int | None = None
    oldest_due_age_ms: int | None = None
    last_claim_age_ms: int | None = None
    limiter_use: float | None = None
    memory_used_bytes: int | None = None
    memory_max_bytes: int = 0
    memory_ratio: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "level": self.level,
            "notes": list(self.notes),
            "workers_alive": self.workers_alive,
            "last_tick_age_ms": self.last_tick_age_ms,
            "oldest_due_age_ms": self.oldest_due_age_ms,
            "last_claim_age_ms": self.last_claim_age_ms,
            "limiter_use": None if self.limiter_use is None else round(self.limiter_use, 3),
            "memory": {
                "used_bytes": self.memory_used_bytes,
                "max_bytes": self.memory_max_bytes,
                "ratio": None if self.memory_ratio is None else round(self.memory_ratio, 4),
            },
        }


def derive(facts: Facts, thresholds: Thresholds = Thresholds()) -> AppState:
    """The state of one app, its reason and its level (see the module's table)."""
    alive = facts.workers_alive(thresholds.alive_ms)
    state, reason = _state(facts, thresholds, alive)
    notes = _notes(facts, thresholds, state, alive)
    return AppState(
        state=state,
        reason=reason,
        level=max([LEVEL[state], *(level for level, _ in notes)]),
        notes=tuple(text for _, text in notes),
        workers_alive=alive,
        last_tick_age_ms=facts.last_tick_age_ms,
        oldest_due_age_ms=facts.oldest_due_age_ms,
        last_claim_age_ms=facts.last_claim_age_ms,
        limiter_use=facts.limiter_use,
        memory_used_bytes=facts.memory_used_bytes,
        memory_max_bytes=facts.memory_max_bytes,
        memory_ratio=facts.memory_ratio,
    )


def _state(f: Facts, t: Thresholds, alive: int) -> tuple[str, str]:
    """The first state of the module's table that holds, and its reason."""
    due_age, claim_age = f.oldest_due_age_ms or 0, f.last_claim_age_ms
    if f.pause is not None:
        waits = f"{f.due:,} due request{' waits' if f.due == 1 else 's wait'}"
        return "paused", (
            f"paused by {f.pause.by or 'an operator'} {span(f.now_ms - f.pause.since_ms)} ago: {f.pause.reason}; "
            + waits
        )
    if f.hold is not None:
        probe = f.hold.next_probe_ms - f.now_ms
        return "held", (
            f"held by ErrorCode {f.hold.code} ({f.hold.info}) for {span(f.now_ms - f.hold.since_ms)}; "
            + (f"next probe in {span(probe)}" if probe > 0 else "a probe is due")
        )
    if alive == 0 and f.due + f.in_flight > 0:
        return "stalled", _no_worker(f)
    silent = claim_age is None or claim_age >= t.stall_after_ms
    if alive > 0 and f.due > 0 and due_age >= t.stall_after_ms and silent:
        since = "no claim is recorded" if claim_age is None else f"none has claimed a batch for {span(claim_age)}"
        return "stalled", (
            f"{_workers(alive)} alive but {since} while {_requests(f.due)} {_are(f.due)} due "
            f"(the oldest for {span(due_age)})"
        )
    if _full(f):
        return "full", f"Redis is full ({_memory(f)}): intake is refused; delivery drains the backlog, freeing memory"
    if f.due > 0:
        reason = f"{_requests(f.due)} due, the oldest for {span(due_age)}; {_workers(alive)} alive"
        return "delivering", reason + ("" if f.limiter_use is None else f"; limiter at {_pct(f.limiter_use)}")
    waiting = [f"{f.scheduled:,} scheduled"] if f.scheduled else []
    waiting += [f"{f.in_flight:,} in flight"] if f.in_flight else []
    return "idle", "nothing due" + (f" ({', '.join(waiting)})" if waiting else "") + f"; {_workers(alive)} alive"


def _notes(f: Facts, t: Thresholds, state: str, alive: int) -> list[tuple[int, str]]:
    """Conditions the state does not name, each with the level it raises the app to."""
    notes: list[tuple[int, str]] = []
    if state in ("paused", "held") and alive == 0 and f.due + f.in_flight + f.scheduled > 0:
        after = "nothing would probe" if state == "held" else "nothing would deliver after resume"
        notes.append((LEVEL[state], f"no live worker: {after}"))
    if state in ("delivering", "idle") and alive == 0 and f.scheduled > 0:
        notes.append((1, f"no live worker: {f.scheduled:,} scheduled requests will not be delivered when due"))
    lag = f.oldest_due_age_ms or 0
    if state == "delivering" and lag > t.lag_ms:
        notes.append((1, f"the oldest due request waits {span(lag)}, over the {span(t.lag_ms)} lag threshold"))
    ratio = f.memory_ratio
    if _full(f) and state != "full":
        notes.append((2, f"Redis is full ({_memory(f)}): intake is refused"))
    elif ratio is not None and not _full(f) and ratio >= t.memory_warn:
        notes.append((1, f"Redis memory at {_pct(ratio)} of maxmemory ({_memory(f)})"))
    return notes


def _full(f: Facts) -> bool:
    ratio = f.memory_ratio
    return ratio is not None and ratio >= 1.0


def worst(states: Mapping[str, AppState]) -> tuple[str, AppState]:
    """The app in the worst state: the highest level, then the state first in WORST_FIRST."""
    name = min(states, key=lambda n: (-states[n].level, WORST_FIRST.index(states[n].state), n))
    return name, states[name]


def check_line(state: AppState, app: str | None = None, others: int = 0) -> str:
    """The one line ``imunban status --check`` prints: level, state, app, reason, notes."""
    where = f" (app {app})" if app else ""
    line = f"{LEVEL_NAMES[state.level]} {state.state}{where}: {state.reason}"
    if state.notes:
        line += "; " + "; ".join(state.notes)
    if others:
        line += f"; {others} other app{'s' if others != 1 else ''} not ok"
    return line


def _no_worker(f: Facts) -> str:
    age = f.last_tick_age_ms
    since = "(none has ticked within the last hour)" if age is None else f"for {span(age)}"
    work = f"{_requests(f.due)} {_are(f.due)} due" if f.due else ""
    if f.in_flight:
        work += (" and " if work else "") + f"{f.in_flight:,} in flight"
    oldest = f" (the oldest for {span(f.oldest_due_age_ms)})" if f.due and f.oldest_due_age_ms is not None else ""
    return f"no live worker {since} while {work}{oldest}"


def span(ms: int | float) -> str:
    """A duration for people: 850 ms, 4.2 s, 42 s, 5m 3s, 2h 5m, 3d 4h."""
    ms = max(0.0, float(ms))
    if ms < 1000:
        return f"{int(ms)} ms"
    seconds = ms / 1000
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{int(seconds)} s"
    return two_units(int(seconds))


def two_units(seconds: int) -> str:
    """A whole number of seconds in its two largest units: 5m 3s, 2h 5m, 3d 4h (every duration formatter's tail)."""
    rest, parts = seconds, list[str]()
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        amount, rest = divmod(rest, size)
        if amount or parts:
            parts.append(f"{amount}{unit}")
    return " ".join(parts[:2])


def fmt_bytes(count: int) -> str:
    """Bytes in binary units, as Redis counts maxmemory: 512 B, 3.4 MiB, 1.0 GiB."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover (the loop returns)


def _memory(f: Facts) -> str:
    used = "?" if f.memory_used_bytes is None else fmt_bytes(f.memory_used_bytes)
    return f"{used} of {fmt_bytes(f.memory_max_bytes)} maxmemory"


def _pct(share: float) -> str:
    return f"{round(share * 100)} %"


def _requests(n: int) -> str:
    return f"{n:,} request{'s' if n != 1 else ''}"


def _are(n: int) -> str:
    return "is" if n == 1 else "are"


def _workers(n: int) -> str:
    return f"{n} worker{'s' if n != 1 else ''}"
