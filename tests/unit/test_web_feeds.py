"""The live streams' readers and caps without Redis: fake reads, and a clock the test ticks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from imunban.web.feeds import TAIL_KEEP, TAIL_PAGE, Feed, OutcomeTail
from imunban.web.streams import StreamHub, TooManyStreams
from web_helpers import Ticks, until


class FakeStream:
    """An outcome stream in memory: entries ``N-0`` for N = 1, 2, ...; records every read's ``after``."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.reads: list[str | None] = []

    def add(self, n: int) -> None:
        start = len(self.entries) + 1
        self.entries += [{"id": f"{i}-0", "n": i} for i in range(start, start + n)]

    def read(self, after: str | None, limit: int) -> dict[str, Any]:
        self.reads.append(after)
        if after is None:
            page = self.entries[-limit:]
        else:
            page = [e for e in self.entries if int(e["id"].split("-")[0]) > int(after.split("-")[0])][:limit]
        return {"entries": page, "last_id": page[-1]["id"] if page else after}


def test_feed_reads_once_per_tick_for_every_listener() -> None:
    """Three listeners, one read per tick; a late listener gets the newest value at once, without a read."""
    ticks, values = Ticks(), iter(range(100))
    feed = Feed(lambda: next(values), 2.0, ticks.sleep)

    async def main() -> None:
        a, b = feed.listen(), feed.listen()
        assert [await a.next(), await b.next()] == [0, 0] and feed.reads == 1
        late = feed.listen()
        assert await late.next() == 0 and feed.reads == 1
        ticks.tick()
        assert [await a.next(), await b.next(), await late.next()] == [1, 1, 1] and feed.reads == 2
        for listener in (a, b, late):
            listener.close()
        assert not feed.running

    asyncio.run(main())


def test_feed_stops_when_nobody_listens_and_restarts_fresh() -> None:
    """The last listener leaving stops the reads and forgets the value; the next listener gets a new read."""
    ticks, values = Ticks(), iter(range(100))
    feed = Feed(lambda: next(values), 2.0, ticks.sleep)

    async def main() -> None:
        first = feed.listen()
        assert await first.next() == 0
        first.close()
        assert not feed.running
        again = feed.listen()
        assert await again.next() == 1 and feed.reads == 2
        again.close()

    asyncio.run(main())


def test_a_slow_listener_gets_the_newest_value_not_a_queue() -> None:
    """A listener that did not keep up skips to the newest document (nothing piles up in memory)."""
    ticks, values = Ticks(), iter(range(100))
    feed = Feed(lambda: next(values), 2.0, ticks.sleep)

    async def main() -> None:
        fast, slow = feed.listen(), feed.listen()
        assert await fast.next() == 0
        for expected in (1, 2):
            ticks.tick()
            assert await fast.next() == expected
        assert await slow.next() == 2
        fast.close(), slow.close()

    asyncio.run(main())


def test_a_failed_read_ends_the_listeners_with_the_error() -> None:
    """A read that raises ends every listening stream with that error; the reader keeps its schedule."""
    ticks = Ticks()

    def read() -> int:
        raise RuntimeError("Redis went away")

    feed = Feed(read, 2.0, ticks.sleep)

    async def main() -> None:
        listener = feed.listen()
        with pytest.raises(RuntimeError, match="Redis went away"):
            await listener.next()
        listener.close()

    asyncio.run(main())


def test_outcome_tail_one_read_per_tick_each_listener_from_its_cursor() -> None:
    """One tail read a tick; a listener without a cursor gets new entries only, one with a cursor those after it."""
    ticks, stream = Ticks(), FakeStream()
    stream.add(5)
    tail = OutcomeTail(stream.read, 1.0, ticks.sleep)

    async def main() -> None:
        new = tail.listen(None)
        assert await new.next() == [] and stream.reads == [None]  # where the stream ends now
        from_3 = tail.listen("3-0")  # older than the tail's start: catches up with a read of its own
        assert [e["n"] for e in await from_3.next()] == [4, 5] and stream.reads == [None, "3-0"]
        stream.add(2)
        ticks.tick()
        assert [e["n"] for e in await new.next()] == [6, 7]
        assert [e["n"] for e in await from_3.next()] == [6, 7]
        assert stream.reads == [None, "3-0", "5-0"]  # one read for both
        new.close(), from_3.close()
        assert not tail.running

    asyncio.run(main())


def test_outcome_listener_gets_a_long_backlog_a_page_at_a_time() -> None:
    """More new entries than one event holds come as pages of TAIL_PAGE, one right after the other."""
    ticks, stream = Ticks(), FakeStream()
    tail = OutcomeTail(stream.read, 1.0, ticks.sleep)

    async def main() -> None:
        listener = tail.listen(None)
        assert await listener.next() == []
        stream.add(TAIL_PAGE + 10)
        ticks.tick()
        await until(lambda: len(tail.kept) == TAIL_PAGE, "the tail read a page")
        ticks.tick()
        await until(lambda: len(tail.kept) == TAIL_PAGE + 10, "the tail read the rest")
        assert [e["n"] for e in await listener.next()] == list(range(1, TAIL_PAGE + 1))
        assert [e["n"] for e in await listener.next()] == list(range(TAIL_PAGE + 1, TAIL_PAGE + 11))
        assert stream.reads == [None, "0-0", f"{TAIL_PAGE}-0"]
        listener.close()


def test_outcome_tail_keeps_a_bounded_window() -> None:
    """The tail keeps at most TAIL_KEEP entries; a listener behind them reads for itself instead."""
    ticks, stream = Ticks(), FakeStream()
    tail = OutcomeTail(stream.read, 1.0, ticks.sleep)

    async def main() -> None:
        first = tail.listen(None)
        assert await first.next() == []
        stream.add(TAIL_KEEP + TAIL_PAGE)
        for n in range(1, (TAIL_KEEP + TAIL_PAGE) // TAIL_PAGE + 1):
            ticks.tick()
            await until(lambda n=n: tail.position == f"{n * TAIL_PAGE}-0", "the tail read a page")
        assert len(tail.kept) == TAIL_KEEP and tail.floor == (TAIL_PAGE, 0)
        behind = tail.listen("1-0")
        assert [e["n"] for e in await behind.next()][:2] == [2, 3] and stream.reads[-1] == "1-0"
        first.close(), behind.close()

    asyncio.run(main())


def test_hub_caps_per_session_and_in_all() -> None:
    """A session's streams past per_session and anyone's past total are refused (429, Retry-After); slots come back."""
    hub = StreamHub(per_session=2, total=3)
    a1, a2 = hub.admit("a"), hub.admit("a")
    with pytest.raises(TooManyStreams) as refused:
        hub.admit("a")
    assert refused.value.status_code == 429 and "retry-after" in (refused.value.headers or {})
    b1 = hub.admit("b")
    with pytest.raises(TooManyStreams, match="serves 3 at a time"):
        hub.admit("c")
    a1()
    a1()  # giving a slot back twice frees it once
    assert hub.open == 2
    hub.admit("c")
    a2(), b1()
    assert hub.open == 1


def test_hub_keeps_one_reader_per_app() -> None:
    """Every stream of one app gets the same reader; another app gets its own."""
    hub = StreamHub()
    assert hub.overview("a", lambda: 1) is hub.overview("a", lambda: 2)
    assert hub.overview("a", lambda: 1) is not hub.overview("b", lambda: 1)
    assert hub.outcomes("a", FakeStream().read) is hub.outcomes("a", FakeStream().read)
