"""What the store hands out: leased batches and their members, enqueue results, the "held" answer."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from imunban.errors import RedisFullError


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
    """What an enqueue stored: members now ready, members scheduled later, pending ones replaced.

    ``stale`` counts members ignored because a higher version was already applied to them.
    """

    ready: int = 0
    scheduled: int = 0
    replaced: int = 0
    stale: int = 0

    @property
    def stored(self) -> int:
        return self.ready + self.scheduled

    def __add__(self, other: EnqueueResult) -> EnqueueResult:
        return EnqueueResult(
            self.ready + other.ready,
            self.scheduled + other.scheduled,
            self.replaced + other.replaced,
            self.stale + other.stale,
        )


@dataclass(frozen=True)
class RescheduleResult:
    """What a reschedule moved, and how many members it ignored because a higher version was applied."""

    rescheduled: int = 0
    stale: int = 0


class EnqueueRefusedError(RedisFullError):
    """Redis reached ``maxmemory`` during an enqueue; ``result`` is what was stored before the refusal.

    Each script call (one chunk) is stored whole or refused whole, so ``result`` is exact.
    """

    def __init__(
        self,
        result: EnqueueResult,
        *,
        requested: int | None = None,
        source: str = "",
        reason: str = "maxmemory reached",
    ) -> None:
        self.result = result
        self.reason = reason
        of = f" of {requested}" if requested is not None else ""
        super().__init__(
            "the enqueue",
            f": {result.stored}{of} requests{source} were stored before the refusal "
            f"({result.ready} ready, {result.scheduled} scheduled) and nothing more; sending them all again "
            "later is safe (a pending request is replaced, not duplicated)",
            reason=reason,
        )


class Held:
    """Returned by :meth:`Store.claim` while delivery is held."""


HELD = Held()
