"""Hooks the delivery engine reports to. The base class does nothing; metrics.py exports them."""

from __future__ import annotations

from collections.abc import Sequence

#: How an API call ended (the ``kind`` of :meth:`Observer.api_call`): the API answered with an ErrorCode
#: (0 is success); or no answer came: a transport failure (connect failure, timeout, connection reset, an
#: HTTP status other than 200); or an exception of our own around the call (a bug, retried as usual).
ANSWER = "answer"
TRANSPORT = "transport"
INTERNAL = "internal"
CALL_KINDS = (ANSWER, TRANSPORT, INTERNAL)


class Observer:
    """Receives delivery events; override what you need (see imunban.metrics.PrometheusObserver)."""

    def bind(self, app: str) -> Observer:
        """The observer one app's engine reports to (its events labelled with ``app``); here, itself."""
        return self

    def api_call(self, code: int, batch_size: int, duration_s: float, kind: str = ANSWER) -> None:
        """One unban call ended: answered (``kind`` ANSWER) with ErrorCode ``code`` (0: success), or
        unanswered (TRANSPORT or INTERNAL; ``code`` is then 0 and means nothing)."""

    def limiter_wait(self, seconds: float) -> None:
        """A caller waited ``seconds`` for its rate-limit slot."""

    def delivered(self, latencies_ms: Sequence[int]) -> None:
        """Members delivered, with their due -> delivered latencies."""

    def retried(self, count: int) -> None:
        """Members handed back for another attempt."""

    def dead(self, count: int, code: int) -> None:
        """Members dead-lettered with ErrorCode ``code``."""

    def group_gone(self, count: int) -> None:
        """Members ended because their group no longer exists."""

    def hold(self, code: int | None) -> None:
        """Delivery was held because of ``code``, or released (None)."""

    def rejected(self, task: str) -> None:
        """A bad message for ``task`` was rejected."""
