"""The ``web`` scenario of ``imunban bench``: the console's pages and API against a full store.

A private redis-server gets ``cfg.scheduled`` scheduled requests (Producer.bulk) and
``cfg.web_dead`` dead letters made the delivery way (enqueue, claim, ack ``dead``, so the outcome
stream is full too). Before the dead letters, one member is delivered in a few groups: by the time the
console is asked, ``cfg.web_dead`` outcomes came after it (the outcome stream no longer holds it), and
its trace must still say delivered, from its trace record. Every page and API call is then asked
``cfg.web_requests`` times in process, straight through the ASGI app (no HTTP client needed); the
figure is the server time the console reports itself (``Server-Timing: app;dur=``), p50 and p95. A
member lookup is ``GET /api/trace``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any, cast

from imunban.apps import AppConfig
from imunban.bench.config import BenchConfig
from imunban.bench.redis_scenarios import _redis, _timed_bulk
from imunban.bench.util import Log, percentile
from imunban.deployment import open_deployment
from imunban.keys import DEFAULT_APP
from imunban.producer import Producer
from imunban.settings import Secret, Settings
from imunban.store import Batch, Held, Store
from imunban.trace import trace
from imunban.validation import UnbanRequest
from imunban.web.app import create_app

TOKEN = "bench-operator-token-0123456789"
DEAD_PER_GROUP = 20
#: Scheduled members per group: 1,000,000 make 10,000 groups (pages of groups go deep).
PER_GROUP = 100
#: Every 50th dead group fails with another code: a filter on it has to look through a window.
RARE_CODE, COMMON_CODE = 70402, 10004
#: The member delivered before everything else (in TRACED_GROUPS groups), traced ``web_dead`` outcomes later.
TRACED_MEMBER, TRACED_GROUPS = "alice_traced", 5


def _seed_delivered(store: Store) -> None:
    """TRACED_MEMBER delivered in TRACED_GROUPS groups (``@TGS#traced0``, ...), the way a worker ends requests."""
    for g in range(TRACED_GROUPS):
        group = f"@TGS#traced{g}"
        store.enqueue([UnbanRequest(group, (TRACED_MEMBER,))])
        batch = store.claim(group)
        if not isinstance(batch, Batch):
            raise RuntimeError(f"could not claim {group} to deliver it")
        store.ack(batch, "delivered")


def _seed_dead(store: Store, count: int) -> None:
    """``count`` dead letters through enqueue -> claim -> ack(dead), 20 per group."""
    for g in range(count // DEAD_PER_GROUP):
        group = f"@TGS#dead{g:06d}"
        store.enqueue([UnbanRequest(group, tuple(f"member_{g}_{i:02d}" for i in range(DEAD_PER_GROUP)))])
        batch = store.claim(group)
        if batch is None or isinstance(batch, Held):
            raise RuntimeError(f"could not claim {group} to dead-letter it")
        code = RARE_CODE if g % 50 == 0 else COMMON_CODE
        store.ack(batch, "dead", code=code, info="bench: member does not exist")


async def _call(app: Any, method: str, target: str, body: bytes = b"") -> tuple[int, float]:
    """One request straight into the ASGI app: (status, server ms from its Server-Timing header)."""
    path, _, query = target.partition("?")
    headers = [(b"host", b"127.0.0.1:8321"), (b"authorization", f"Bearer {TOKEN}".encode())]
    if body:
        headers.append((b"content-type", b"application/json"))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query.encode(), "headers": headers,
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8321), "root_path": "",
    }  # fmt: skip
    sent = False
    status, server_ms = 0, -1.0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # nobody disconnects during a request
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, server_ms
        if message["type"] == "http.response.start":
            status = int(message["status"])
            for name, value in message["headers"]:
                if name == b"server-timing":
                    server_ms = float(value.decode().split("dur=")[1])

    await app(scope, receive, send)
    return status, server_ms


def _targets(cfg: BenchConfig) -> list[tuple[str, str, str]]:
    """(name, method, target) of every page and API call measured."""
    big = "%40TGS%232B0000000"  # the first scheduled group (scale scenario naming)
    member = "%40TGS%23dead000017&member=member_17_05"
    delivered = f"%40TGS%23traced0&member={TRACED_MEMBER}"
    return [
        ("page /", "GET", "/"),
        ("page /trace (lookup)", "GET", f"/trace?group_id={member}"),
        ("page /trace?member (every group)", "GET", f"/trace?member={TRACED_MEMBER}"),
        ("page /scheduled", "GET", "/scheduled"),
        ("page /scheduled (deep page)", "GET", "/scheduled?offset=9000"),
        ("page /scheduled?group_id", "GET", f"/scheduled?group_id={big}"),
        ("page /dead", "GET", "/dead"),
        ("page /dead?code (rare code)", "GET", f"/dead?code={RARE_CODE}"),
        ("page /dead?group_id", "GET", "/dead?group_id=%40TGS%23dead000420"),
        ("page /holds", "GET", "/holds"),
        ("page /outcomes", "GET", "/outcomes"),
        ("GET /api/status", "GET", "/api/status"),
        ("GET /api/overview", "GET", "/api/overview"),
        ("GET /api/trace (member lookup)", "GET", f"/api/trace?group_id={member}"),
        (
            f"GET /api/trace (member lookup, delivered {cfg.web_dead:,} outcomes earlier)",
            "GET",
            f"/api/trace?group_id={delivered}",
        ),
        ("GET /api/trace?member (member lookup, every group)", "GET", f"/api/trace?member={TRACED_MEMBER}"),
        ("GET /api/dead", "GET", "/api/dead"),
        ("GET /api/dead?code", "GET", f"/api/dead?code={RARE_CODE}"),
        ("GET /api/scheduled", "GET", "/api/scheduled"),
        ("GET /api/outcomes", "GET", "/api/outcomes"),
        ("GET /api/holds", "GET", "/api/holds"),
    ]


def _measure(app: Any, cfg: BenchConfig, log: Log) -> dict[str, Any]:
    out: dict[str, Any] = {}

    async def run() -> None:
        for name, method, target in _targets(cfg):
            times = []
            for _ in range(cfg.web_requests):
                status, ms = await _call(app, method, target)
                if status != 200:
                    raise RuntimeError(f"{target} answered {status}")
                times.append(ms)
            out[name] = {"p50_ms": round(statistics.median(times), 2), "p95_ms": round(percentile(times, 95) or 0, 2)}
        # Actions on one request each (they write; each pair is replayed then cancelled again).
        for name, method, target, body in _actions(cfg.web_requests):
            times = []
            for payload in body:
                status, ms = await _call(app, method, target, json.dumps(payload).encode())
                if status != 200:
                    raise RuntimeError(f"{target} answered {status}")
                times.append(ms)
            out[name] = {"p50_ms": round(statistics.median(times), 2), "p95_ms": round(percentile(times, 95) or 0, 2)}

    asyncio.run(run())
    return out


def _actions(n: int) -> list[tuple[str, str, str, list[dict[str, Any]]]]:
    replays = [{"requests": [{"group_id": f"@TGS#dead{g:06d}", "member": f"member_{g}_00"}]} for g in range(1, n + 1)]
    cancels = [{"group_id": f"@TGS#2B{g:07d}", "members": [f"user_{g * PER_GROUP:07d}"]} for g in range(n)]
    return [
        ("POST /api/dead/replay (one)", "POST", "/api/dead/replay", replays),
        ("POST /api/cancel (one)", "POST", "/api/cancel", cancels),
    ]


def web(cfg: BenchConfig, root: Path, log: Log) -> dict[str, Any]:
    """Console server times with ``cfg.scheduled`` scheduled and ``cfg.web_dead`` dead letters."""
    (root / "web").mkdir(parents=True, exist_ok=True)
    with _redis(root / "web", appendonly=False) as (_, client):
        started = time.perf_counter()
        settings = Settings(
            single_app=AppConfig(DEFAULT_APP, sdkappid=1400000000), linger_ms=0, web_operator_token=Secret(TOKEN)
        )
        deployment = open_deployment(settings, client=client)
        _seed_delivered(deployment.app().store)
        enqueue_s = _timed_bulk(Producer(deployment), 0, cfg.scheduled, PER_GROUP, time.time() + 86_400, 30 * 86_400)
        log(f"  {cfg.scheduled:,} scheduled in {enqueue_s:.1f} s")
        t = time.perf_counter()
        _seed_dead(deployment.app().store, cfg.web_dead)
        log(f"  {cfg.web_dead:,} dead letters in {time.perf_counter() - t:.1f} s")
        app = create_app(deployment, sample=False)
        seeded_s = time.perf_counter() - started
        engine = deployment.app()
        traced = trace(client, engine.keys, "@TGS#traced0", TRACED_MEMBER)
        if traced["state"] != "delivered":
            raise RuntimeError(f"{TRACED_MEMBER} traced as {traced['state']}, not delivered: {traced['summary']}")
        oldest = cast(list[tuple[str, dict[str, str]]], client.xrange(engine.keys.outcomes, count=1))
        stream_holds_it = bool(oldest) and int(oldest[0][1]["at_ms"]) <= int(traced["last_outcome"]["at_ms"])
        log(f"  {TRACED_MEMBER}: {traced['summary']} (still in the outcome stream: {stream_holds_it})")
        endpoints = _measure(app, cfg, log)
        info = client.info("memory")
    worst = max(e["p95_ms"] for name, e in endpoints.items() if "member lookup" not in name)
    return {
        "scheduled": cfg.scheduled,
        "dead": cfg.web_dead,
        "requests_each": cfg.web_requests,
        "seed_s": round(seeded_s, 1),
        "redis_used_mb": round(int(info["used_memory"]) / 1e6, 1),
        "endpoints": endpoints,
        "worst_p95_ms": worst,
        "lookup_p95_ms": endpoints["GET /api/trace (member lookup)"]["p95_ms"],
        "traced_member": {
            "outcomes_since": cfg.web_dead,
            "summary": traced["summary"],
            "in_outcome_stream": stream_holds_it,
            "lookup_p95_ms": endpoints[f"GET /api/trace (member lookup, delivered {cfg.web_dead:,} outcomes earlier)"][
                "p95_ms"
            ],
            "member_search_p95_ms": endpoints["GET /api/trace?member (member lookup, every group)"]["p95_ms"],
        },
    }
