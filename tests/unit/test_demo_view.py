"""`imunban demo` without running it: its workload plan, its database URLs, its meter and views."""

from __future__ import annotations

import random
from typing import Any

import fakeredis
import pytest
from rich.console import Console

from imunban.demo.db import db_of, safe_url, with_db
from imunban.demo.run import DUPLICATE_EVENTS, GROUPS, PER_GROUP, POISON, SCHEDULED, SPREAD_S, make_plan
from imunban.demo.view import Meter, PlainView, Sample, summary_table
from imunban.keys import Keys
from imunban.stats import status


def test_plan_mix() -> None:
    """A burst across 300 groups with repeats, 4,000 expiries over 15 s, one poison member in a full batch."""
    now = 1_800_000_000.0
    plan = make_plan(now, random.Random(1))
    assert len(plan.burst) == GROUPS * PER_GROUP + DUPLICATE_EVENTS
    assert len(plan.scheduled) == SCHEDULED
    assert plan.expected_total == GROUPS * PER_GROUP - 1 + SCHEDULED
    assert len({r["group_id"] for r in plan.burst}) == GROUPS
    assert {r["priority"] for r in plan.burst} == {"high", "normal"}
    poison_batch = [r for r in plan.burst if r["group_id"] == plan.poison_group]
    assert {r["member"] for r in poison_batch} >= {POISON} and len({r["member"] for r in poison_batch}) == PER_GROUP
    assert all(r["priority"] == "normal" for r in poison_batch)
    assert all(POISON not in members for members in plan.expected.values())
    times = [r["at"] for r in plan.scheduled]
    assert now < min(times) and max(times) == pytest.approx(now + SPREAD_S)


@pytest.mark.parametrize(
    ("url", "db", "expected"),
    [
        ("redis://127.0.0.1:6379/0", 15, "redis://127.0.0.1:6379/15"),
        ("redis://:pw@host:6379", 3, "redis://:pw@host:6379/3"),
        ("rediss://u:pw@host:6380/2?ssl_cert_reqs=required", 9, "rediss://u:pw@host:6380/9?ssl_cert_reqs=required"),
        ("unix:///tmp/redis.sock?db=1", 4, "unix:///tmp/redis.sock?db=4"),
    ],
)
def test_with_db(url: str, db: int, expected: str) -> None:
    """The demo's URL points at its own logical database, keeping password, TLS and options."""
    assert with_db(url, db) == expected
    assert db_of(expected) == db


def test_safe_url_drops_credentials() -> None:
    """A URL shown in a message keeps scheme, host, port and path, never the user or password."""
    assert safe_url("rediss://user:s3cret@host:6380/2?ssl_cert_reqs=required") == "rediss://host:6380/2"
    assert safe_url("redis://:pw@127.0.0.1:6379") == "redis://127.0.0.1:6379"


def _sample(t: float, delivered: int, calls: int, ok: int, members: int) -> Sample:
    status: dict[str, Any] = {
        "delivered": delivered, "dead": 0, "queued": 5, "scheduled": 7, "in_flight": 2, "hold": None,
        "counters": {"retried": 3},
    }  # fmt: skip
    return Sample(t, status, {"calls": calls, "calls_ok": ok, "members_unbanned": members})


def test_meter_rates_over_last_second() -> None:
    """Rates come from the samples of the last second only."""
    meter = Meter()
    meter.add(_sample(0.0, 0, 0, 0, 0))
    meter.add(_sample(0.5, 1_000, 60, 50, 1_000))
    rates = meter.add(_sample(1.5, 4_000, 250, 200, 4_000))
    assert rates.delivered_per_s == pytest.approx(3_000)
    assert rates.calls_per_s == pytest.approx(190)
    assert rates.members_per_call == pytest.approx(20)


def test_meter_first_sample_has_no_rate() -> None:
    """A single sample (no time span yet) gives zero rates and no members per call."""
    rates = Meter().add(_sample(0.0, 10, 1, 1, 20))
    assert (rates.delivered_per_s, rates.calls_per_s, rates.members_per_call) == (0.0, 0.0, None)


def test_plain_view_and_summary_render() -> None:
    """The plain view prints one line per second; the summary marks failed checks."""
    console = Console(record=True, width=200)
    view = PlainView(console, expected=9_999, limit_per_s=190)
    for i in range(5):
        view.update(_sample(i * 0.25, i * 100, i * 10, i * 10, i * 100))
    view.close()
    lines = console.export_text().splitlines()
    assert len(lines) == 2 and "limit 190" in lines[0] and "queued 5 scheduled 7 in-flight 2" in lines[0]
    console.print(summary_table([("delivered", "1 / 2", False), ("calls", "3", None), ("dead", "1", True)]))
    text = console.export_text()
    assert "FAIL" in text and "ok" in text


def test_plain_view_shows_what_status_reads_from_redis(fake_redis: fakeredis.FakeRedis) -> None:
    """A line built from `status` of a store mid-run shows its delivered, dead, queue depths and the hold."""
    keys = Keys("imunban-demo")
    fake_redis.hset(keys.stats, mapping={"ready": 1_234, "scheduled": 56, "delivered": 7_000, "retried": 12})
    fake_redis.zadd(keys.inflight, {"g\x1fa": 1, "g\x1fb": 2})
    fake_redis.zadd(keys.dead, {"p\x1fpoison": 1})
    fake_redis.hset(keys.hold, mapping={"code": 70003, "info": "usersig invalid", "since_ms": 1, "next_probe_ms": 2})
    console = Console(record=True, width=300)
    view = PlainView(console, expected=9_999, limit_per_s=190)
    view.update(Sample(0.0, status(fake_redis, keys), {"calls": 0, "calls_ok": 0, "members_unbanned": 0}))
    line = console.export_text().strip()
    assert "delivered 7,000/9,999" in line
    assert "retries 12  dead 1  queued 1,234 scheduled 56 in-flight 2 HOLD 70003" in line
