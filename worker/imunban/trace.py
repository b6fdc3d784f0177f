"""``imunban trace``: what became of one request, or of one member in every group, in O(1) at any volume.

Two sources, read in one round trip: the live state (pending, in flight, a dead letter: the store's own
keys) and the request's trace record. The scripts that end a request write that record as they end it
(``lua/_lib.lua`` trace_end and trace_stale; the trace shards of ``keys.py``) and it is kept
``IMUNBAN_TRACE_TTL_S`` whatever the traffic since: no read here scans the outcome stream. A member's
records of every group share one shard (a small hash), so finding the member everywhere reads that one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, cast

import redis
from redis.commands.core import Script

from imunban.cluster_scripts import ScriptCall
from imunban.connection import translated
from imunban.keys import HIGH_BAND_MS, SEP, Keys, glob_escape, request_id, split_request_id
from imunban.pipelines import run_scripts
from imunban.scripts import register, script_keys
from imunban.settings import DEFAULT_TRACE_TTL_S
from imunban.stats import parse_lease, parse_meta

#: A record's outcome letter (lua/_lib.lua TRACE_LETTER) -> the outcome's name.
OUTCOMES = {"d": "delivered", "x": "dead", "g": "group_gone", "c": "cancelled"}
#: Most of a member's requests a member search answers with (its newest outcomes first).
MEMBER_MAX = 100
#: HSCAN page when a member's shard has grown past a compact listpack (a very large store).
SCAN_COUNT = 1_000


@dataclass(frozen=True)
class Superseded:
    """An instruction ignored because a higher version had been applied (a stale instruction)."""

    at_ms: int
    #: The ignored instruction's version; the one applied then (None: unknown), and whether a cancel applied it.
    ignored_version: int | None
    applied_version: int | None
    by_cancel: bool


@dataclass(frozen=True)
class Record:
    """A request's trace record: its last outcome (None while there is only a note of a stale instruction)."""

    outcome: str | None
    at_ms: int | None
    attempts: int
    code: int | None
    version: int | None
    info: str
    superseded: Superseded | None

    def outcome_dict(self) -> dict[str, Any] | None:
        """The last outcome as the trace documents show it, None when there is none."""
        if self.outcome is None:
            return None
        return {
            "outcome": self.outcome,
            "at_ms": self.at_ms,
            "attempts": self.attempts,
            "code": self.code,
            "info": self.info,
            "version": self.version,
        }


def _int(text: str) -> int | None:
    return int(text) if text else None


def parse_record(raw: str) -> Record:
    """A record "L|at_ms|attempts|code|version|note|info" (``lua/_lib.lua`` trace_end and trace_stale write it)."""
    letter, at_ms, attempts, code, version, note, info = raw.split("|", 6)
    superseded = None
    if note:
        at, ignored, applied = note.split("/")
        superseded = Superseded(int(at), _int(ignored), _int(applied.rstrip("c")), applied.endswith("c"))
    return Record(OUTCOMES.get(letter), _int(at_ms), int(attempts or 0), _int(code), _int(version), info, superseded)


# -- reading ----------------------------------------------------------------------------------------


def _call(script: Script, keys: Keys, group_id: str, member: str) -> ScriptCall:
    """The read-only ``trace`` script call for one request: its live state, its trace record and the app's
    ``untraced`` count in one consistent step (see lua/trace.lua)."""
    return script, script_keys(keys, "trace", [group_id]), [member, request_id(group_id, member)]


def trace(
    client: redis.Redis, keys: Keys, group_id: str, member: str, *, kept_s: int = DEFAULT_TRACE_TTL_S
) -> dict[str, Any]:
    """Where one request is now and its last outcome; ``state`` says which (see :func:`summary`)."""
    [reply] = run_scripts(client, [_call(register(client, "trace"), keys, group_id, member)], operation="trace")
    *replies, untraced = cast(list[Any], reply)
    out = _document(group_id, member, replies)
    out["trace_kept_s"] = kept_s
    out["untraced"] = int(untraced or 0)
    out["summary"] = summary(out)
    return out


def member_search(
    client: redis.Redis, keys: Keys, member: str, *, limit: int = MEMBER_MAX, kept_s: int = DEFAULT_TRACE_TTL_S
) -> dict[str, Any]:
    """The member's requests in every group that have a trace record (they ended, or an instruction was noted,
    within the time records are kept), newest first, each traced as :func:`trace` does.

    One shard holds the member's records (keys.py), so this reads one small hash and then the live state
    of at most ``limit`` requests. A request that is pending and never ended yet has no record: trace it
    by group and member.
    """
    shard, suffix = keys.trace_of(member), SEP + member
    with translated("trace"):
        found = {
            split_request_id(field)[0]: parse_record(raw)
            for field, raw in client.hscan_iter(shard, match="*" + glob_escape(suffix), count=SCAN_COUNT)
            if field.endswith(suffix)
        }
    newest = sorted(found, key=lambda group: _written_ms(found[group]), reverse=True)[:limit]
    # Not MULTI (refused at maxmemory, when an operator needs this most): each script call is one
    # consistent view of its request, and they all go in one round trip.
    script = register(client, "trace")  # once: registering hashes the whole source
    calls = [_call(script, keys, group_id, member) for group_id in newest]
    replies = cast(list[list[Any]], run_scripts(client, calls, operation="trace")) if calls else []
    requests = []
    for group_id, reply in zip(newest, replies, strict=True):
        doc = _document(group_id, member, reply[:-1])
        doc["summary"] = summary(doc)
        requests.append(doc)
    return {"member": member, "found": len(found), "shown": len(requests), "trace_kept_s": kept_s, "requests": requests}


def _written_ms(record: Record) -> int:
    return max(record.at_ms or 0, record.superseded.at_ms if record.superseded else 0)


def _document(group_id: str, member: str, replies: list[Any]) -> dict[str, Any]:
    """One request's trace document from the reply of the ``trace`` script (without its last item)."""
    ready, sched, inflight, lease, dead, dead_info, meta, high, version, raw_record = replies
    record = parse_record(raw_record) if raw_record else None
    out: dict[str, Any] = {"group_id": group_id, "member": member}
    if ready is not None:
        score = int(ready)
        high = high or score < 0
        out.update(state="ready", due_ms=score + HIGH_BAND_MS if score < 0 else score)
    elif sched is not None:
        out.update(state="scheduled", due_ms=int(sched))
    elif inflight is not None:
        leased = parse_lease(lease)
        high = leased is not None and leased.high
        out.update(state="in_flight", lease_deadline_ms=int(inflight), due_ms=leased.due_ms if leased else None)
    elif dead is not None:
        letter = cast(dict[str, Any], json.loads(dead_info) if dead_info else {"at_ms": int(dead)})
        out.update(state="dead", dead=letter)
    elif record is not None and record.outcome is not None:
        out["state"] = record.outcome
    elif record is not None:
        out["state"] = "superseded"
    else:
        out["state"] = "never_seen"
    out["priority"] = "high" if high else "normal"
    live = out["state"] in ("ready", "scheduled", "in_flight")
    # One number of attempts: the calls the state described took (so far, while it is live).
    if live and (parsed := parse_meta(meta)):
        out.update(
            attempts=parsed.attempts,
            first_failure_ms=parsed.first_failure_ms,
            last_code=parsed.last_code,
            original_due_ms=parsed.due_ms,
        )
    elif "dead" in out:
        out["attempts"] = int(out["dead"].get("attempts") or (record.attempts if record else 0))
    elif record is not None and not live:
        out["attempts"] = record.attempts
    else:
        out["attempts"] = 0
    if version:
        # The version last applied (a trailing "c": by a cancel); instructions below it are ignored.
        out["version"] = int(version.rstrip("c"))
        out["version_by_cancel"] = version.endswith("c")
    out["last_outcome"] = record.outcome_dict() if record else None
    out["superseded"] = asdict(record.superseded) if record and record.superseded else None
    return out


# -- saying it ------------------------------------------------------------------------------------


def iso_ms(ms: int | None) -> str:
    """Epoch ms as ISO-8601 UTC, '-' for None."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _attempts(n: int) -> str:
    return f"{n} attempt{'' if n == 1 else 's'}"


def kept_text(seconds: int) -> str:
    """A duration such as ``7 days`` or ``90 s`` (how long records are kept)."""
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return f"{seconds} s"


def summary(doc: dict[str, Any], fmt: Callable[[int | None], str] = iso_ms) -> str:
    """One line saying what became of the request of a trace document (``fmt`` writes a time)."""
    state = doc["state"]
    last = doc.get("last_outcome")
    if state in ("ready", "scheduled"):
        return f"pending (due {fmt(doc.get('due_ms'))})"
    if state == "in_flight":
        return f"in flight (lease until {fmt(doc.get('lease_deadline_ms'))})"
    if state == "dead" and doc.get("dead"):
        letter = doc["dead"]
        return outcome_text({**letter, "outcome": "dead", "attempts": doc["attempts"]}, fmt)
    if last is not None and state == last["outcome"]:
        return outcome_text(last, fmt) + (" (its dead letter was purged)" if state == "dead" else "")
    if state == "superseded":
        return "superseded: " + superseded_text(doc["superseded"], fmt)
    text = "never seen: nothing pending, in flight or dead, and no outcome"
    if kept := doc.get("trace_kept_s"):
        text += f" in the last {kept_text(int(kept))}"
    if doc.get("version_by_cancel"):
        text += f"; a cancel with version {doc['version']} applied (lower versions are ignored)"
    if doc.get("untraced"):
        text += f" ({doc['untraced']:,} outcomes went unrecorded while Redis was full)"
    return text


def outcome_text(last: dict[str, Any], fmt: Callable[[int | None], str] = iso_ms) -> str:
    """A last outcome in words, e.g. "delivered at … after 1 attempt" or "dead at …: ErrorCode 10004: …"."""
    outcome, at, attempts = last["outcome"], fmt(last.get("at_ms")), int(last.get("attempts") or 0)
    if outcome == "delivered":
        return f"delivered at {at} after {_attempts(attempts)}"
    if outcome == "dead":
        info = last.get("info") or ""
        return f"dead at {at}: ErrorCode {last.get('code')}{': ' + info if info else ''}, after {_attempts(attempts)}"
    if outcome == "group_gone":
        return f"group gone at {at}: ErrorCode {last.get('code')} (the group no longer exists)"
    text = f"cancelled at {at}"
    if last.get("version") is not None:
        text += f" by an instruction with version {last['version']}"
    return text + (f", after {_attempts(attempts)} that failed" if attempts else "")


def superseded_text(note: dict[str, Any], fmt: Callable[[int | None], str] = iso_ms) -> str:
    """The note of a stale instruction, e.g. "an instruction with version 5 was ignored at …: version 7 applied"."""
    ignored = note.get("ignored_version")
    applied = note.get("applied_version")
    text = "an instruction" + (f" with version {ignored}" if ignored is not None else "")
    text += f" was ignored at {fmt(note['at_ms'])}"
    if applied is not None:
        text += f": version {applied} {'(a cancel) ' if note.get('by_cancel') else ''}was applied"
    return text
