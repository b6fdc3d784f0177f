"""Delivery runs: claim a batch -> rate limit -> call -> ack / requeue / dead-letter / hold, batch after batch.

A run starts at the group the pump dispatched and moves on as groups empty (an urgent group first,
then the oldest claimable one), so one Celery task carries many calls.

This is the engine behind the Celery task ``imunban.deliver``; it imports no Celery. Everything it
talks to is injected (store, limiter, API client, hold, observer), so tests drive it directly.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from imunban.classify import AMBIGUOUS_GLOBAL_CODE
from imunban.errors import (
    ApiError,
    ConnectError,
    FailoverError,
    GroupGoneError,
    HoldError,
    InternalError,
    IsolateError,
    PermanentError,
    RateLimitedError,
    RenewSigError,
    RetryableError,
    StoreError,
    TransportError,
)
from imunban.hold import Hold
from imunban.limiter import PENALTY_MS, LeaseCheck, RateLimiter
from imunban.observe import ANSWER, INTERNAL, TRANSPORT, Observer
from imunban.report import Report, UnbanApi
from imunban.retry import RetryPolicy, backoff_ms, exhausted, halves, overlap_ms
from imunban.settings import Settings
from imunban.store import Batch, Held, Store

__all__ = ["CLAIM_SPREAD", "DELIVER_BUDGET_S", "Deliverer", "Report", "UnbanApi"]

log = logging.getLogger(__name__)

#: A delivery run hands its thread back after this long, so other groups and messages get a turn.
DELIVER_BUDGET_S = 3.0
#: A running delivery refreshes its dispatch marker at most this often (the marker lives ~15 s).
HEARTBEAT_EVERY_S = 1.0
#: A run that moves on goes to a random one of this many oldest claimable groups, not always the oldest:
#: when every run went to the head, all but one found it emptied and claimed again (2.3 claims per API
#: call during a drain, issue 20). 16 is the default deployment's delivery threads (2 workers x 8); the
#: order among the 16 oldest claimable groups is within ~16 calls (~85 ms at 190/s) of oldest-first.
CLAIM_SPREAD = 16


class _HeldMeanwhile(Exception):
    """The hold was set while this batch waited for its rate-limit slot."""


@dataclass
class _Live:
    """The part of a batch still leased to this run: each reservation's lease check narrows it."""

    batch: Batch


class Deliverer:
    """Runs delivery, one batch at a time per run; safe to run in many threads, processes and hosts."""

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
        pick: Callable[[int], int] = random.randrange,
    ) -> None:
        self.store = store
        self.limiter = limiter
        self.api = api
        self.hold = hold
        self.policy = policy or RetryPolicy.from_settings(Settings())
        self.observer = observer or Observer()
        self._rand = rand
        self._monotonic = monotonic
        self._pick = pick  # which of the CLAIM_SPREAD oldest claimable groups a run moves on to

    def deliver_group(
        self,
        group_id: str,
        *,
        budget_s: float = DELIVER_BUDGET_S,
        probe: bool = False,
        heartbeat: Callable[[], object] | None = None,
        give_way: Callable[[], bool] | None = None,
    ) -> Report:
        """Run delivery from ``group_id`` on: its batches, then other claimable groups', until none is left
        or ``budget_s`` is spent.

        With ``probe``, deliver exactly one batch even though delivery is held: the hold's probe.
        ``give_way`` is asked after each batch (nothing is leased then): True ends the run, so its
        thread goes to another app's waiting run (fairness.FairShare); the pump dispatches this
        app's remaining work again.
        """
        report = Report()
        try:
            return self._deliver_until(group_id, report, budget_s, probe, heartbeat, give_way)
        finally:
            if report.uncounted_calls:  # a batch whose ack or requeue never ran (Redis trouble, a bug)
                with contextlib.suppress(StoreError):
                    self.store.incr("calls", report.take_calls())

    def _deliver_until(
        self,
        group_id: str,
        report: Report,
        budget_s: float,
        probe: bool,
        heartbeat: Callable[[], object] | None,
        give_way: Callable[[], bool] | None = None,
    ) -> Report:
        deadline = self._monotonic() + budget_s
        # The dispatch marker lives marker_ttl (seconds); refreshing it after every batch is a round
        # trip per call for nothing: once a second is plenty.
        next_beat = self._monotonic() + HEARTBEAT_EVERY_S
        serving = group_id  # the group the run serves now: the claim script moves it on as groups empty
        while True:
            serving, batch = self._next_batch(serving, probe)
            if isinstance(batch, Held):
                report.held = True
                return report
            if batch is None:
                return report
            report.batches += 1
            try:
                self.deliver_batch(batch, report, probe=probe)
            except StoreError:
                raise  # Redis trouble: nothing can be requeued now; the lease lapses and the reaper returns it
            except Exception as exc:
                self._internal_error(batch, exc, report)
            now = self._monotonic()
            if probe or report.held or now >= deadline:
                return report
            if give_way is not None and give_way():
                report.gave_way = True
                return report
            if heartbeat is not None and now >= next_beat:
                next_beat = now + HEARTBEAT_EVERY_S
                heartbeat()

    def _next_batch(self, group_id: str, probe: bool) -> tuple[str, Batch | Held | None]:
        """Claim the next batch: an urgent group first, then our own, then the oldest claimable one.

        A high-priority request anywhere jumps ahead (any running delivery serves it next), and a run
        whose group is empty moves on to the oldest waiting group instead of ending: one Celery task
        then carries many calls, which keeps task overhead off the hot path.
        """
        if probe:
            return group_id, self.store.claim(group_id, probe=True)
        # One claim script reads the index head and says which group to serve instead (Store.claim_next).
        return self.store.claim_next(group_id, spread=CLAIM_SPREAD, pick=self._pick(CLAIM_SPREAD))

    def deliver_batch(self, batch: Batch, report: Report, *, probe: bool = False) -> None:
        """Make the call for one leased batch and record the outcome of each member."""
        live = _Live(batch)
        try:
            self._call(live, report, probe=probe)
        except _HeldMeanwhile:
            # Another worker hit a configuration error while we waited for our slot: do not call.
            self.store.requeue(live.batch, delay_ms=0, counts_as_attempt=False, calls=report.take_calls())
            report.held = True
            return
        except ApiError as exc:
            self._failed(live.batch, exc, report, probe=probe)
            return
        batch = live.batch
        if not batch.items:
            return  # every member was revoked before the call: nothing was sent, nothing to record
        acked, latencies = self.store.ack(batch, "delivered", calls=report.take_calls())
        report.delivered += acked
        self.observer.delivered(latencies)
        if probe:
            self._release_hold()

    def _call(self, live: _Live, report: Report, *, probe: bool = False) -> None:
        """One call for the batch, made again at once after a renewed UserSig or a region failover (once each).

        Each try is a new reservation, so its lease check runs again: nothing leaves more than
        limiter.LEASE_CHECK_HORIZON_MS after the leases were last confirmed, on any path.
        """
        renewed = failed_over = False
        while True:
            try:
                self._call_once(live, report, probe=probe)
                return
            except RenewSigError as exc:
                if renewed:
                    raise HoldError(exc.code, f"UserSig rejected again after renewal: {exc.info}") from exc
                # The cached UserSig expired or was invalidated: sign afresh and try exactly once more.
                renewed = True
                self.api.renew_sig()
            except FailoverError as exc:
                if failed_over:
                    raise ConnectError(exc.code, exc.info) from exc  # neither domain: retry with backoff
                failed_over = True  # nothing was sent; the client now prefers the backup domain
            if not live.batch.items:
                return

    def _call_once(self, live: _Live, report: Report, *, probe: bool = False) -> None:
        """Reserve a slot for the members still leased to this run, then call for them alone.

        The lease check rides on the reservation (one script, no extra round trip): it drops members
        whose lease was removed or taken over, renews the others' leases, and takes no slot when none
        is left. The call then leaves within limiter.LEASE_CHECK_HORIZON_MS of that check.
        """
        batch = live.batch
        grant = self.limiter.acquire(
            LeaseCheck(batch.group_id, batch.token, tuple(batch.members), self.store.lease_ms, probe=probe)
        )
        self.observer.limiter_wait(grant.waited_s)
        # The Redis limiter checks the hold in the reservation (no slot taken while held), and the pause
        # (which stops a probe too); one that cannot see Redis (live_members None) leaves it to an EXISTS here.
        if grant.held or (not probe and grant.live_members is None and self.hold.active()):
            raise _HeldMeanwhile
        if grant.live_members is not None and len(grant.live_members) < len(batch.items):
            self._revoked(batch, len(batch.items) - len(grant.live_members), report)
            batch = live.batch = batch.subset(grant.live_members)
            if not batch.items:
                return
        started = self._monotonic()
        code, kind = 0, ANSWER
        try:
            self.api.unban(batch.group_id, batch.members)
        except TransportError:
            kind = TRANSPORT  # no answer: one spelling whatever failed (docs/metrics.md)
            raise
        except ApiError as exc:
            code = exc.code
            raise
        except Exception:
            kind = INTERNAL  # no API answer: an internal error, handled by deliver_group
            raise
        finally:
            report.calls += 1
            report.uncounted_calls += 1  # counted by the ack or requeue that follows (one round trip less)
            label = str(code) if kind == ANSWER else kind
            report.codes[label] = report.codes.get(label, 0) + 1
            self.observer.api_call(code, len(batch.items), self._monotonic() - started, kind)

    def _fields(self, group_id: str | None = None, **more: int) -> dict[str, object]:
        """The ``extra=`` of a log line: its app, group and code (JSON lines carry them as fields)."""
        fields: dict[str, object] = {"app": self.store.keys.app, **more}
        if group_id is not None:
            fields["group_id"] = group_id
        return fields

    def _revoked(self, batch: Batch, count: int, report: Report) -> None:
        report.revoked += count
        self.store.incr("revoked", count)
        log.info("%d member(s) of %r not sent: cancelled, superseded or lease lost meanwhile", count, batch.group_id,
                 extra=self._fields(batch.group_id, count=count))  # fmt: skip

    def _internal_error(self, batch: Batch, exc: Exception, report: Report) -> None:
        """An exception that is not the engine's own escaped a batch: log it once, retry with an attempt counted.

        Let out, it would end the task, the lease would lapse and the reaper would return the batch
        again and again with no attempt ever counted; counted, the batch ends dead by the usual rules.
        Members already acked or requeued are skipped by the lease check in requeue.
        """
        log.error("internal error delivering %d member(s) of %r", len(batch.items), batch.group_id, exc_info=exc,
                  extra=self._fields(batch.group_id, count=len(batch.items)))  # fmt: skip
        self.store.incr("internal_errors")
        self._retry(batch, InternalError(exc), report)

    def _failed(self, batch: Batch, exc: ApiError, report: Report, *, probe: bool) -> None:
        if exc.code == AMBIGUOUS_GLOBAL_CODE and isinstance(exc, HoldError) and not probe:
            # 10007 is about this group's type only if another group was delivered to lately (the
            # switch is evidently on); otherwise it holds. A probe's 10007 keeps the hold it probes.
            give_up = self._give_up(batch)
            if self.hold.is_per_group_10007(batch.group_id, give_up):
                self._retry(batch, exc, report, give_up)
                return
        if isinstance(exc, HoldError):
            self._hold(batch, exc, report)
        elif isinstance(exc, RateLimitedError):
            self.limiter.penalize(PENALTY_MS)
            self.store.incr("rate_limited")
            # Our own pace was wrong, not the request: it goes back at once and costs no attempt.
            report.retried += self.store.requeue(
                batch, delay_ms=0, code=exc.code, counts_as_attempt=False, calls=report.take_calls()
            )
        elif isinstance(exc, PermanentError):
            if probe:
                # The API judged the request, not the configuration: the configuration works.
                self._release_hold()
            if isinstance(exc, IsolateError) and len(batch.items) > 1:
                self._isolate(batch, exc, report)
            elif isinstance(exc, GroupGoneError):
                self._group_gone(batch, exc, report)
            else:
                self._dead(batch, exc, report)
        else:
            # Transient or unknown, a probe's answer too: it proves nothing about the configuration.
            # The batch is retried as usual (its attempt counts, it waits out its backoff), the hold
            # stays, and the next probe goes to another group (probes rotate, hold.py).
            self._retry(batch, exc, report)

    def _hold(self, batch: Batch, exc: ApiError, report: Report) -> None:
        log.error("holding delivery for the whole app %r: ErrorCode %s: %s", self.store.keys.app, exc.code, exc.info,
                  extra=self._fields(batch.group_id, code=exc.code))  # fmt: skip
        self.hold.set(exc.code, exc.info)
        self.observer.hold(exc.code)
        report.held = True
        # Nothing is dead-lettered and no attempt is spent: the requests are fine, the setup is not.
        self.store.requeue(batch, delay_ms=0, code=exc.code, counts_as_attempt=False, calls=report.take_calls())

    def _release_hold(self) -> None:
        if self.hold.release():
            log.warning("probe succeeded: delivery of app %r resumes", self.store.keys.app, extra=self._fields())
            self.observer.hold(None)

    def _isolate(self, batch: Batch, exc: ApiError, report: Report) -> None:
        """Bisect: retry each half on its own until the bad member(s) stand alone."""
        first, second = halves(batch.items)
        self.deliver_batch(Batch(batch.group_id, batch.token, batch.claimed_at_ms, tuple(first)), report)
        if report.held:
            # A hold arrived during the first half: the second goes back untouched, no attempt spent.
            if second:
                self.store.requeue(
                    batch.subset(i.member for i in second),
                    delay_ms=0,
                    counts_as_attempt=False,
                    calls=report.take_calls(),
                )
            return
        if second:
            # The first half is finished (acked or requeued); a hold here has already requeued the second.
            self.deliver_batch(Batch(batch.group_id, batch.token, batch.claimed_at_ms, tuple(second)), report)

    def _group_gone(self, batch: Batch, exc: ApiError, report: Report) -> None:
        acked, _ = self.store.ack(batch, "group_gone", code=exc.code, info=exc.info, calls=report.take_calls())
        ended = self.store.end_group(batch.group_id, code=exc.code, info=exc.info)
        report.group_gone += acked + ended
        self.observer.group_gone(acked + ended)

    def _dead(self, batch: Batch, exc: ApiError, report: Report) -> None:
        acked, _ = self.store.ack(batch, "dead", code=exc.code, info=exc.info, calls=report.take_calls())
        report.dead += acked
        self.observer.dead(acked, exc.code)
        fields = self._fields(batch.group_id, code=exc.code, count=acked)
        log.warning("dead-lettered %d member(s) of group %r: ErrorCode %s: %s", acked, batch.group_id, exc.code,
                    exc.info, extra=fields)  # fmt: skip

    def _give_up(self, batch: Batch) -> list[str]:
        """Members of a failed batch that are out of attempts or too old; time on hold is not age."""
        p = self.policy
        now = batch.claimed_at_ms
        ages = {i.member: now - i.due_ms for i in batch.items}
        if any(age >= p.max_age_ms for age in ages.values()):
            # Read the hold history only for a batch that looks too old: no round trip otherwise.
            held = self.hold.intervals_since(min(i.due_ms for i in batch.items))
            ages = {i.member: now - i.due_ms - overlap_ms(i.due_ms, now, held) for i in batch.items}
        return [
            i.member
            for i in batch.items
            if exhausted(
                attempts=i.attempts + 1, age_ms=ages[i.member], max_attempts=p.max_attempts, max_age_ms=p.max_age_ms
            )
        ]

    def _retry(self, batch: Batch, exc: ApiError, report: Report, give_up: list[str] | None = None) -> None:
        """Retry with backoff; members out of attempts or too old are dead-lettered instead."""
        p = self.policy
        if give_up is None:
            give_up = self._give_up(batch)
        if give_up:
            self._dead(batch.subset(give_up), exc, report)
        rest = batch.subset(i.member for i in batch.items if i.member not in give_up)
        if rest.items:
            attempt = max(i.attempts for i in rest.items) + 1
            delay = backoff_ms(attempt, base_ms=p.backoff_base_ms, cap_ms=p.backoff_cap_ms, rand=self._rand)
            retried = self.store.requeue(
                rest, delay_ms=delay, code=exc.code, counts_as_attempt=True, calls=report.take_calls()
            )
            report.retried += retried
            self.observer.retried(retried)
            level = logging.INFO if isinstance(exc, RetryableError) else logging.WARNING
            fields = self._fields(batch.group_id, code=exc.code, count=retried)
            log.log(level, "retrying %d member(s) of %r in %d ms: %s", retried, batch.group_id, delay, exc,
                    extra=fields)  # fmt: skip
