"""One reader per app for every live stream of that app: the overview :class:`Feed` and the :class:`OutcomeTail`.

A stream used to read Redis itself every interval, so N open streams made N reads (400 streams of
one viewer: ~2,900 commands/s, and every other page slowed). Now the streams of one app listen to
one reader, which reads once per interval while anyone listens and stops when the last one leaves.
A reader's read runs in the thread pool; ``sleep`` is injected so tests decide when a tick comes.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
#: Outcome entries the tail reads per interval, keeps for its listeners, and hands one listener per event.
TAIL_PAGE = 500
TAIL_KEEP = 2_000


class _Failure:
    """A read that raised: its listeners' streams end with the error (as a stream's own read did)."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


class _Reader(ABC):
    """Runs ``tick`` every ``every_s`` while anyone listens; the last listener to leave stops it."""

    def __init__(self, every_s: float, sleep: Sleep) -> None:
        self.every_s = every_s
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self.listeners: set[Any] = set()
        #: Reads made (each one Redis read of the app's data, however many listen).
        self.reads = 0

    def _join(self, listener: Any) -> None:
        self.listeners.add(listener)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def leave(self, listener: Any) -> None:
        self.listeners.discard(listener)
        if not self.listeners and self._task is not None:
            self._task.cancel()
            self._task = None
            self._reset()

    @property
    def running(self) -> bool:
        return self._task is not None

    async def _run(self) -> None:
        while True:
            try:
                await self._tick()
            except Exception as exc:  # Redis gone or refusing: the streams end, as each one's own read did
                log.warning("live stream read failed: %s", exc)
                self._fail(_Failure(exc))
            await self._sleep(self.every_s)

    @abstractmethod
    async def _tick(self) -> None:
        """One read, handed to every listener."""

    @abstractmethod
    def _fail(self, failure: _Failure) -> None:
        """Tell every listener the read failed."""

    @abstractmethod
    def _reset(self) -> None:
        """Forget what was read (nobody listens any more)."""


class Feed(_Reader):
    """The newest value of ``read()`` (an app's overview document) for every stream that listens."""

    _NOTHING: Any = object()

    def __init__(self, read: Callable[[], Any], every_s: float, sleep: Sleep = asyncio.sleep) -> None:
        super().__init__(every_s, sleep)
        self._read = read
        self._latest: Any = self._NOTHING

    def listen(self) -> Listener:
        """A listener; it gets the newest value at once when there is one (no read of its own)."""
        listener = Listener(self)
        if self._latest is not self._NOTHING:
            listener.offer(self._latest)
        self._join(listener)
        return listener

    async def _tick(self) -> None:
        value = await run_in_threadpool(self._read)
        self.reads += 1
        self._latest = value
        for listener in list(self.listeners):
            listener.offer(value)

    def _fail(self, failure: _Failure) -> None:
        for listener in list(self.listeners):
            listener.offer(failure)

    def _reset(self) -> None:
        self._latest = self._NOTHING


class Listener:
    """One stream's view of a :class:`Feed`: the newest value it has not sent yet (a slow stream skips)."""

    def __init__(self, feed: Feed) -> None:
        self._feed = feed
        self._value: Any = None
        self._ready = asyncio.Event()

    def offer(self, value: Any) -> None:
        self._value = value
        self._ready.set()

    async def next(self) -> Any:
        await self._ready.wait()
        self._ready.clear()
        if isinstance(self._value, _Failure):
            raise self._value.exc
        return self._value

    def close(self) -> None:
        self._feed.leave(self)


def entry_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id ``MS-SEQ`` as a sortable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class OutcomeTail(_Reader):
    """New entries of an app's outcome stream for every stream that listens, each from its own cursor.

    The tail reads what came after its position once per interval and keeps the newest
    :data:`TAIL_KEEP` entries; a listener takes the entries after its cursor from them. A listener
    whose cursor is older than what the tail keeps (``?after=`` an old id) catches up with reads of
    its own, one page per interval, until it reaches the tail.
    """

    def __init__(
        self, read: Callable[[str | None, int], dict[str, Any]], every_s: float, sleep: Sleep = asyncio.sleep
    ) -> None:
        super().__init__(every_s, sleep)
        self.read = read
        self._reset()

    def _reset(self) -> None:
        #: The id of the newest entry the tail has read (None before its first read).
        self.position: str | None = None
        self.kept: deque[tuple[tuple[int, int], dict[str, Any]]] = deque()
        #: Every entry after this key, up to the position, is in ``kept``.
        self.floor: tuple[int, int] = (0, 0)

    def listen(self, after: str | None) -> OutcomeListener:
        """A listener that sends the entries after ``after`` (None: from the tail's position, new ones only)."""
        listener = OutcomeListener(self, after)
        if self.position is not None:
            listener.wake()
        self._join(listener)
        return listener

    async def _tick(self) -> None:
        if self.position is None:  # the first read: where the stream ends now
            page = await run_in_threadpool(self.read, None, 1)
            self.position = page["last_id"] or "0-0"
            self.floor = entry_key(self.position)
        else:
            page = await run_in_threadpool(self.read, self.position, TAIL_PAGE)
            for entry in page["entries"]:
                self.kept.append((entry_key(entry["id"]), entry))
            while len(self.kept) > TAIL_KEEP:
                self.floor = self.kept.popleft()[0]
            self.position = page["last_id"] or self.position
        self.reads += 1
        for listener in list(self.listeners):
            listener.wake()

    def _fail(self, failure: _Failure) -> None:
        for listener in list(self.listeners):
            listener.wake(failure)


class OutcomeListener:
    """One stream's cursor in an :class:`OutcomeTail`."""

    def __init__(self, tail: OutcomeTail, after: str | None) -> None:
        self._tail = tail
        self.cursor = after
        self._failure: _Failure | None = None
        self._ready = asyncio.Event()

    def wake(self, failure: _Failure | None = None) -> None:
        self._failure = failure or self._failure
        self._ready.set()

    async def next(self) -> list[dict[str, Any]]:
        """The entries after the cursor (at most :data:`TAIL_PAGE`; the rest follow at once), after the next tick."""
        await self._ready.wait()
        self._ready.clear()
        if self._failure is not None:
            raise self._failure.exc
        tail = self._tail
        if self.cursor is None:
            self.cursor = tail.position
            return []
        after = entry_key(self.cursor)
        if after < tail.floor:  # older than what the tail keeps: this stream reads for itself
            page = await run_in_threadpool(tail.read, self.cursor, TAIL_PAGE)
            self.cursor = page["last_id"] or self.cursor
            entries: list[dict[str, Any]] = page["entries"]
            return entries
        newer = [entry for key, entry in tail.kept if key > after]
        entries = newer[:TAIL_PAGE]
        if entries:
            self.cursor = entries[-1]["id"]
        if len(newer) > TAIL_PAGE:  # the rest goes in the next event, without waiting for a tick
            self._ready.set()
        return entries

    def close(self) -> None:
        self._tail.leave(self)
