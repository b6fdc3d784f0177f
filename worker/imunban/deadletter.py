"""Dead letters: requests that ended ``dead``. List them, replay them, purge them."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from imunban.connection import translated
from imunban.keys import Keys, request_id, split_request_id
from imunban.pipelines import run_scripts
from imunban.scripts import GroupArgs, register, script_keys
from imunban.settings import Durability

#: Dead letters a filtered scan looks at per script call (keeps one call short with 100,000 of them).
SCAN_BUDGET = 5_000
#: Request ids per purge script call.
PURGE_CHUNK = 1_000


@dataclass(frozen=True)
class DeadFilter:
    """Which dead letters: of one ErrorCode, of one group, or both (None: any)."""

    code: int | None = None
    group_id: str | None = None

    @property
    def active(self) -> bool:
        return self.code is not None or bool(self.group_id)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "group_id": self.group_id}


@dataclass(frozen=True)
class DeadLetter:
    group_id: str
    member: str
    code: int
    info: str
    attempts: int
    at_ms: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "member": self.member,
            "code": self.code,
            "info": self.info,
            "attempts": self.attempts,
            "at_ms": self.at_ms,
        }

    @classmethod
    def parse(cls, rid: str, raw: str | None) -> DeadLetter:
        """A dead letter from its request id and its dead_info JSON (absent: zeros)."""
        group_id, member = split_request_id(rid)
        info: dict[str, Any] = json.loads(raw) if raw else {}
        return cls(
            group_id=group_id,
            member=member,
            code=int(info.get("code") or 0),
            info=str(info.get("info") or ""),
            attempts=int(info.get("attempts") or 0),
            at_ms=int(info.get("at_ms") or 0),
        )


@dataclass(frozen=True)
class ScanPage:
    """One call of :meth:`DeadLetters.scan`: the matches, how many were looked at, where to go on (None: the end)."""

    letters: list[DeadLetter]
    looked_at: int
    next_rank: int | None


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did with the dead letters it was given.

    ``skipped_pending``: the request is pending or in flight again (its newer instruction stands);
    ``skipped_ended``: a later cancel or a higher version ended it since it died. Both kinds are dropped
    from the dead letters without a copy. ``not_dead``: given pairs that were no dead letter (any more).
    """

    replayed: int = 0
    skipped_pending: int = 0
    skipped_ended: int = 0
    not_dead: int = 0

    @property
    def skipped(self) -> int:
        return self.skipped_pending + self.skipped_ended

    @property
    def matched(self) -> int:
        """Dead letters found among those given: replayed or skipped."""
        return self.replayed + self.skipped

    def __add__(self, other: ReplayResult) -> ReplayResult:
        return ReplayResult(
            self.replayed + other.replayed,
            self.skipped_pending + other.skipped_pending,
            self.skipped_ended + other.skipped_ended,
            self.not_dead + other.not_dead,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "replayed": self.replayed,
            "skipped": self.skipped,
            "skipped_pending": self.skipped_pending,
            "skipped_ended": self.skipped_ended,
            "not_dead": self.not_dead,
        }

    def skipped_text(self) -> str:
        """Why dead letters were skipped, for people ('' when none was)."""
        parts = []
        if self.skipped_ended:
            parts.append(f"{self.skipped_ended} cancelled or superseded by a higher version since they died")
        if self.skipped_pending:
            parts.append(f"{self.skipped_pending} pending or in flight again (the newer instruction stands)")
        return f"skipped {self.skipped}: " + "; ".join(parts) if parts else ""


class DeadLetters:
    """The dead-letter set of one deployment."""

    def __init__(self, client: redis.Redis, keys: Keys, *, durability: Durability | None = None) -> None:
        self.client = client
        self.keys = keys
        #: What a replay waits for before it reports success (WAIT; see imunban.pipelines).
        self.durability = durability or Durability()
        self._replay = register(client, "dead_replay")
        self._clear = register(client, "dead_clear")
        self._scan = register(client, "dead_scan")
        self._purge = register(client, "dead_purge")

    def count(self) -> int:
        with translated("dead letters"):
            return int(self.client.zcard(self.keys.dead))

    def list(self, *, offset: int = 0, limit: int = 100) -> list[DeadLetter]:
        """Dead letters, oldest first."""
        if limit <= 0 or offset < 0:
            return []  # ZRANGE would read 0..-1 as "everything"
        with translated("dead letters"):
            rids = cast(list[str], self.client.zrange(self.keys.dead, offset, offset + limit - 1))
            infos = cast(list[str | None], self.client.hmget(self.keys.dead_info, rids) if rids else [])
        return [DeadLetter.parse(rid, raw) for rid, raw in zip(rids, infos, strict=True)]

    def scan(self, flt: DeadFilter, cursor: int = 0, limit: int = 100, *, budget: int = SCAN_BUDGET) -> ScanPage:
        """Dead letters matching ``flt``, newest first, from rank ``cursor``: at most ``limit``, looking at
        no more than ``budget`` entries (unfiltered: ``limit``) in one read-only script call (dead_scan.lua)."""
        with translated("dead letters"):
            total = int(self.client.zcard(self.keys.dead))
            raw = self._scan(
                keys=script_keys(self.keys, "dead_scan"),
                args=[
                    cursor,
                    budget if flt.active else limit,
                    limit,
                    "" if flt.code is None else flt.code,
                    flt.group_id or "",
                ],
            )
        next_rank, looked = int(raw[0]), int(raw[1])
        letters = [DeadLetter.parse(raw[i], raw[i + 1]) for i in range(2, len(raw), 2)]
        return ScanPage(letters, looked, None if next_rank < 0 or next_rank >= total else next_rank)

    def matching(self, flt: DeadFilter, chunk: int = 1_000) -> builtins.list[DeadLetter]:
        """Every dead letter matching ``flt``, newest first (for "replay/purge all that match")."""
        found: list[DeadLetter] = []
        cursor: int | None = 0
        while cursor is not None:
            page = self.scan(flt, cursor, chunk, budget=max(SCAN_BUDGET, chunk))
            found += page.letters
            cursor = page.next_rank
        return found

    def purge_some(self, pairs: Sequence[tuple[str, str]]) -> Iterator[int]:
        """Delete the given dead letters, :data:`PURGE_CHUNK` per script call; yields how many each call deleted.

        Each call is atomic on its own, so a caller that meets an error part way knows what the calls before did.
        """
        for i in range(0, len(pairs), PURGE_CHUNK):
            rids = [request_id(group, member) for group, member in pairs[i : i + PURGE_CHUNK]]
            with translated("dead letters"):
                # A script that frees memory: it works on a full Redis (dead_purge.lua).
                yield int(self._purge(keys=script_keys(self.keys, "dead_purge"), args=rids))

    def replay(self, pairs: Sequence[tuple[str, str]] = (), *, limit: int = 10_000) -> ReplayResult:
        """Schedule dead letters again, due now (the given (group, member) pairs, else the oldest).

        A dead letter whose request is pending again, or that a later cancel or higher version ended,
        is dropped and counted as skipped instead (dead_replay.lua): nothing ended comes back.
        """
        k = self.keys
        with translated("dead letters"):
            if pairs:
                chosen = list(pairs)
            elif limit <= 0:
                return ReplayResult()  # ZRANGE 0 -1 would mean "everything"
            else:
                rids = cast(list[str], self.client.zrange(k.dead, 0, limit - 1))
                chosen = [split_request_id(rid) for rid in rids]
            if not chosen:
                return ReplayResult()
            packed = GroupArgs()
            for group_id, member in chosen:
                packed.add(group_id, [member])
        # Each group's ready and sched sets are passed (see dead_replay.lua): a replayed request
        # goes to sched:{group}, and one pending again is never duplicated.
        call = (self._replay, script_keys(k, "dead_replay", packed.groups), packed.argv())
        ((replayed, pending, ended),) = run_scripts(
            self.client, [call], operation="dead letters", durability=self.durability
        )
        done = int(replayed) + int(pending) + int(ended)
        return ReplayResult(int(replayed), int(pending), int(ended), len(chosen) - done)

    def replay_rounds(self, limit: int = 10_000) -> Iterator[ReplayResult]:
        """Replay every dead letter, the oldest ``limit`` per round (one script call each); yields each round's result.

        Each round is atomic on its own: a caller that meets an error part way knows what the rounds before applied.
        """
        while self.count():
            step = self.replay(limit=limit)
            yield step
            if not step.matched:
                return  # purged under us between the read and the script: nothing left to take

    def replay_all(self) -> ReplayResult:
        """Replay every dead letter; returns how many were scheduled again and how many skipped."""
        return sum(self.replay_rounds(), ReplayResult())

    def purge(self) -> int:
        """Delete every dead letter; returns how many there were."""
        with translated("dead letters"):
            # A script, not MULTI: purging frees memory, so it must work on a full Redis (see dead_clear.lua).
            count = self._clear(keys=script_keys(self.keys, "dead_clear"))
        return int(count)
