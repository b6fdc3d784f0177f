"""Live streams over a real Redis: capped per session and in all (429), and N streams of an app make one read a tick."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from imunban.keys import Keys
from imunban.web import data
from imunban.web.context import AppContext
from imunban.web.streams import RETRY_AFTER_S, STREAMS_PER_SESSION, StreamHub
from web_helpers import VIEWER, AsgiGet, Ticks, bearer, console_app, until

N = 20
V = bearer(VIEWER)


@pytest.fixture
def overview_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every overview document the console reads from Redis, by app."""
    reads: list[str] = []
    real = data.overview

    def counting(ctx: AppContext) -> dict[str, Any]:
        reads.append(ctx.name)
        return real(ctx)

    monkeypatch.setattr(data, "overview", counting)
    return reads


@pytest.fixture
def outcome_reads(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The ``after`` of every read of the outcome stream."""
    reads: list[str | None] = []
    real = data.outcomes

    def counting(ctx: AppContext, after: str | None, limit: int) -> dict[str, Any]:
        reads.append(after)
        return real(ctx, after, limit)

    monkeypatch.setattr(data, "outcomes", counting)
    return reads


def test_n_overview_streams_make_one_read_per_interval(
    r: redis.Redis, redis_url: str, overview_reads: list[str]
) -> None:
    """20 overview streams of one app: one overview read per tick, each stream gets every document."""
    ticks = Ticks()
    hub = StreamHub(sleep=ticks.sleep, per_session=N)
    app = console_app(r, redis_url, streams=hub)

    async def main() -> None:
        streams = [AsgiGet(app, "/events/overview?limit=3", V) for _ in range(N)]
        tasks = [asyncio.create_task(s.run()) for s in streams]
        await until(lambda: all(len(s.events) == 1 for s in streams), "every stream has its first document")
        assert overview_reads == ["default"]  # one read, however many listen
        ticks.tick()
        await until(lambda: all(len(s.events) == 2 for s in streams), "every stream has the second")
        assert len(overview_reads) == 2
        ticks.tick()
        await asyncio.gather(*tasks)
        assert len(overview_reads) == 3
        assert all(s.status == 200 and [name for name, _ in s.events] == ["overview"] * 3 for s in streams)
        assert hub.open == 0 and not hub.feeds["default"].running  # nobody listens: no more reads

    asyncio.run(main())


def test_n_outcome_streams_make_one_read_per_interval(
    r: redis.Redis, redis_url: str, outcome_reads: list[str | None]
) -> None:
    """20 outcome tails of one app: one read a tick, and each stream gets every new entry exactly once."""
    ticks = Ticks()
    hub = StreamHub(sleep=ticks.sleep, per_session=N)
    app = console_app(r, redis_url, streams=hub)
    outcomes = Keys().outcomes
    r.xadd(outcomes, {"outcome": "delivered", "member": "before"})

    async def main() -> None:
        streams = [AsgiGet(app, "/events/outcomes?limit=3", V) for _ in range(N)]
        tasks = [asyncio.create_task(s.run()) for s in streams]
        await until(lambda: all(len(s.events) == 1 for s in streams), "every stream's first event")
        assert len(outcome_reads) == 1
        r.xadd(outcomes, {"outcome": "delivered", "member": "m1"})
        r.xadd(outcomes, {"outcome": "dead", "member": "m2"})
        ticks.tick()
        await until(lambda: all(len(s.events) == 2 for s in streams), "every stream's second event")
        r.xadd(outcomes, {"outcome": "delivered", "member": "m3"})
        ticks.tick()
        await asyncio.gather(*tasks)
        assert len(outcome_reads) == 3
        for s in streams:
            got = [[e["member"] for e in entries] for _, entries in s.events]
            assert got == [[], ["m1", "m2"], ["m3"]]

    asyncio.run(main())


def test_streams_are_capped_per_session_and_give_their_slot_back(r: redis.Redis, redis_url: str) -> None:
    """A session's 7th stream is 429 with Retry-After; another session is served; a closed stream frees its slot."""
    app = console_app(r, redis_url)

    async def main() -> None:
        held = [AsgiGet(app, "/events/overview", V) for _ in range(STREAMS_PER_SESSION)]
        tasks = [asyncio.create_task(s.run()) for s in held]
        await until(lambda: all(s.events for s in held), "the session's streams are open")
        extra = AsgiGet(app, "/events/overview", V)
        await extra.run()
        assert extra.status == 429 and extra.headers["retry-after"] == str(RETRY_AFTER_S)
        assert "too many live streams for this session" in extra.body.decode()
        other = AsgiGet(app, "/events/outcomes?limit=1", V, client="127.0.0.2")  # another address: its own cap
        await other.run()
        assert other.status == 200
        held[0].leave()
        await tasks[0]
        again = AsgiGet(app, "/events/outcomes?limit=1", V)
        await again.run()
        assert again.status == 200
        for s in held[1:]:
            s.leave()
        await asyncio.gather(*tasks)

    asyncio.run(main())


def test_streams_are_capped_in_all(r: redis.Redis, redis_url: str) -> None:
    """Past the console's overall cap every session's new stream is 429, until one closes."""
    hub = StreamHub(total=3)
    app = console_app(r, redis_url, streams=hub)

    async def main() -> None:
        held = [AsgiGet(app, "/events/overview", V, client=f"127.0.0.{i}") for i in range(1, 4)]
        tasks = [asyncio.create_task(s.run()) for s in held]
        await until(lambda: all(s.events for s in held), "three streams are open")
        refused = AsgiGet(app, "/events/overview", V, client="127.0.0.9")
        await refused.run()
        assert refused.status == 429 and "the console serves 3 at a time" in refused.body.decode()
        assert refused.headers["retry-after"] == str(RETRY_AFTER_S)
        for s in held:
            s.leave()
        await asyncio.gather(*tasks)
        assert hub.open == 0

    asyncio.run(main())
