"""What `imunban status` shows, from the hashes and sets it reads (a fake Redis), and how it prints times."""

from __future__ import annotations

import fakeredis
import pytest
from rich.console import Console

from imunban.cli.common import fmt_ms, fmt_relative
from imunban.cli.operate import status_table
from imunban.keys import Keys
from imunban.stats import COUNTERS, status

KEYS = Keys("imunban")
#: 2100-01-01T00:00:00Z: a due time far in the future, whatever the clock says now.
LATER_MS = 4_102_444_800_000


@pytest.mark.parametrize(
    ("ms", "shown"),
    [(None, "-"), (0, "1970-01-01T00:00:00.000Z"), (LATER_MS + 1_234, "2100-01-01T00:00:01.234Z")],
)
def test_fmt_ms(ms: int | None, shown: str) -> None:
    """Epoch milliseconds print as ISO-8601 UTC to the millisecond; None prints as '-'."""
    assert fmt_ms(ms) == shown


@pytest.mark.parametrize(
    ("delta_ms", "suffix"),
    [
        (1_500, "(in 1.5s)"),
        (-1_500, "(1.5s ago)"),
        (90_000, "(in 1m 30s)"),
        (2 * 3_600_000 + 5 * 60_000 + 7_000, "(in 2h 5m)"),
        (-(3 * 86_400_000 + 4 * 3_600_000 + 59_000), "(3d 4h ago)"),
    ],
)
def test_fmt_relative_two_largest_units(delta_ms: int, suffix: str) -> None:
    """A time prints with how far it is from now: seconds to a tenth under a minute, else the two largest units."""
    now = 1_800_000_000_000
    assert fmt_relative(now + delta_ms, now) == f"{fmt_ms(now + delta_ms)} {suffix}"
    assert fmt_relative(None, now) == "-"


def test_status_of_an_empty_store_reads_zero(fake_redis: fakeredis.FakeRedis) -> None:
    """With no key at all, every count is 0, every counter is present, and there is no hold or next due time."""
    snapshot = status(fake_redis, KEYS)
    assert (snapshot["queued"], snapshot["scheduled"], snapshot["in_flight"], snapshot["dead"]) == (0, 0, 0, 0)
    assert snapshot["hold"] is None and snapshot["next_due_ms"] is None
    assert snapshot["counters"] == dict.fromkeys(COUNTERS, 0)


def _store_mid_run(client: fakeredis.FakeRedis, *, held: bool) -> None:
    client.hset(KEYS.stats, mapping={"ready": 12_345, "scheduled": 2, "delivered": 1_000_000, "revoked": 4})
    client.zadd(KEYS.schedidx, {"later": LATER_MS})
    client.zadd(KEYS.inflight, {"g\x1fa": 1, "g\x1fb": 1, "h\x1fc": 1})
    client.zadd(KEYS.dead, {"p\x1fpoison": 1})
    client.zadd(KEYS.groups, {"g": 1, "h": 2})
    if held:
        client.hset(KEYS.hold, mapping={"code": 70003, "info": "usersig invalid", "since_ms": 1, "next_probe_ms": 0})


def test_status_counts_from_gauges_sets_and_hold(fake_redis: fakeredis.FakeRedis) -> None:
    """status reads the ready/scheduled gauges, the sizes of the in-flight, dead and groups sets, and the hold."""
    _store_mid_run(fake_redis, held=True)
    snapshot = status(fake_redis, KEYS)
    assert (snapshot["queued"], snapshot["scheduled"], snapshot["in_flight"]) == (12_345, 2, 3)
    assert (snapshot["delivered"], snapshot["dead"], snapshot["groups_waiting"]) == (1_000_000, 1, 2)
    assert snapshot["next_due_ms"] == LATER_MS
    assert snapshot["counters"]["revoked"] == 4
    assert snapshot["hold"] is not None and (snapshot["hold"]["code"], snapshot["hold"]["info"]) == (
        70003,
        "usersig invalid",
    )


def _render(snapshot: dict[str, object]) -> str:
    console = Console(record=True, width=160)
    console.print(status_table(snapshot))
    return console.export_text()


def test_status_table_without_a_hold(fake_redis: fakeredis.FakeRedis) -> None:
    """The table says the hold is none (not that anything is delivering), groups thousands, shows the next due time."""
    _store_mid_run(fake_redis, held=False)
    text = _render(status(fake_redis, KEYS))
    assert "HOLD" not in text and "delivering" not in text
    assert next(line for line in text.splitlines() if line.strip("│ ").startswith("hold")).split()[-2] == "none"
    row = next(line for line in text.splitlines() if "queued (due now)" in line)
    assert "12,345" in row
    assert "1,000,000" in text
    assert "2100-01-01T00:00:00.000Z (in " in text


def test_status_table_shows_the_hold(fake_redis: fakeredis.FakeRedis) -> None:
    """During a hold the table names its ErrorCode and info, and when it began."""
    _store_mid_run(fake_redis, held=True)
    text = _render(status(fake_redis, KEYS))
    assert "HOLD" in text and "ErrorCode 70003: usersig invalid" in text
    assert "held since" in text and "1970-01-01T00:00:00.001Z" in text
    assert "none" not in text
