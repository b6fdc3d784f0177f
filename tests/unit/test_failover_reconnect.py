"""How fast a worker's broker side follows a Sentinel failover: the consumer's reconnect, a popped message's record.

Both decisions run against an injected clock: a primary promoted ``promoted_s`` after the broker was lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kombu.utils.functional
import pytest
from celery import Celery

from imunban_celery import broker
from imunban_celery.guard import RECONNECT_INTERVALS_S, GuardedConsumer

PROMOTIONS_S = (0.05, 0.3, 1.0, 2.3, 2.9, 5.0, 31.0)


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def sleep(self, seconds: float) -> None:
        self.now_s += seconds


class FakeBroker:
    """A kombu connection whose connect fails until the clock reaches the promotion; kombu's own retry loop."""

    def __init__(self, clock: Clock, promoted_s: float) -> None:
        self.clock, self.promoted_s = clock, promoted_s
        self.alt: list[str] = []

    def as_uri(self) -> str:
        return "sentinel://127.0.0.1:26379/0"

    def _connect(self) -> FakeBroker:
        if self.clock.now_s < self.promoted_s:
            raise ConnectionRefusedError("no primary yet")
        return self

    def ensure_connection(self, errback: Callable[..., Any], max_retries: int | None, **options: Any) -> FakeBroker:
        found: FakeBroker = kombu.utils.functional.retry_over_time(  # type: ignore[no-untyped-call]
            self._connect, (ConnectionRefusedError,), (), {}, lambda exc, intervals, retries: next(intervals),
            max_retries, **options,
        )  # fmt: skip
        return found


def consumer() -> GuardedConsumer:
    """A consumer with just what ensure_connected reads (no worker, no broker)."""
    made: GuardedConsumer = GuardedConsumer.__new__(GuardedConsumer)
    made.app = Celery("t", set_as_current=False)
    made.first_connection_attempt = False
    made.broker_connection_retry_attempt = 0
    return made


@pytest.mark.parametrize("promoted_s", PROMOTIONS_S)
def test_consumer_reconnects_within_the_cap_of_a_promotion(monkeypatch: pytest.MonkeyPatch, promoted_s: float) -> None:
    """Whenever the new primary appears, the consumer connects at most interval_max later (was up to ~4 s)."""
    clock = Clock()
    monkeypatch.setattr(kombu.utils.functional, "sleep", clock.sleep)
    fake = FakeBroker(clock, promoted_s)
    assert consumer().ensure_connected(fake) is fake
    assert promoted_s <= clock.now_s <= promoted_s + RECONNECT_INTERVALS_S["interval_max"] + 1e-9


def test_record_retry_waits_double_up_to_the_cap_then_give_up_at_the_budget() -> None:
    """0.05, 0.1, 0.2, then 0.25 s between sends; None once RECORD_RETRY_BUDGET_S has passed."""
    assert [broker.record_retry_delay(n, 0.0) for n in (1, 2, 3, 4, 10)] == [0.05, 0.1, 0.2, 0.25, 0.25]
    assert broker.record_retry_delay(5, broker.RECORD_RETRY_BUDGET_S - 0.1) == pytest.approx(0.1)
    assert broker.record_retry_delay(5, broker.RECORD_RETRY_BUDGET_S) is None


@pytest.mark.parametrize("promoted_s", PROMOTIONS_S)
def test_a_popped_message_is_recorded_on_a_primary_promoted_within_the_budget(promoted_s: float) -> None:
    """The record is re-sent until the new primary takes it, at most the cap after it (was: lost after 1.5 s)."""
    elapsed_s, failures = 0.0, 0
    while elapsed_s < promoted_s:
        failures += 1
        delay_s = broker.record_retry_delay(failures, elapsed_s)
        assert delay_s is not None, f"gave up {elapsed_s:.2f}s into a failover that ends at {promoted_s}s"
        elapsed_s += delay_s
    assert elapsed_s - promoted_s <= broker.RECORD_RETRY_CAP_S + 1e-9
