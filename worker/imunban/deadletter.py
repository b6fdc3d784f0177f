"""Dead letters: requests that ended ``dead``. List them, replay them, purge them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from imunban.connection import translated
from imunban.keys import Keys, split_request_id
from imunban.pipelines import run_scripts
from imunban.scripts import GroupArgs, register, script_keys
from imunban.settings import Durability


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


class DeadLetters:
    """The dead-letter set of one deployment."""

    def __init__(self, client: redis.Redis, keys: Keys, *, durability: Durability | None = None) -> None:
        self.client = client
        self.keys = keys
        #: What a replay waits for before it reports success (WAIT; see imunban.pipelines).
        self.durability = durability or Durability()
        self._replay = register(client, "dead_replay")
        self._clear = register(client, "dead_clear")

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
        out = []
        for rid, raw in zip(rids, infos, strict=True):
            group_id, member = split_request_id(rid)
            info: dict[str, Any] = json.loads(raw) if raw else {}
            out.append(
                DeadLetter(
                    group_id=group_id,
                    member=member,
                    code=int(info.get("code", 0)),
                    info=str(info.get("info", "")),
                    attempts=int(info.get("attempts", 0)),
                    at_ms=int(info.get("at_ms", 0)),
                )
            )
        return out

    def replay(self, pairs: Sequence[tuple[str, str]] = (), *, limit: int = 10_000) -> int:
        """Schedule dead letters again, due now (the given (group, member) pairs, else the oldest)."""
        k = self.keys
        with translated("dead letters"):
            if pairs:
                chosen = list(pairs)
            elif limit <= 0:
                return 0  # ZRANGE 0 -1 would mean "everything"
            else:
                rids = cast(list[str], self.client.zrange(k.dead, 0, limit - 1))
                chosen = [split_request_id(rid) for rid in rids]
            if not chosen:
                return 0
            packed = GroupArgs()
            for group_id, member in chosen:
                packed.add(group_id, [member])
        # Each group's ready and sched sets are passed (see dead_replay.lua): a replayed request
        # goes to sched:{group}, and one pending again is never duplicated.
        call = (self._replay, script_keys(k, "dead_replay", packed.groups), packed.argv())
        (replayed,) = run_scripts(self.client, [call], operation="dead letters", durability=self.durability)
        return int(replayed)

    def replay_all(self) -> int:
        """Replay every dead letter; returns how many were scheduled again."""
        total = 0
        while self.count():
            total += self.replay()
        return total

    def purge(self) -> int:
        """Delete every dead letter; returns how many there were."""
        with translated("dead letters"):
            # A script, not MULTI: purging frees memory, so it must work on a full Redis (see dead_clear.lua).
            count = self._clear(keys=script_keys(self.keys, "dead_clear"))
        return int(count)
