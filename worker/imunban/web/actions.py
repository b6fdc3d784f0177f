"""What an operator may do, each through the engine's normal path, each recorded in the outcome stream.

Cancel and reschedule go through :class:`~imunban.store.Store` (cancel / enqueue: "latest instruction
wins"), replays through :meth:`~imunban.deadletter.DeadLetters.replay` (due now, then the pump and
the global limiter as usual), "probe now" makes the hold's next probe due so the pump sends it on
its next tick. Every action appends an audit entry (``outcome`` = ``audit``, docs/outcomes.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from imunban.connection import server_time_ms, translated
from imunban.errors import ValidationError
from imunban.keys import request_id
from imunban.scripts import register
from imunban.validation import UnbanRequest, parse_at, validate_group_id, validate_member
from imunban.web.auth import Principal
from imunban.web.context import AppContext
from imunban.web.data import DeadFilter, dead_matching

#: Requests per engine call when an action covers many (replay or purge "all that match").
CHUNK = 1_000

Pair = tuple[str, str]


def audit(ctx: AppContext, who: Principal, action: str, count: int, detail: str = "", client: str = "") -> None:
    """Append one audit entry to the outcome stream: who (role, how signed in), what, how many.

    It carries every field an outcome entry has (empty group and member, code 0), so a consumer
    written for outcomes does not break on it; ``outcome`` = ``audit`` tells it apart.
    """
    now = server_time_ms(ctx.client)
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


def cancel(ctx: AppContext, pairs: Sequence[Pair]) -> int:
    """Cancel pending requests (and revoke in-flight copies) through Store.cancel."""
    return sum(ctx.store.cancel(group, members) for group, members in _by_group(pairs).items())


def reschedule(ctx: AppContext, pairs: Sequence[Pair], at: str | float) -> int:
    """Schedule requests again at ``at`` (Unix seconds or ISO-8601), keeping each one's priority.

    Only requests still pending are rescheduled: an enqueue would otherwise bring back one that ended.
    """
    at_ms = parse_at(at, "at")
    if at_ms is None:
        raise ValidationError("at", "give the new due time (Unix seconds or ISO-8601)")
    with translated("reschedule"):
        pipe = ctx.client.pipeline(transaction=False)
        for group, member in pairs:
            pipe.zscore(ctx.keys.ready(group), member)
            pipe.zscore(ctx.keys.sched_group(group), member)
            pipe.hexists(ctx.keys.high, request_id(group, member))
        found = pipe.execute()
    requests = []
    for i, (group, member) in enumerate(pairs):
        ready, sched, high = found[3 * i : 3 * i + 3]
        if ready is not None or sched is not None:
            requests.append(UnbanRequest(group, (member,), at_ms=at_ms, priority="high" if high else "normal"))
    return ctx.store.enqueue(requests).stored if requests else 0


def replay(ctx: AppContext, pairs: Sequence[Pair]) -> int:
    """Replay the given dead letters (due now, through the normal path and the global limiter)."""
    return sum(ctx.dead.replay(pairs[i : i + CHUNK]) for i in range(0, len(pairs), CHUNK))


def replay_matching(ctx: AppContext, flt: DeadFilter) -> int:
    if not flt.active:
        return ctx.dead.replay_all()
    return replay(ctx, dead_matching(ctx, flt))


def purge(ctx: AppContext, pairs: Sequence[Pair]) -> int:
    """Delete the given dead letters."""
    script = register(ctx.client, "dead_purge", package="imunban.web")
    total = 0
    for i in range(0, len(pairs), CHUNK):
        rids = [request_id(group, member) for group, member in pairs[i : i + CHUNK]]
        with translated("dead letters"):
            total += int(script(keys=[ctx.keys.dead, ctx.keys.dead_info], args=rids))
    return total


def purge_matching(ctx: AppContext, flt: DeadFilter) -> int:
    if not flt.active:
        return ctx.dead.purge()
    return purge(ctx, dead_matching(ctx, flt))


def probe_now(ctx: AppContext) -> bool:
    """Make the hold's next probe due now; False when there is no hold."""
    script = register(ctx.client, "probe_now", package="imunban.web")
    with translated("hold"):
        return bool(script(keys=[ctx.keys.hold]))
