"""The Redis-only scenarios of ``imunban bench``: bulk enqueue, and a million scheduled requests.

No workers run here: a private redis-server, the :class:`~imunban.producer.Producer` and the
:class:`~imunban.schedule.Scheduler`, timed with ``perf_counter``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from imunban.bench.config import BenchConfig
from imunban.bench.naive import publish
from imunban.bench.traced import traced_memory
from imunban.bench.util import Log, per_s, ratio
from imunban.connection import connect
from imunban.keys import Keys
from imunban.local.cluster import DEMO_SDKAPPID
from imunban.local.redis_server import RedisServer
from imunban.producer import Producer
from imunban.schedule import Scheduler
from imunban.settings import Settings

#: Realistic id sizes: auto-assigned group ids are 14 bytes (``@TGS#`` + 9), member ids 12 bytes here.
GROUP_FMT = "@TGS#2B{:07d}"
MEMBER_FMT = "user_{:07d}"
FAR_FUTURE_S = 86_400.0  # a day ahead, spread over 30 days: never promoted during the run
SPREAD_S = 30 * 86_400.0
#: Items handed to one Producer.bulk call (the caller's batching; bounds this process's memory).
BULK_CALL = 100_000


@contextmanager
def _redis(root: Path, *, appendonly: bool) -> Iterator[tuple[RedisServer, redis.Redis]]:
    server = RedisServer(root, appendonly=appendonly).start()
    client = connect(Settings(), url=server.url)
    try:
        yield server, client
    finally:
        client.close()
        server.stop()


def _items(start: int, count: int, per_group: int, at: float | None, spread_s: float = 0.0) -> list[dict[str, Any]]:
    """``count`` single-member requests numbered from ``start``, ``per_group`` members per group."""
    items: list[dict[str, Any]] = []
    for i in range(start, start + count):
        item: dict[str, Any] = {"group_id": GROUP_FMT.format(i // per_group), "member": MEMBER_FMT.format(i)}
        if at is not None:
            item["at"] = at + (i * 7919 % 100_000) / 100_000 * spread_s
        items.append(item)
    return items


def _timed_bulk(producer: Producer, start: int, count: int, per_group: int, at: float | None, spread: float) -> float:
    """Seconds spent inside Producer.bulk (building the caller's dicts is not counted)."""
    spent = 0.0
    for offset in range(0, count, BULK_CALL):
        items = _items(start + offset, min(BULK_CALL, count - offset), per_group, at, spread)
        t = time.perf_counter()
        producer.bulk(items)
        spent += time.perf_counter() - t
    return spent


# -- 4. bulk enqueue ---------------------------------------------------------------------------------


def bulk(cfg: BenchConfig, root: Path, log: Log) -> dict[str, Any]:
    """Producer.bulk members/s (best of a few runs) against one apply_async per member, same Redis."""
    per_group = max(1, cfg.bulk_members // cfg.bulk_groups)
    samples: list[float] = []
    with _redis(root / "bulk-redis", appendonly=True) as (server, client):
        for _ in range(cfg.repeats):
            client.flushall()
            seconds = _timed_bulk(
                Producer.on(client, Settings(key_prefix="bench")), 0, cfg.bulk_members, per_group, None, 0.0
            )
            samples.append(cfg.bulk_members / seconds)
        stored = int(client.hget(Keys("bench").stats, "enqueued") or 0)
        client.flushall()
        env = {
            "IMUNBAN_REDIS_URL": server.url,
            "IMUNBAN_SDKAPPID": str(DEMO_SDKAPPID),
            "IMUNBAN_SECRET_KEY": "bench-only-not-a-secret",
            "IMUNBAN_BASE_URL": "http://127.0.0.1:1",
        }
        celery = publish(
            env, "unban", cfg.apply_async_members, max(1, cfg.apply_async_members // 100), root / "bulk.log"
        )
    best = max(samples)
    log(f"  Producer.bulk {best:,.0f} members/s (best of {len(samples)}); apply_async {celery['per_s'] or 0:,.0f}/s")
    return {
        "members": cfg.bulk_members,
        "stored": stored,
        "members_per_group": per_group,
        "bulk_members_per_s": best,
        "bulk_samples_per_s": samples,
        "apply_async_members": cfg.apply_async_members,
        "apply_async_s": celery["seconds"],
        "apply_async_per_s": celery["per_s"],
        "ratio": ratio(best, celery["per_s"]),
        "redis_aof": True,
    }


# -- 5. scale ----------------------------------------------------------------------------------------


def _slice_rates(client: redis.Redis, prefix: str, start: int, n: int, per_group: int) -> tuple[float, float]:
    """Enqueue ``n`` far-future requests (timed), then ``n`` due in a moment, promote them (timed)."""
    producer = Producer.on(client, Settings(key_prefix=prefix))
    enqueue_s = _timed_bulk(producer, start, n, per_group, time.time() + FAR_FUTURE_S, SPREAD_S)
    # Due once the second slice is surely stored (nothing promotes it before promote_all below).
    due_at = time.time() + 0.5 + 3 * enqueue_s
    _timed_bulk(producer, start + n, n, per_group, due_at, 0.0)
    time.sleep(max(0.0, due_at - time.time()) + 0.05)
    t = time.perf_counter()
    promoted = Scheduler(client, Keys(prefix)).promote_all(max_rounds=10 * n)
    promote_s = time.perf_counter() - t
    return n / enqueue_s, promoted / promote_s


def scale(cfg: BenchConfig, root: Path, log: Log) -> dict[str, Any]:
    """N far-future requests: memory per request; enqueue and promotion rates, empty vs full store; then the
    Redis bytes of N ended requests' trace records (bench.traced).

    The empty and the full store are two key prefixes of one server, measured back to back in
    ``repeats`` rounds (alternating which goes first), so that the machine's noise hits both alike;
    the verdict is the median of the rounds' full/empty ratios, the best rates are shown too.
    """
    n, piece, per_group = cfg.scheduled, cfg.scale_slice, 100
    rates: dict[str, list[tuple[float, float]]] = {"empty": [], "full": []}
    with _redis(root / "scale-redis", appendonly=False) as (_, client):
        used_before = int(client.info("memory")["used_memory"])
        fill_s = _timed_bulk(
            Producer.on(client, Settings(key_prefix="full")), 0, n, per_group, time.time() + FAR_FUTURE_S, SPREAD_S
        )
        info = client.info("memory")
        used_after = int(info["used_memory"])
        scheduled = int(client.hget(Keys("full").stats, "scheduled") or 0)
        log(f"  {scheduled:,} scheduled: {(used_after - used_before) / max(1, scheduled):.1f} bytes each")
        for r in range(cfg.repeats):
            order = ("empty", "full") if r % 2 == 0 else ("full", "empty")
            for which in order:
                prefix = f"empty{r}" if which == "empty" else "full"
                rates[which].append(_slice_rates(client, prefix, (2 + 2 * r) * 10**8, piece, per_group))
        # The trace records (imunban.trace) of as many ended requests as there are scheduled ones.
        traced = traced_memory(client, n, log)
    best = {w: (max(e for e, _ in rs), max(p for _, p in rs)) for w, rs in rates.items()}
    pairs = list(zip(rates["empty"], rates["full"], strict=True))
    enqueue_ratios = [f[0] / e[0] for e, f in pairs]
    promote_ratios = [f[1] / e[1] for e, f in pairs]
    log(f"  enqueue/s empty {best['empty'][0]:,.0f} full {best['full'][0]:,.0f}; "
        f"promote/s empty {best['empty'][1]:,.0f} full {best['full'][1]:,.0f}")  # fmt: skip
    return {
        "scheduled": scheduled,
        "requested": n,
        "fill_s": fill_s,
        "fill_per_s": per_s(n, fill_s),
        "used_memory_delta": used_after - used_before,
        "bytes_per_request": (used_after - used_before) / scheduled if scheduled else None,
        "used_memory_human": info.get("used_memory_human"),
        "slice": piece,
        "empty": {"enqueue_per_s": best["empty"][0], "promote_per_s": best["empty"][1], "samples": rates["empty"]},
        "full": {"enqueue_per_s": best["full"][0], "promote_per_s": best["full"][1], "samples": rates["full"]},
        # Full / empty of each round's back-to-back pair; the median is the verdict (robust to one noisy run).
        "paired_enqueue_ratios": enqueue_ratios,
        "paired_promote_ratios": promote_ratios,
        "enqueue_ratio_full_to_empty": statistics.median(enqueue_ratios),
        "promote_ratio_full_to_empty": statistics.median(promote_ratios),
        "id_bytes": {"group": len(GROUP_FMT.format(0)), "member": len(MEMBER_FMT.format(0))},
        "redis_aof": False,
        "traced": traced,
    }
