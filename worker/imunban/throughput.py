"""The throughput history: a snapshot of an app's counters once a minute in Redis, for the last 24 hours.

``Keys.throughput`` holds one snapshot per minute (``delivered`` and ``calls`` of the stats hash, and
when it was taken on the Redis server's clock), written by ``throughput_sample.lua``: the first call
in a minute writes, every later one finds it. Every console replica samples, so the history is the
same whichever replica draws it and survives a restart; the delivery hot path is untouched (the
counters it bumps already exist). Rates are differences between consecutive snapshots (:func:`rates`,
pure). A stretch where nobody sampled (no console ran) is a gap in the chart, not an average.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import redis

from imunban.connection import translated
from imunban.keys import Keys
from imunban.scripts import register, script_keys

#: 24 hours of minutes.
KEEP_MINUTES = 24 * 60
MINUTE_MS = 60_000
#: Snapshots further apart than this leave a gap (None) in the series instead of one long average.
GAP_MS = 5 * MINUTE_MS


@dataclass(frozen=True)
class Snapshot:
    """The counters at one moment: its minute (epoch minutes), when exactly (ms), and the two counters."""

    minute: int
    at_ms: int
    delivered: int
    calls: int


def parse(member: str) -> Snapshot | None:
    """A stored snapshot ("minute:at_ms:delivered:calls"); None for anything else."""
    parts = member.split(":")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return None
    minute, at_ms, delivered, calls = (int(p) for p in parts)
    return Snapshot(minute, at_ms, delivered, calls)


def record(client: redis.Redis, keys: Keys, keep_minutes: int = KEEP_MINUTES) -> int:
    """Take this minute's snapshot unless someone did; returns the minute written, 0 if it existed."""
    with translated("throughput sample"):
        done = register(client, "throughput_sample")(keys=script_keys(keys, "throughput_sample"), args=[keep_minutes])
    return int(done)


def snapshots(client: redis.Redis, keys: Keys, since_minute: int = 0) -> list[Snapshot]:
    """The stored snapshots from ``since_minute`` on, oldest first."""
    with translated("throughput history"):
        raw = cast(list[str], client.zrange(keys.throughput, since_minute, "+inf", byscore=True))
    return [snap for snap in (parse(m) for m in raw) if snap is not None]


def rates(snaps: Sequence[Snapshot], gap_ms: int = GAP_MS) -> dict[str, list[float | None]]:
    """{"t": seconds, "delivered": members/s, "calls": calls/s}, one point per pair of consecutive snapshots.

    A point sits at the later snapshot. A counter that went down (the store was reset) counts from
    zero, never a negative rate; snapshots more than ``gap_ms`` apart give a point of None (a gap).
    """
    out: dict[str, list[float | None]] = {"t": [], "delivered": [], "calls": []}
    for before, after in itertools.pairwise(snaps):
        span_ms = after.at_ms - before.at_ms
        if span_ms <= 0:
            continue
        out["t"].append(after.at_ms / 1000)
        if span_ms > gap_ms:
            out["delivered"].append(None)
            out["calls"].append(None)
            continue
        span_s = span_ms / 1000
        delivered = after.delivered - before.delivered if after.delivered >= before.delivered else after.delivered
        calls = after.calls - before.calls if after.calls >= before.calls else after.calls
        out["delivered"].append(round(delivered / span_s, 2))
        out["calls"].append(round(calls / span_s, 2))
    return out
