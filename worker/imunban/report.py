"""What a delivery run talks to (:class:`UnbanApi`) and what it reports (:class:`Report`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


class UnbanApi(Protocol):
    def unban(self, group_id: str, members: Sequence[str]) -> None:
        """Unban ``members`` of ``group_id``; raise the classified ApiError on failure."""
        ...

    def renew_sig(self) -> None:
        """Forget the cached UserSig so the next call signs afresh."""
        ...


@dataclass
class Report:
    """What one :meth:`Deliverer.deliver_group` run did."""

    batches: int = 0
    calls: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    group_gone: int = 0
    held: bool = False
    #: Members not sent because their lease was gone at the reservation (cancelled, superseded, lost).
    revoked: int = 0
    #: Calls by how they ended: the ErrorCode of an answer ("0", "10002", ...), else "transport" or "internal".
    codes: dict[str, int] = field(default_factory=dict)
    #: Calls made but not yet added to the store's ``calls`` counter: the next ack or requeue adds them.
    uncounted_calls: int = 0
    #: The run ended early to hand its thread to another app's waiting run (fairness.FairShare).
    gave_way: bool = False

    def take_calls(self) -> int:
        """The calls to count with the next ack or requeue (each is counted once)."""
        n, self.uncounted_calls = self.uncounted_calls, 0
        return n
