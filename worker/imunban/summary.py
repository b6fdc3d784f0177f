"""The worker's periodic summary: one INFO line per interval with what this worker did, per app.

Celery's own per-task lines are DEBUG (imunban.logs), so at INFO a quiet worker says one line a
minute and a busy one the same: delivered, calls, retries, dead, group gone, transport failures.
:class:`Tally` is the observer that counts (the Prometheus observer extends it); :func:`summary_line`
is pure; :func:`run_summaries` is the loop a worker runs in a thread.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

from imunban.keys import DEFAULT_APP
from imunban.observe import TRANSPORT, Observer

log = logging.getLogger("imunban.summary")

#: The app a message rejected before its app was known is counted under.
NO_APP = "-"


@dataclass
class Counts:
    """What one app's deliveries did in this process since the last summary."""

    delivered: int = 0
    calls: int = 0
    retries: int = 0
    dead: int = 0
    group_gone: int = 0
    transport_failures: int = 0
    rejected: int = 0


class Tally(Observer):
    """Counts delivery events per app (thread-safe); :meth:`take` hands them over and starts afresh."""

    def __init__(self, app: str = DEFAULT_APP) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._counts: dict[str, Counts] = {}

    def bind(self, app: str) -> Tally:
        """The same tally, counting under ``app`` (copies share the counts and the lock)."""
        bound = copy.copy(self)
        bound.app = app
        return bound

    def _add(self, app: str, **amounts: int) -> None:
        with self._lock:
            counts = self._counts.setdefault(app, Counts())
            for name, amount in amounts.items():
                setattr(counts, name, getattr(counts, name) + amount)

    def take(self, apps: Iterable[str] = ()) -> dict[str, Counts]:
        """The counts since the last take, with a zero entry for each of ``apps`` that did nothing."""
        with self._lock:
            taken, self._counts = self._counts, {}
        return {**{app: Counts() for app in apps}, **taken}

    def api_call(self, code: int, batch_size: int, duration_s: float, kind: str = "answer") -> None:
        self._add(self.app, calls=1, transport_failures=int(kind == TRANSPORT))

    def delivered(self, latencies_ms: Sequence[int]) -> None:
        self._add(self.app, delivered=len(latencies_ms))

    def retried(self, count: int) -> None:
        self._add(self.app, retries=count)

    def dead(self, count: int, code: int) -> None:
        self._add(self.app, dead=count)

    def group_gone(self, count: int) -> None:
        self._add(self.app, group_gone=count)

    def rejected(self, task: str) -> None:
        self._add(NO_APP, rejected=1)


def _part(counts: Counts) -> str:
    text = (
        f"delivered {counts.delivered:,} in {counts.calls:,} calls, {counts.retries:,} retries, "
        f"{counts.dead:,} dead, {counts.group_gone:,} group gone, {counts.transport_failures:,} transport failures"
    )
    return text + (f", {counts.rejected:,} messages rejected" if counts.rejected else "")


def summary_line(counts: Mapping[str, Counts], interval_s: float) -> str:
    """``summary (last 60 s): delivered ...`` for one app; ``app cn: ...; app intl: ...`` for several."""
    apps = {name: c for name, c in counts.items() if name != NO_APP}
    rejected = counts.get(NO_APP, Counts()).rejected
    head = f"summary (last {interval_s:g} s): "
    if len(apps) == 1:
        (only,) = apps.values()
        return head + _part(Counts(**{**asdict(only), "rejected": rejected}))
    parts = [f"app {name}: {_part(c)}" for name, c in sorted(apps.items())]
    if rejected:
        parts.append(f"{rejected:,} messages rejected")
    return head + "; ".join(parts)


def run_summaries(tally: Tally, apps: Sequence[str], interval_s: float, stop: threading.Event) -> None:
    """Log one summary line every ``interval_s`` until ``stop`` is set (a worker's thread)."""
    while not stop.wait(interval_s):
        counts = tally.take(apps)
        fields = {name: asdict(c) for name, c in counts.items()}
        extra: dict[str, object] = {"summary": fields, "interval_s": interval_s}
        if len(apps) == 1:
            extra["app"] = apps[0]
        log.info(summary_line(counts, interval_s), extra=extra)
