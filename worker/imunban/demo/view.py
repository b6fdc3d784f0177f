"""What ``imunban demo`` shows while it runs (a live panel, or plain lines) and the summary table after.

The demo (:mod:`imunban.demo.run`) polls ``status`` and the simulator's snapshot a few times a second
and hands each poll to a view as a :class:`Sample`; :class:`Meter` turns consecutive samples into
per-second rates over the last second.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text


@dataclass(frozen=True)
class Sample:
    """One poll: seconds since the first enqueue, ``imunban status`` and the simulator's counters."""

    elapsed_s: float
    status: dict[str, Any]
    sim: dict[str, Any]


@dataclass(frozen=True)
class Rates:
    """Per-second rates over the last second (members per call over the same calls)."""

    delivered_per_s: float
    calls_per_s: float
    members_per_call: float | None


class Meter:
    """Keeps the samples of the last ``window_s`` seconds and derives rates from its two ends."""

    def __init__(self, window_s: float = 1.0) -> None:
        self.window_s = window_s
        self._samples: deque[Sample] = deque()

    def add(self, sample: Sample) -> Rates:
        samples = self._samples
        samples.append(sample)
        while len(samples) > 2 and sample.elapsed_s - samples[1].elapsed_s >= self.window_s:
            samples.popleft()
        first = samples[0]
        span = sample.elapsed_s - first.elapsed_s
        if span <= 0:
            return Rates(0.0, 0.0, None)
        ok_calls = sample.sim["calls_ok"] - first.sim["calls_ok"]
        members = sample.sim["members_unbanned"] - first.sim["members_unbanned"]
        return Rates(
            delivered_per_s=(sample.status["delivered"] - first.status["delivered"]) / span,
            calls_per_s=(sample.sim["calls"] - first.sim["calls"]) / span,
            members_per_call=members / ok_calls if ok_calls else None,
        )


class View(Protocol):
    def update(self, sample: Sample) -> None: ...

    def close(self) -> None: ...


def _per_call(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


class LiveView:
    """A panel redrawn in place (rich.live) for terminals."""

    def __init__(self, console: Console, *, expected: int, limit_per_s: float) -> None:
        self.console = console
        self.expected = expected
        self.limit_per_s = limit_per_s
        self.meter = Meter()
        self._live = Live(Text("starting…"), console=console, refresh_per_second=8, transient=False)
        self._live.start()

    def update(self, sample: Sample) -> None:
        self._live.update(self.render(sample, self.meter.add(sample)))

    def render(self, sample: Sample, rates: Rates) -> Panel:
        st = sample.status
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column(justify="right", min_width=14)
        grid.add_column()
        grid.add_row("elapsed", f"{sample.elapsed_s:5.1f} s", "")
        grid.add_row(
            "delivered",
            f"{st['delivered']:,} / {self.expected:,}",
            ProgressBar(total=self.expected, completed=min(st["delivered"], self.expected), width=32),
        )
        grid.add_row("delivered/s", f"{rates.delivered_per_s:,.0f}", "")
        grid.add_row(
            "API calls/s",
            f"{rates.calls_per_s:,.0f} / {self.limit_per_s:g}",
            ProgressBar(total=self.limit_per_s, completed=min(rates.calls_per_s, self.limit_per_s), width=32),
        )
        grid.add_row("members/call", _per_call(rates.members_per_call), "[dim]last second, successful calls[/]")
        grid.add_row("retries", f"{st['counters']['retried']:,}", "[dim]members handed back with backoff[/]")
        grid.add_row("dead letters", f"{st['dead']:,}", "")
        grid.add_row(
            "queue",
            f"{st['queued']:,} queued",
            f"{st['scheduled']:,} scheduled   {st['in_flight']:,} in flight",
        )
        if st["hold"]:
            grid.add_row("[red]HOLD[/]", f"[red]{st['hold']['code']}[/]", str(st["hold"]["info"]))
        return Panel(grid, title="imunban demo", title_align="left", expand=False)

    def close(self) -> None:
        self._live.stop()


class PlainView:
    """One line per ``every_s`` seconds, for logs and pipes (stdout is not a terminal)."""

    def __init__(self, console: Console, *, expected: int, limit_per_s: float, every_s: float = 1.0) -> None:
        self.console = console
        self.expected = expected
        self.limit_per_s = limit_per_s
        self.every_s = every_s
        self.meter = Meter()
        self._next_s = 0.0

    def update(self, sample: Sample) -> None:
        rates = self.meter.add(sample)
        if sample.elapsed_s < self._next_s:
            return
        self._next_s = sample.elapsed_s + self.every_s
        self.console.print(self.line(sample, rates), markup=False, highlight=False, soft_wrap=True)

    def line(self, sample: Sample, rates: Rates) -> str:
        st = sample.status
        hold = f" HOLD {st['hold']['code']}" if st["hold"] else ""
        return (
            f"[{sample.elapsed_s:5.1f}s] delivered {st['delivered']:,}/{self.expected:,} "
            f"({rates.delivered_per_s:,.0f}/s)  calls {rates.calls_per_s:,.0f}/s (limit {self.limit_per_s:g})  "
            f"members/call {_per_call(rates.members_per_call)}  retries {st['counters']['retried']:,}  "
            f"dead {st['dead']:,}  queued {st['queued']:,} scheduled {st['scheduled']:,} "
            f"in-flight {st['in_flight']:,}{hold}"
        )

    def close(self) -> None:
        pass


#: One summary row: what, value, and a check (True passed, False failed, None informational).
Row = tuple[str, str, bool | None]


def summary_table(rows: Sequence[Row], *, title: str = "imunban demo: summary") -> Table:
    """The end-of-run table; checks are marked ok / FAIL."""
    table = Table(title=title, title_justify="left", show_header=True)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_column("check")
    marks = {True: "[green]ok[/]", False: "[bold red]FAIL[/]", None: ""}
    for what, value, check in rows:
        table.add_row(what, value, marks[check])
    return table
