"""What an operator may do, each through the engine's normal path, each recorded in the outcome stream.

Cancel and reschedule go through :class:`~imunban.store.Store` (cancel; reschedule checks "still
pending?" and moves in one script, so nothing cancelled or delivered meanwhile comes back; both take a
version like any intake), replays through :meth:`~imunban.deadletter.DeadLetters.replay` (due now,
then the pump and the global limiter as usual; a dead letter a later instruction ended is skipped),
"probe now" makes the hold's next probe due as soon as the hold allows (never before the last probe
plus its minimum interval), pause and resume go through :class:`~imunban.pause.Pause` (their scripts
write the audit entry themselves, in the same step, as the command line's do). Every action appends an
audit entry (``outcome`` = ``audit``, docs/outcomes.md); one that stops part way on a Redis error is
audited with what it applied (:class:`StoppedPartWay`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from imunban.connection import server_time_ms, translated
from imunban.deadletter import ReplayResult
from imunban.errors import ImunbanError, StoreError, ValidationError
from imunban.pause import Actor, Resumed
from imunban.scripts import register
from imunban.validation import parse_at, validate_group_id, validate_member, validate_version
from imunban.web.auth import Principal
from imunban.web.context import AppContext
from imunban.web.data import DeadFilter, dead_matching

log = logging.getLogger("imunban.web")

#: Requests per engine call when an action covers many (replay or purge "all that match").
CHUNK = 1_000

Pair = tuple[str, str]


class StoppedPartWay(ImunbanError):
    """An action over many requests met a Redis error after ``applied`` of them were done (each step is atomic)."""

    def __init__(self, applied: int, error: StoreError) -> None:
        self.applied = applied
        self.error = error
        super().__init__(f"stopped part way: {applied} applied before the error, the rest not: {error}")


@contextmanager
def _stopping(applied: Callable[[], int]) -> Iterator[None]:
    """Turn a Redis error inside an action into :class:`StoppedPartWay` with what ``applied()`` says was done."""
    try:
        yield
    except StoreError as exc:
        raise StoppedPartWay(applied(), exc) from exc


def audit(ctx: AppContext, who: Principal, action: str, count: int, detail: str = "", client: str = "") -> None:
    """Append one audit entry to the outcome stream: who (role, how signed in), what, how many.

    It carries every field an outcome entry has (empty group and member, code 0), so a consumer
    written for outcomes does not break on it; ``outcome`` = ``audit`` tells it apart.
    """
    now = server_time_ms(ctx.client, ctx.keys.stats)
    fields: dict[Any, Any] = {
        "group_id": "", "member": "", "outcome": "audit", "code": 0, "info": detail, "attempts": 0,
        "due_ms": now, "at_ms": now, "app": ctx.keys.app,
        "action": action, "count": count, "role": who.role, "via": who.via, "client": client,
    }  # fmt: skip
    pairs = [part for name, value in fields.items() for part in (name, value)]
    with translated("audit"):
        # A script (audit.lua): the entry is written on a full Redis too, where a plain XADD is refused.
        register(ctx.client, "audit", package="imunban.web")(
            keys=[ctx.keys.outcomes], args=[ctx.settings.outcome_stream_maxlen, *pairs]
        )


def audit_stopped(ctx: AppContext, who: Principal, action: str, stop: StoppedPartWay, client: str = "") -> None:
    """Audit what an action applied before it stopped, with the error; an audit that fails too is logged, and the
    action's own error still reaches the caller."""
    try:
        audit(ctx, who, action, stop.applied, f"stopped part way: {stop.error}", client)
    except ImunbanError as exc:
        log.warning("could not audit %s (%d applied before: %s): %s", action, stop.applied, stop.error, exc)


def form_version(text: str, field: str = "version") -> int | None:
    """A version typed in a form ('' for none): a decimal int64; errors name the field."""
    if not text.strip():
        return None
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise ValidationError(field, f"must be an integer, got {text!r}") from None
    return validate_version(value, field)


def parse_pairs(items: Sequence[Any]) -> list[Pair]:
    """[{"group_id", "member"}] or ["group\\u001fmember"] -> validated (group, member) pairs."""
    pairs: list[Pair] = []
    for index, item in enumerate(items):
        if isinstance(item, dict):
            group, member = item.get("group_id"), item.get("member")
        elif isinstance(item, str) and "\x1f" in item:
            group, _, member = item.partition("\x1f")
        else:
            group = member = None
        pairs.append(
            (
                validate_group_id(group, f"requests[{index}].group_id"),
                validate_member(member, f"requests[{index}].member"),
            )
        )
    return pairs


def _by_group(pairs: Sequence[Pair]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for group, member in pairs:
        groups.setdefault(group, []).append(member)
    return groups


def cancel(ctx: AppContext, pairs: Sequence[Pair], version: int | None = None) -> int:
    """End requests (pending, in flight or dead letters) through Store.cancel; with ``version``, as any cancel."""
    done = 0
    with _stopping(lambda: done):
        for group, members in _by_group(pairs).items():
            done += ctx.store.cancel(group, members, version=version)
    return done


def reschedule(ctx: AppContext, pairs: Sequence[Pair], at: str | float, version: int | None = None) -> int:
    """Schedule requests still pending again at ``at`` (Unix seconds or ISO-8601), keeping each one's priority.

    Store.reschedule checks and moves in one script: a request cancelled or delivered meanwhile is left ended.
    """
    at_ms = parse_at(at, "at")
    if at_ms is None:
        raise ValidationError("at", "give the new due time (Unix seconds or ISO-8601)")
    done = 0
    with _stopping(lambda: done):
        for group, members in _by_group(pairs).items():
            done += ctx.store.reschedule(group, members, at_ms, version=version).rescheduled
    return done


def send_now(ctx: AppContext, pairs: Sequence[Pair], version: int | None = None) -> int:
    """Make pending requests due now ("Send now" on a scheduled row): a reschedule to the Redis server's now.

    They go out through the normal path, behind the rate limit and any hold or pause, never around them.
    """
    now_ms = server_time_ms(ctx.client, ctx.keys.stats)
    done = 0
    with _stopping(lambda: done):
        for group, members in _by_group(pairs).items():
            done += ctx.store.reschedule(group, members, now_ms, version=version).rescheduled
    return done


def replay(ctx: AppContext, pairs: Sequence[Pair]) -> ReplayResult:
    """Replay the given dead letters (due now, through the normal path and the global limiter)."""
    total = ReplayResult()
    with _stopping(lambda: total.replayed):
        for i in range(0, len(pairs), CHUNK):
            total += ctx.dead.replay(pairs[i : i + CHUNK])
    return total


def replay_matching(ctx: AppContext, flt: DeadFilter) -> ReplayResult:
    if flt.active:
        return replay(ctx, dead_matching(ctx, flt))
    total = ReplayResult()
    with _stopping(lambda: total.replayed):
        for step in ctx.dead.replay_rounds(limit=CHUNK):
            total += step
    return total


def purge(ctx: AppContext, pairs: Sequence[Pair]) -> int:
    """Delete the given dead letters."""
    total = 0
    with _stopping(lambda: total):
        for step in ctx.dead.purge_some(pairs):
            total += step
    return total


def purge_matching(ctx: AppContext, flt: DeadFilter) -> int:
    if not flt.active:
        with _stopping(lambda: 0):
            return ctx.dead.purge()
    return purge(ctx, dead_matching(ctx, flt))


def probe_now(ctx: AppContext) -> int | None:
    """Make the hold's next probe due as soon as the hold allows; returns when it is due (ms), None without a hold."""
    with _stopping(lambda: 0):
        return ctx.hold.probe_now()


def actor(who: Principal, client: str) -> Actor:
    """The caller as an audit entry records it: role, how it signed in, its address."""
    return Actor(who.role, who.via, client)


def pause(ctx: AppContext, who: Principal, reason: str, client: str = "") -> bool:
    """Pause delivery of the app (audited by pause.lua in the same step); True when newly paused."""
    return ctx.pause.pause(reason, actor(who, client))


def resume(ctx: AppContext, who: Principal, client: str = "") -> Resumed | None:
    """Resume delivery and wake a pump (audited by resume.lua); the pause that ended, None if there was none."""
    return ctx.pause.resume(actor(who, client))


def set_limit(ctx: AppContext, who: Principal, rate: float | None, client: str = "") -> float | None:
    """Set the app's live rate limit, or revert to the configured one with ``rate`` None (audited by
    limit_set.lua / limit_reset.lua in the same step); the live rate it replaced, None if there was none."""
    if rate is None:
        return ctx.engine.limit.reset(actor(who, client))
    return ctx.engine.limit.set(rate, actor(who, client))
