"""The console's live streams: how many may be open (per session and in all), and the readers that feed them.

A stream is admitted by :meth:`StreamHub.admit` (429 with Retry-After past a cap) and gives its
slot back however it ends (:class:`EventStream`). Every stream of one app listens to that app's one
:class:`~imunban.web.feeds.Feed` (overview) or :class:`~imunban.web.feeds.OutcomeTail` (outcomes),
kept here by app name, so Redis sees one read per interval per app however many streams are open.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from imunban.web.feeds import Feed, OutcomeTail, Sleep

#: Streams one session (a browser sign-in, or one bearer token from one address) may hold open:
#: a browser opens at most 6 connections to one host anyway.
STREAMS_PER_SESSION = 6
#: Streams the whole console holds open.
STREAMS_TOTAL = 100
#: What a refused stream is told to wait (a stream's slot comes back when it closes).
RETRY_AFTER_S = 10
OVERVIEW_EVERY_S = 2.0
OUTCOMES_EVERY_S = 1.0


class TooManyStreams(HTTPException):
    """429: a cap on live streams is reached."""

    def __init__(self, detail: str) -> None:
        super().__init__(429, detail, headers={"retry-after": str(RETRY_AFTER_S)})


class StreamHub:
    """Counts open streams and keeps one reader per app and kind."""

    def __init__(
        self,
        *,
        per_session: int = STREAMS_PER_SESSION,
        total: int = STREAMS_TOTAL,
        sleep: Sleep = asyncio.sleep,
        overview_every_s: float = OVERVIEW_EVERY_S,
        outcomes_every_s: float = OUTCOMES_EVERY_S,
    ) -> None:
        self.per_session = per_session
        self.total = total
        self._sleep = sleep
        self._every_s = {"overview": overview_every_s, "outcomes": outcomes_every_s}
        self._open: Counter[str] = Counter()
        self.feeds: dict[str, Feed] = {}
        self.tails: dict[str, OutcomeTail] = {}

    @property
    def open(self) -> int:
        return sum(self._open.values())

    def admit(self, session: str) -> Callable[[], None]:
        """Take a slot for a stream of ``session``; returns what gives it back (safe to call twice)."""
        if self.open >= self.total:
            raise TooManyStreams(
                f"too many live streams: the console serves {self.total} at a time; try again in {RETRY_AFTER_S} s"
            )
        if self._open[session] >= self.per_session:
            raise TooManyStreams(
                f"too many live streams for this session: {self.per_session} are open, the most one session "
                "may hold; close a console tab (or a stream) and try again"
            )
        self._open[session] += 1
        given_back = False

        def release() -> None:
            nonlocal given_back
            if not given_back:
                given_back = True
                self._open[session] -= 1
                if self._open[session] <= 0:
                    del self._open[session]

        return release

    def overview(self, app: str, read: Callable[[], Any]) -> Feed:
        """The overview feed of ``app`` (``read`` makes the document; used when the feed is made)."""
        feed = self.feeds.get(app)
        if feed is None:
            feed = self.feeds[app] = Feed(read, self._every_s["overview"], self._sleep)
        return feed

    def outcomes(self, app: str, read: Callable[[str | None, int], dict[str, Any]]) -> OutcomeTail:
        """The outcome tail of ``app`` (``read(after, limit)`` reads a page; used when the tail is made)."""
        tail = self.tails.get(app)
        if tail is None:
            tail = self.tails[app] = OutcomeTail(read, self._every_s["outcomes"], self._sleep)
        return tail


class EventStream(StreamingResponse):
    """A server-sent event stream that gives back its slot and leaves its reader however it ends.

    Ended by its limit, by the client going away (noticed at the next send, or by Starlette's
    disconnect listener), by an error or by the server stopping: ``close`` runs every time, also when
    the body never started (a generator's own ``finally`` would not).
    """

    def __init__(self, events: AsyncIterator[str], *close: Callable[[], None]) -> None:
        super().__init__(events, media_type="text/event-stream", headers={"x-accel-buffering": "no"})
        self._close = close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            for close in self._close:  # synchronous: they run even when this task is being cancelled
                close()
