"""The request store in Redis: enqueue, cancel, claim under a lease, acknowledge, requeue.

Every multi-step change is one Lua script in ``worker/lua``; see :mod:`imunban.keys` for the data
model. Clients must be created with ``decode_responses=True``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

import redis

from imunban.connection import server_time_ms, translated
from imunban.keys import MAX_MEMBERS, Keys
from imunban.scripts import GroupArgs, register, script_keys
from imunban.settings import LingerPolicy
from imunban.validation import UnbanRequest

#: Members per enqueue script call (bulk throughput).
ENQUEUE_CHUNK = 1_000
#: Enqueue script calls per pipeline round trip (bulk throughput).
PIPELINE_DEPTH = 8


@dataclass(frozen=True)
class Claimed:
    """One leased request: who, when it was due, its priority and the attempts it already had."""

    member: str
    due_ms: int
    high: bool
    attempts: int


@dataclass(frozen=True)
class Batch:
    """Up to 20 leased members of one group, owned by ``token`` until the lease deadline."""

    group_id: str
    token: str
    claimed_at_ms: int
    items: tuple[Claimed, ...]

    @property
    def members(self) -> list[str]:
        return [item.member for item in self.items]

    def subset(self, members: Iterable[str]) -> Batch:
        wanted = set(members)
        return Batch(self.group_id, self.token, self.claimed_at_ms, tuple(i for i in self.items if i.member in wanted))


@dataclass(frozen=True)
class EnqueueResult:
    """What an enqueue stored: members now ready, members scheduled later, pending ones replaced."""

    ready: int = 0
    scheduled: int = 0
    replaced: int = 0

    @property
    def stored(self) -> int:
        return self.ready + self.scheduled

    def __add__(self, other: EnqueueResult) -> EnqueueResult:
        return EnqueueResult(self.ready + other.ready, self.scheduled + other.scheduled, self.replaced + other.replaced)


class Held:
    """Returned by :meth:`Store.claim` while delivery is held."""


HELD = Held()


class Store:
    """Atomic operations on pending and leased requests of one deployment."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        linger: LingerPolicy | None = None,
        lease_ms: int = 30_000,
        outcome_maxlen: int = 100_000,
    ) -> None:
        self.client = client
        self.keys = keys
        #: What the scripts take: linger after the newest arrival, capped after the oldest due member.
        self.linger_arg = (linger or LingerPolicy()).script_arg
        self.lease_ms = lease_ms
        self.outcome_maxlen = outcome_maxlen
        self._enqueue = register(client, "enqueue")
        self._cancel = register(client, "cancel")
        self._claim = register(client, "claim")
        self._ack = register(client, "ack")
        self._requeue = register(client, "requeue")
        self._group_gone = register(client, "group_gone")

    # -- producers -------------------------------------------------------------------------

    def enqueue(self, requests: Iterable[UnbanRequest]) -> EnqueueResult:
        """Store validated requests; chunks are pipelined, each chunk is atomic on its own."""
        total = EnqueueResult()
        calls: list[tuple[list[str], list[str | int]]] = []
        for call in self._enqueue_calls(requests):
            calls.append(call)
            if len(calls) >= PIPELINE_DEPTH:
                total += self._run_enqueue(calls)
                calls = []
        if calls:
            total += self._run_enqueue(calls)
        return total

    def _enqueue_calls(self, requests: Iterable[UnbanRequest]) -> Iterable[tuple[list[str], list[str | int]]]:
        packed = GroupArgs()
        for request in requests:
            due = "" if request.at_ms is None else request.at_ms
            packed.add(request.group_id, request.members, due, "1" if request.high else "0")
            if len(packed.tuples) >= 4 * ENQUEUE_CHUNK:
                yield self._enqueue_args(packed)
                packed = GroupArgs()
        if packed.tuples:
            yield self._enqueue_args(packed)

    def _enqueue_args(self, packed: GroupArgs) -> tuple[list[str], list[str | int]]:
        return script_keys(self.keys, "enqueue", packed.groups), [self.linger_arg, *packed.argv()]

    def _run_enqueue(self, calls: Sequence[tuple[list[str], list[str | int]]]) -> EnqueueResult:
        with translated("enqueue"):
            if len(calls) == 1:
                results = [self._enqueue(keys=calls[0][0], args=calls[0][1])]
            else:
                pipe = self.client.pipeline(transaction=False)
                for keys, args in calls:
                    self._enqueue(keys=keys, args=args, client=pipe)
                results = pipe.execute()
        total = EnqueueResult()
        for ready, scheduled, replaced in results:
            total += EnqueueResult(int(ready), int(scheduled), int(replaced))
        return total

    def cancel(self, group_id: str, members: Sequence[str]) -> int:
        """Remove pending (ready or scheduled) requests; returns how many were pending."""
        with translated("cancel"):
            removed = self._cancel(
                keys=script_keys(self.keys, "cancel", [group_id]),
                args=[self.linger_arg, group_id, *members],
            )
        return int(removed)

    # -- delivery --------------------------------------------------------------------------

    def claimable_groups(self, limit: int) -> list[tuple[str, int]]:
        """Groups whose batch may be claimed now, oldest first, with their ready counts."""
        now_ms = server_time_ms(self.client)
        with translated("claimable_groups"):
            groups = cast(
                list[str],
                self.client.zrange(self.keys.groups, "-inf", now_ms, byscore=True, offset=0, num=limit),
            )
            if not groups:
                return []
            pipe = self.client.pipeline(transaction=False)
            for group in groups:
                pipe.zcard(self.keys.ready(group))
            counts = pipe.execute()
        return [(g, int(c)) for g, c in zip(groups, counts, strict=True) if c]

    def index_head(self) -> tuple[str, bool] | None:
        """The group served next (oldest claimable time first) and whether it holds a high member."""
        with translated("index_head"):
            head = cast(list[tuple[str, float]], self.client.zrange(self.keys.groups, 0, 0, withscores=True))
        return (head[0][0], head[0][1] < 0) if head else None

    def claim(self, group_id: str, *, probe: bool = False, max_members: int = MAX_MEMBERS) -> Batch | Held | None:
        """Lease up to ``max_members`` ready members of the group; None if nothing is claimable."""
        token = uuid.uuid4().hex
        with translated("claim"):
            raw = self._claim(
                keys=script_keys(self.keys, "claim", [group_id]),
                args=[group_id, max_members, self.lease_ms, token, self.linger_arg, int(probe), int(probe)],
            )
        if raw and raw[0] == "hold":
            return HELD
        if not raw:
            return None
        items = tuple(
            Claimed(str(raw[i]), int(raw[i + 1]), raw[i + 2] == 1, int(raw[i + 3])) for i in range(1, len(raw), 4)
        )
        return Batch(group_id, token, int(raw[0]), items)

    def ack(self, batch: Batch, outcome: str, *, code: int = 0, info: str = "") -> tuple[int, list[int]]:
        """End the batch's requests with ``outcome``; returns (acked, due->end latencies in ms)."""
        with translated("ack"):
            raw = self._ack(
                keys=script_keys(self.keys, "ack"),
                args=[batch.token, batch.group_id, outcome, code, info, self.outcome_maxlen, *batch.members],
            )
        return int(raw[0]), [int(x) for x in raw[2:]]

    def requeue(self, batch: Batch, *, delay_ms: int, code: int = 0, counts_as_attempt: bool = True) -> int:
        """Give the batch's requests back, ready again after ``delay_ms``; returns how many."""
        with translated("requeue"):
            raw = self._requeue(
                keys=script_keys(self.keys, "requeue", [batch.group_id]),
                args=[
                    batch.token, batch.group_id, max(0, int(delay_ms)), code,
                    int(counts_as_attempt), self.linger_arg, *batch.members,
                ],
            )  # fmt: skip
        return int(raw[0])

    def end_group(self, group_id: str, *, code: int, info: str) -> int:
        """The group is gone: end every pending (ready or scheduled) member of it as ``group_gone``."""
        with translated("group_gone"):
            ended = self._group_gone(
                keys=script_keys(self.keys, "group_gone", [group_id]),
                args=[group_id, code, info, self.outcome_maxlen],
            )
        return int(ended)

    def incr(self, field: str, amount: int = 1) -> None:
        """Bump a counter in the stats hash (calls, rate-limited answers, ...)."""
        with translated("stats"):
            self.client.hincrby(self.keys.stats, field, amount)
