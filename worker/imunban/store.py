"""The request store in Redis: enqueue, cancel, claim under a lease, acknowledge, requeue.

Every multi-step change is one Lua script in ``imunban/lua/``; the values it hands out (batches, results)
are in :mod:`imunban.batch`; see :mod:`imunban.keys` for the data
model. Clients must be created with ``decode_responses=True``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any, cast

import redis

from imunban.batch import HELD, Batch, Claimed, EnqueueRefusedError, EnqueueResult, Held, RescheduleResult
from imunban.connection import is_redis_full, server_time_ms, translated
from imunban.errors import RedisFullError
from imunban.keys import MAX_MEMBERS, Keys, split_request_id
from imunban.memory import MemoryGauge
from imunban.pipelines import run_scripts
from imunban.scripts import GroupArgs, ScriptKeys, register, script_keys
from imunban.settings import DEFAULT_TRACE_TTL_S, Durability, LingerPolicy
from imunban.validation import UnbanRequest

__all__ = [
    "CLAIM_REDIRECTS", "ENQUEUE_CHUNK", "HELD", "PIPELINE_DEPTH", "REAP_CHUNK", "REPLY_TTL_MS",
    "Batch", "Claimed", "EnqueueRefusedError", "EnqueueResult", "Held", "RescheduleResult", "Store",
]  # fmt: skip

#: Members per enqueue script call (bulk throughput).
ENQUEUE_CHUNK = 1_000
#: Enqueue script calls per pipeline round trip (bulk throughput).
PIPELINE_DEPTH = 8
#: Expired leases returned per reap script call.
REAP_CHUNK = 1_000
#: How far past maxmemory a request moved from a message in the same Redis is still stored (Store.enqueue).
MOVING_OVERSHOOT = 0.05
#: How many times :meth:`Store.claim_next` follows the claim script to another group before giving up.
CLAIM_REDIRECTS = 2
#: How long a claim/ack/requeue/dispatch reply is kept for a replay of the same call. redis-py's Retry
#: re-sends a script after a connection error although the first send may have run; its retries
#: (connection.connect) end well within this.
REPLY_TTL_MS = 60_000


def _call_id() -> str:
    """A fresh lease token or call id: 128 random bits as 32 hex digits, as uuid4().hex was, at a fifth of its CPU."""
    return os.urandom(16).hex()


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
        durability: Durability | None = None,
        memory: MemoryGauge | None = None,
        trace_ttl_ms: int = DEFAULT_TRACE_TTL_S * 1000,
    ) -> None:
        self.client = client
        self.keys = keys
        #: What enqueue and cancel wait for before they report success (WAIT; see imunban.pipelines),
        #: and the share of maxmemory past which an enqueue is refused (the rest is delivery's).
        self.durability = durability or Durability()
        #: How full Redis is, for that refusal (imunban.memory).
        self.memory = memory or MemoryGauge(client, keys.stats)
        #: What the scripts take: the linger bound (see imunban.linger).
        self.linger_arg = (linger or LingerPolicy()).script_arg
        self.lease_ms = lease_ms
        self.outcome_maxlen = outcome_maxlen
        #: How long the scripts that end a request keep its trace record (imunban.trace).
        self.trace_ttl_ms = trace_ttl_ms
        self._enqueue = register(client, "enqueue")
        self._cancel = register(client, "cancel")
        self._reschedule = register(client, "reschedule")
        self._claim = register(client, "claim")
        self._ack = register(client, "ack")
        self._requeue = register(client, "requeue")
        self._reap = register(client, "reap")
        self._group_gone = register(client, "group_gone")
        self._stats_incr = register(client, "stats_incr")
        # The KEYS of the scripts each delivered batch runs, their named keys built once.
        self._claim_keys = ScriptKeys(keys, "claim")
        self._ack_keys = ScriptKeys(keys, "ack")
        self._requeue_keys = ScriptKeys(keys, "requeue")

    # -- producers -------------------------------------------------------------------------

    def enqueue(self, requests: Iterable[UnbanRequest], *, moving: bool = False) -> EnqueueResult:
        """Store validated requests; chunks are pipelined, each chunk is atomic on its own.

        Refused (EnqueueRefusedError) once Redis is past the intake's share of maxmemory. ``moving``:
        the requests come from a message held in this same Redis (a Celery message on a broker that
        shares it), so storing and acknowledging it frees memory: neither the intake's share nor
        maxmemory refuses it, up to MOVING_OVERSHOOT past maxmemory (a broker queue that filled Redis
        by itself still drains; a message of many members cannot grow Redis without bound).
        """
        total = EnqueueResult()
        calls: list[tuple[list[str], list[str | int]]] = []
        for call in self._enqueue_calls(requests):
            calls.append(call)
            if len(calls) >= PIPELINE_DEPTH:
                total += self._run_enqueue(calls, total, moving)
                calls = []
        if calls:
            total += self._run_enqueue(calls, total, moving)
        return total

    def _room(self, done: EnqueueResult, *, moving: bool, fresh: bool) -> bool:
        """Refuse the next chunks when Redis is past the intake's share of maxmemory (see Durability).

        Returns whether a full Redis may let them through (``moving``, and Redis not too far past its limit).
        """
        fraction = 1.0 + MOVING_OVERSHOOT if moving else self.durability.intake_memory_fraction
        if fraction >= 1.0 and not moving:
            return False  # no reserve: Redis's own limit alone refuses (the script's first write)
        with translated("enqueue"):
            reading = self.memory.reading(fresh=fresh)
        if reading is None:
            return False  # INFO refused: Redis's own limit alone refuses, moving or not
        if not reading.over(fraction):
            return moving
        if moving or reading.over(1.0):
            raise EnqueueRefusedError(done)  # Redis itself refuses there: "maxmemory reached"
        raise EnqueueRefusedError(
            done,
            reason=f"{reading.used_bytes / reading.max_bytes:.0%} of maxmemory used; intake stops at "
            f"{fraction:.0%} (IMUNBAN_INTAKE_MEMORY_FRACTION) so that delivery always has room",
        )

    def _enqueue_calls(self, requests: Iterable[UnbanRequest]) -> Iterable[tuple[list[str], list[str | int]]]:
        packed = GroupArgs()
        for request in requests:
            due = "" if request.at_ms is None else request.at_ms
            version = "" if request.version is None else str(request.version)
            packed.add(request.group_id, request.members, due, "1" if request.high else "0", version)
            if len(packed.tuples) >= 5 * ENQUEUE_CHUNK:
                yield self._enqueue_args(packed)
                packed = GroupArgs()
        if packed.tuples:
            yield self._enqueue_args(packed)

    def _enqueue_args(self, packed: GroupArgs) -> tuple[list[str], list[str | int]]:
        # ARGV[2] (whether a full Redis lets the chunk through) is set when the pipeline runs (_run_enqueue).
        args: list[str | int] = [self.linger_arg, "0", self.trace_ttl_ms, *packed.argv()]
        return script_keys(self.keys, "enqueue", packed.groups), args

    def _run_enqueue(
        self, calls: Sequence[tuple[list[str], list[str | int]]], done: EnqueueResult, moving: bool
    ) -> EnqueueResult:
        """Run the calls; if Redis is full, raise EnqueueRefusedError with ``done`` plus what these stored."""
        # A single request may use a reading a fraction of a second old; a bulk pipeline reads afresh.
        if self._room(done, moving=moving, fresh=len(calls) > 1):
            calls = [(keys, [args[0], "1", *args[2:]]) for keys, args in calls]
        failed: list[Exception] = []
        try:
            with translated("enqueue"):
                # One pipeline, reloaded on NOSCRIPT and ended by WAIT when durable (imunban.pipelines).
                # Errors come back in place, so the chunks Redis ran before it filled up are counted.
                results = run_scripts(
                    self.client,
                    [(self._enqueue, keys, args) for keys, args in calls],
                    operation="enqueue",
                    durability=self.durability,
                    raise_on_error=False,
                )
                failed = [result for result in results if isinstance(result, Exception)]
                for error in failed:
                    if not is_redis_full(error):
                        raise error
        except RedisFullError as exc:
            raise EnqueueRefusedError(done) from exc
        total = EnqueueResult()
        for result in results:
            if not isinstance(result, Exception):
                ready, scheduled, replaced, stale = result
                total += EnqueueResult(int(ready), int(scheduled), int(replaced), int(stale))
        if failed:
            raise EnqueueRefusedError(done + total) from failed[0]
        return total

    def cancel(self, group_id: str, members: Sequence[str], *, version: int | None = None) -> int:
        """End requests: remove pending copies, revoke in-flight ones; returns how many were cancelled.

        With ``version``, members whose applied version is higher are left alone (``stale_instructions``).
        """
        keys = script_keys(self.keys, "cancel", [group_id])
        args: list[str | int] = [self.linger_arg, group_id, "" if version is None else str(version), self.trace_ttl_ms]
        args += members
        (removed,) = run_scripts(
            self.client, [(self._cancel, keys, args)], operation="cancel", durability=self.durability
        )
        return int(removed)

    def reschedule(
        self, group_id: str, members: Sequence[str], at_ms: int, *, version: int | None = None
    ) -> RescheduleResult:
        """Move members still pending (ready or scheduled) to ``at_ms``, keeping their priority.

        The check and the move are one script (reschedule.lua): a request cancelled or delivered
        meanwhile is never brought back. With ``version``, as any instruction (``stale`` when lower).
        """
        keys = script_keys(self.keys, "reschedule", [group_id])
        args: list[str | int] = [self.linger_arg, group_id, int(at_ms), "" if version is None else str(version)]
        args += [self.trace_ttl_ms, *members]
        ((moved, stale),) = run_scripts(
            self.client, [(self._reschedule, keys, args)], operation="reschedule", durability=self.durability
        )
        return RescheduleResult(int(moved), int(stale))

    # -- delivery --------------------------------------------------------------------------

    def claimable_groups(self, limit: int) -> list[tuple[str, int]]:
        """Groups whose batch may be claimed now, oldest first, with their ready counts."""
        now_ms = server_time_ms(self.client, self.keys.groups)
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

    def reap(self, *, limit: int = REAP_CHUNK) -> int:
        """Return requests whose lease expired to the schedule, due at once; returns how many."""
        k = self.keys
        now_ms = server_time_ms(self.client, self.keys.groups)
        with translated("reap"):
            rids = cast(list[str], self.client.zrange(k.inflight, "-inf", now_ms, byscore=True, offset=0, num=limit))
            if not rids:
                return 0
            packed = GroupArgs()
            for rid in rids:
                group_id, member = split_request_id(rid)
                packed.add(group_id, [member])
            # Each group's ready and sched sets are passed (see reap.lua): the reaped request goes to
            # sched:{group}, and a newer pending copy is seen and never duplicated.
            reaped = self._reap(keys=script_keys(k, "reap", packed.groups), args=packed.argv())
        return int(reaped)

    def claim(self, group_id: str, *, probe: bool = False, max_members: int = MAX_MEMBERS) -> Batch | Held | None:
        """Lease up to ``max_members`` ready members of the group; None if nothing is claimable."""
        token = _call_id()
        raw = self._run_claim(group_id, token, probe=probe, max_members=max_members, redirect=False)
        return self._claimed(group_id, token, raw)

    def claim_next(self, group_id: str, *, spread: int = 1, pick: int = 0) -> tuple[str, Batch | Held | None]:
        """A delivery run's next batch: an urgent group first, then ``group_id``, then one of the oldest claimable.

        The claim script reads the head of the groups index itself and answers with the group to serve
        instead (a high-priority member waits there, or ``group_id`` has nothing claimable): one round
        trip while the run's own group has work, two when it moves on. A run that moves on goes to the
        ``pick``-th (modulo) of the ``spread`` oldest claimable groups (1: the oldest). Returns the group
        and its batch.
        """
        candidate = group_id
        for _ in range(CLAIM_REDIRECTS + 1):
            token = _call_id()
            raw = self._run_claim(
                candidate, token, probe=False, max_members=MAX_MEMBERS, redirect=True, spread=spread, pick=pick
            )
            if raw and raw[0] == "next":
                candidate = str(raw[1])
                continue
            batch = self._claimed(candidate, token, raw)
            if batch is None and candidate != group_id:
                candidate = group_id  # the group we were sent to was emptied meanwhile: back to our own
                continue
            return candidate, batch
        return group_id, None  # the head kept moving under us: the pump dispatches whatever is left

    def _run_claim(
        self,
        group_id: str,
        token: str,
        *,
        probe: bool,
        max_members: int,
        redirect: bool,
        spread: int = 1,
        pick: int = 0,
    ) -> list[Any]:
        with translated("claim"):
            raw = self._claim(
                keys=self._claim_keys([group_id]),
                args=[
                    group_id, max_members, self.lease_ms, token, self.linger_arg, int(probe), int(probe),
                    min(self.lease_ms, REPLY_TTL_MS), int(redirect), spread, pick,
                ],
            )  # fmt: skip
        return cast(list[Any], raw)

    @staticmethod
    def _claimed(group_id: str, token: str, raw: list[Any]) -> Batch | Held | None:
        if raw and raw[0] == "hold":
            return HELD
        if not raw:
            return None
        items = tuple(
            Claimed(str(raw[i]), int(raw[i + 1]), raw[i + 2] == 1, int(raw[i + 3])) for i in range(1, len(raw), 4)
        )
        return Batch(group_id, token, int(raw[0]), items)

    def ack(
        self, batch: Batch, outcome: str, *, code: int = 0, info: str = "", calls: int = 0
    ) -> tuple[int, list[int]]:
        """End the batch's requests with ``outcome``; returns (acked, due->end latencies in ms).

        ``calls`` API calls are added to the ``calls`` counter in the same script (no round trip of its own).
        """
        with translated("ack"):
            # A fresh call id per call (the same in redis-py's re-send): a replay returns the first reply.
            raw = self._ack(
                keys=self._ack_keys(),
                args=[
                    batch.token, batch.group_id, outcome, code, info, self.outcome_maxlen,
                    _call_id(), REPLY_TTL_MS, calls, self.trace_ttl_ms, *batch.members,
                ],
            )  # fmt: skip
        return int(raw[0]), [int(x) for x in raw[2:]]

    def requeue(
        self, batch: Batch, *, delay_ms: int, code: int = 0, counts_as_attempt: bool = True, calls: int = 0
    ) -> int:
        """Give the batch's requests back, ready again after ``delay_ms``; returns how many (``calls``: as in ack)."""
        with translated("requeue"):
            raw = self._requeue(
                keys=self._requeue_keys([batch.group_id]),
                args=[
                    batch.token, batch.group_id, max(0, int(delay_ms)), code,
                    int(counts_as_attempt), self.linger_arg, _call_id(), REPLY_TTL_MS, calls, *batch.members,
                ],
            )  # fmt: skip
        return int(raw[0])

    def end_group(self, group_id: str, *, code: int, info: str) -> int:
        """The group is gone: end every pending (ready or scheduled) member of it as ``group_gone``."""
        with translated("group_gone"):
            ended = self._group_gone(
                keys=script_keys(self.keys, "group_gone", [group_id]),
                args=[group_id, code, info, self.outcome_maxlen, self.trace_ttl_ms],
            )
        return int(ended)

    def incr(self, field: str, amount: int = 1) -> None:
        """Bump a counter in the stats hash (calls, rate-limited answers, ...)."""
        with translated("stats"):
            try:
                self.client.hincrby(self.keys.stats, field, amount)
            except redis.exceptions.OutOfMemoryError:
                # Redis is full: delivery, which frees memory, still counts (stats_incr.lua is let through).
                self._stats_incr(keys=script_keys(self.keys, "stats_incr"), args=[field, amount])
