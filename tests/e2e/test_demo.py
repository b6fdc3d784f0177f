"""`imunban demo`: its workload, its private database, its views, and whole runs as a subprocess."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import redis
from imunban.demo.db import LEASE_KEY, MARKER_KEY, DemoDatabase, db_of, with_db
from imunban.demo.run import DUPLICATE_EVENTS, GROUPS, PER_GROUP, POISON, SCHEDULED, SPREAD_S, make_plan
from imunban.demo.view import Meter, PlainView, Sample, summary_table
from imunban.errors import StoreError


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


def test_database_is_private_and_emptied(redis_url: str) -> None:
    """The demo takes an empty database, skips used ones, reclaims a killed demo's, and empties it at the end."""
    used = redis.Redis.from_url(with_db(redis_url, 15))
    used.set("someone:else", "1")
    stale = redis.Redis.from_url(with_db(redis_url, 14))
    stale.set(MARKER_KEY, "old")
    stale.set("imunban-demo:stats", "left over")  # lease expired: a demo killed with SIGKILL
    with DemoDatabase(redis_url) as first, DemoDatabase(redis_url) as second:
        assert (first.db, second.db) == (14, 13)
        client = redis.Redis.from_url(first.url)
        assert client.exists("imunban-demo:stats") == 0
        client.set("imunban-demo:sched", "x")
        assert client.pttl(LEASE_KEY) > 0
    assert client.dbsize() == 0
    assert used.get("someone:else") == b"1"
    for c in (client, used, stale):
        c.close()


def test_database_refuses_when_none_free(redis_url: str) -> None:
    """With every database in use the demo stops with a clear error and touches nothing."""
    clients = [redis.Redis.from_url(with_db(redis_url, db)) for db in range(1, 16)]
    for c in clients:
        c.set("busy", "1")
    with pytest.raises(StoreError, match="empty logical database"), DemoDatabase(redis_url):
        pass
    assert all(c.get("busy") == b"1" for c in clients)
    for c in clients:
        c.close()


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


# -- whole runs ---------------------------------------------------------------------------------


def _imunban() -> list[str]:
    script = Path(sys.executable).parent / "imunban"
    return [str(script)] if script.exists() else [sys.executable, "-m", "imunban"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMUNBAN_")}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env.update(IMUNBAN_DATA_DIR=str(tmp_path / "data"), TMPDIR=str(tmp_path / "tmp"), COLUMNS="200")
    return env


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] != "Z"  # a zombie has exited; only its parent has not collected it yet


def _child_pids(output: str) -> list[int]:
    header = re.search(r"redis-server pid (\d+) .*workers pid ([\d, ]+)", output)
    assert header, output
    return [int(header.group(1))] + [int(p) for p in header.group(2).replace(",", " ").split()]


def _assert_all_stopped(pids: list[int], env: dict[str, str], tmp_path: Path) -> None:
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)]
    status = subprocess.run([*_imunban(), "redis", "status"], env=env, capture_output=True, text=True, check=True)
    assert "not running" in status.stdout


@pytest.fixture
def demo_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A private data dir (so a private embedded Redis) and temp dir; the embedded Redis stopped afterwards."""
    env = _env(tmp_path)
    yield env
    subprocess.run([*_imunban(), "redis", "stop"], env=env, capture_output=True, timeout=30)


@pytest.mark.slow
def test_demo_delivers_and_cleans_up(demo_env: dict[str, str], tmp_path: Path) -> None:
    """`imunban demo` exits 0 within a minute and leaves no process, database or log directory behind."""
    started = time.monotonic()
    result = subprocess.run([*_imunban(), "demo"], env=demo_env, capture_output=True, text=True, timeout=90)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert took < 60
    assert "PASS" in result.stdout and "FAIL" not in result.stdout
    assert re.search(r"rate-limit rejections \(60007\)\s*│\s*0\s*│", result.stdout), result.stdout
    _assert_all_stopped(_child_pids(result.stdout), demo_env, tmp_path)
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.slow
def test_demo_exit_status_reflects_delivery(demo_env: dict[str, str], tmp_path: Path) -> None:
    """A run that cannot finish (a 2 s timeout) exits 1, keeps the worker logs, and still stops everything."""
    result = subprocess.run(
        [*_imunban(), "demo", "--timeout", "2"], env=demo_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL" in result.stdout and "TIMED OUT" in result.stdout
    assert "worker logs kept in" in result.stdout
    _assert_all_stopped(_child_pids(result.stdout), demo_env, tmp_path)


@pytest.mark.slow
def test_demo_sigint_stops_everything(demo_env: dict[str, str], tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) mid-run: exit 130, every worker and the Redis it started are gone."""
    proc = subprocess.Popen(
        [*_imunban(), "demo"], env=demo_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    output = ""
    try:
        for line in proc.stdout:  # wait until it is delivering, so workers and Redis are up
            output += line
            if re.search(r"delivered [1-9]", line):
                break
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    output += rest
    assert proc.returncode == 130, output
    assert "interrupted" in output
    _assert_all_stopped(_child_pids(output), demo_env, tmp_path)
    assert list((tmp_path / "tmp").iterdir()) == []
