"""Deliver one group's due batches: claim -> rate limit -> call -> ack / requeue / dead-letter / hold.

This is the engine behind the Celery task ``imunban.deliver``; it imports no Celery. Everything it
talks to is injected (store, limiter, API client, hold, observer), so tests drive it directly.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from imunban.classify import AMBIGUOUS_GLOBAL_CODE
from imunban.errors import (
    ApiError,
    GroupGoneError,
    HoldError,
    IsolateError,
    PermanentError,
    RateLimitedError,
    RenewSigError,
    RetryableError,
)
from imunban.hold import Hold
from imunban.limiter import PENALTY_MS, RateLimiter
from imunban.observe import Observer
from imunban.retry import RetryPolicy, backoff_ms, exhausted, halves
from imunban.settings import Settings
from imunban.store import Batch, Held, Store

log = logging.getLogger(__name__)

#: A delivery run hands its thread back after this long, so other groups and messages get a turn.
DELIVER_BUDGET_S = 3.0


class _HeldMeanwhile(Exception):
    """The hold was set while this batch waited for its rate-limit slot."""


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
    codes: dict[int, int] = field(default_factory=dict)


class Deliverer:
    """Runs delivery for one group at a time; safe to run in many threads, processes and hosts."""

    def __init__(
        self,
        store: Store,
        limiter: RateLimiter,
        api: UnbanApi,
        hold: Hold,
        *,
        policy: RetryPolicy | None = None,
        observer: Observer | None = None,
        rand: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.limiter = limiter
        self.api = api
        self.hold = hold
        self.policy = policy or RetryPolicy.from_settings(Settings())
        self.observer = observer or Observer()
        self._rand = rand
        self._monotonic = monotonic

    def deliver_group(
        self,
        group_id: str,
        *,
        budget_s: float = DELIVER_BUDGET_S,
        probe: bool = False,
        heartbeat: Callable[[], object] | None = None,
    ) -> Report:
        """Deliver the group's claimable batches until none is left or ``budget_s`` is spent.

        With ``probe``, deliver exactly one batch even though delivery is held: the hold's probe.
        """
        report = Report()
        deadline = self._monotonic() + budget_s
        while True:
            group_id, batch = self._next_batch(group_id, probe)
            if isinstance(batch, Held):
                report.held = True
                return report
            if batch is None:
                return report
            report.batches += 1
            self.deliver_batch(batch, report, probe=probe)
            if probe or report.held or self._monotonic() >= deadline:
                return report
            if heartbeat is not None:
                heartbeat()

    def _next_batch(self, group_id: str, probe: bool) -> tuple[str, Batch | Held | None]:
        """Claim the next batch: an urgent group first, then our own, then the oldest claimable one.

        A high-priority request anywhere jumps ahead (any running delivery serves it next), and a run
        whose group is empty moves on to the oldest waiting group instead of ending: one Celery task
        then carries many calls, which keeps task overhead off the hot path.
        """
        if probe:
            return group_id, self.store.claim(group_id, probe=True)
        head = self.store.index_head()
        order = [group_id]
        if head is not None:
            order.insert(0 if head[1] else 1, head[0])
        for candidate in dict.fromkeys(order):
            batch = self.store.claim(candidate)
            if batch is not None:
                return candidate, batch
        return group_id, None

    def deliver_batch(self, batch: Batch, report: Report, *, probe: bool = False) -> None:
        """Make the call for one leased batch and record the outcome of each member."""
        try:
            self._call(batch, report, probe=probe)
        except _HeldMeanwhile:
            # Another worker hit a configuration error while we waited for our slot: do not call.
            self.store.requeue(batch, delay_ms=0, counts_as_attempt=False)
            report.held = True
            return
        except ApiError as exc:
            self._failed(batch, exc, report, probe=probe)
            return
        acked, latencies = self.store.ack(batch, "delivered")
        report.delivered += acked
        self.observer.delivered(latencies)
        if probe:
            self._release_hold()

    def _call(self, batch: Batch, report: Report, *, probe: bool = False) -> None:
        try:
            self._call_once(batch, report, probe=probe)
        except RenewSigError:
            # The cached UserSig expired or was invalidated: sign afresh and try exactly once more.
            self.api.renew_sig()
            try:
                self._call_once(batch, report, probe=probe)
            except RenewSigError as again:
                raise HoldError(again.code, f"UserSig rejected again after renewal: {again.info}") from again

    def _call_once(self, batch: Batch, report: Report, *, probe: bool = False) -> None:
        self.observer.limiter_wait(self.limiter.acquire())
        if not probe and self.hold.active():
            raise _HeldMeanwhile
        started = self._monotonic()
        code = 0
        try:
            self.api.unban(batch.group_id, batch.members)
        except ApiError as exc:
            code = exc.code if exc.code else -1
            raise
        finally:
            report.calls += 1
            report.codes[code] = report.codes.get(code, 0) + 1
            self.observer.api_call(code, len(batch.items), self._monotonic() - started)
            self.store.incr("calls")

    def _failed(self, batch: Batch, exc: ApiError, report: Report, *, probe: bool) -> None:
        ambiguous = exc.code == AMBIGUOUS_GLOBAL_CODE and isinstance(exc, HoldError)
        if ambiguous and not self.hold.is_global_10007(batch.group_id):
            # One group so far: maybe just its type. Retry it; more groups saying 10007 will hold.
            self._retry(batch, exc, report)
            return
        if isinstance(exc, HoldError):
            self._hold(batch, exc, report)
        elif isinstance(exc, RateLimitedError):
            self.limiter.penalize(PENALTY_MS)
            self.store.incr("rate_limited")
            # Our own pace was wrong, not the request: it goes back at once and costs no attempt.
            report.retried += self.store.requeue(batch, delay_ms=0, code=exc.code, counts_as_attempt=False)
        elif isinstance(exc, IsolateError) and len(batch.items) > 1:
            if probe:
                self._release_hold()
            self._isolate(batch, exc, report)
        elif isinstance(exc, GroupGoneError):
            if probe:
                self._release_hold()
            self._group_gone(batch, exc, report)
        elif isinstance(exc, PermanentError):
            if probe:
                self._release_hold()
            self._dead(batch, exc, report)
        elif probe:
            # A transient failure proves nothing about the configuration: keep holding, no attempt spent.
            self.store.requeue(batch, delay_ms=0, code=exc.code, counts_as_attempt=False)
        else:
            self._retry(batch, exc, report)

    def _hold(self, batch: Batch, exc: ApiError, report: Report) -> None:
        log.error("holding delivery for the whole app: ErrorCode %s: %s", exc.code, exc.info)
        self.hold.set(exc.code, exc.info)
        self.observer.hold(exc.code)
        report.held = True
        # Nothing is dead-lettered and no attempt is spent: the requests are fine, the setup is not.
        self.store.requeue(batch, delay_ms=0, code=exc.code, counts_as_attempt=False)

    def _release_hold(self) -> None:
        if self.hold.get() is not None:
            log.warning("probe succeeded: delivery resumes")
            self.hold.release()
            self.observer.hold(None)

    def _isolate(self, batch: Batch, exc: ApiError, report: Report) -> None:
        """Bisect: retry each half on its own until the bad member(s) stand alone."""
        first, second = halves(batch.items)
        self.deliver_batch(Batch(batch.group_id, batch.token, batch.claimed_at_ms, tuple(first)), report)
        if report.held:
            # A hold arrived during the first half: the second goes back untouched, no attempt spent.
            if second:
                self.store.requeue(batch.subset(i.member for i in second), delay_ms=0, counts_as_attempt=False)
            return
        if second:
            # The first half is finished (acked or requeued); a hold here has already requeued the second.
            self.deliver_batch(Batch(batch.group_id, batch.token, batch.claimed_at_ms, tuple(second)), report)

    def _group_gone(self, batch: Batch, exc: ApiError, report: Report) -> None:
        acked, _ = self.store.ack(batch, "group_gone", code=exc.code, info=exc.info)
        ended = self.store.end_group(batch.group_id, code=exc.code, info=exc.info)
        report.group_gone += acked + ended
        self.observer.group_gone(acked + ended)

    def _dead(self, batch: Batch, exc: ApiError, report: Report) -> None:
        acked, _ = self.store.ack(batch, "dead", code=exc.code, info=exc.info)
        report.dead += acked
        self.observer.dead(acked, exc.code)
        log.warning(
            "dead-lettered %d member(s) of group %r: ErrorCode %s: %s",
            acked,
            batch.group_id,
            exc.code,
            exc.info,
        )

    def _retry(self, batch: Batch, exc: ApiError, report: Report) -> None:
        """Retry with backoff; members out of attempts or too old are dead-lettered instead."""
        p = self.policy
        give_up = [
            i.member
            for i in batch.items
            if exhausted(
                attempts=i.attempts + 1,
                age_ms=batch.claimed_at_ms - i.due_ms,
                max_attempts=p.max_attempts,
                max_age_ms=p.max_age_ms,
            )
        ]
        if give_up:
            self._dead(batch.subset(give_up), exc, report)
        rest = batch.subset(i.member for i in batch.items if i.member not in give_up)
        if rest.items:
            attempt = max(i.attempts for i in rest.items) + 1
            delay = backoff_ms(attempt, base_ms=p.backoff_base_ms, cap_ms=p.backoff_cap_ms, rand=self._rand)
            retried = self.store.requeue(rest, delay_ms=delay, code=exc.code, counts_as_attempt=True)
            report.retried += retried
            self.observer.retried(retried)
            level = logging.INFO if isinstance(exc, RetryableError) else logging.WARNING
            log.log(level, "retrying %d member(s) of %r in %d ms: %s", retried, batch.group_id, delay, exc)
