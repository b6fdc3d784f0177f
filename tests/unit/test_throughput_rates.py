"""Rates from the per-minute snapshots: differences over the real span, no negative rate, gaps stay gaps."""

from __future__ import annotations

from imunban.throughput import Snapshot, parse, rates


def test_rates_are_differences_over_the_real_span() -> None:
    """Snapshots 60 s and 30 s apart: per-second rates over each span, at the later snapshot's time."""
    snaps = [Snapshot(1, 60_000, 0, 0), Snapshot(2, 120_000, 1200, 60), Snapshot(3, 150_000, 1500, 75)]
    assert rates(snaps) == {"t": [120.0, 150.0], "delivered": [20.0, 10.0], "calls": [1.0, 0.5]}


def test_a_reset_counter_and_a_gap() -> None:
    """A counter that went down counts from zero; snapshots ten minutes apart leave a gap (None), not an average."""
    snaps = [Snapshot(1, 60_000, 500, 50), Snapshot(2, 120_000, 60, 6), Snapshot(12, 720_000, 6060, 306)]
    assert rates(snaps) == {"t": [120.0, 720.0], "delivered": [1.0, None], "calls": [0.1, None]}


def test_parse_takes_only_well_formed_snapshots() -> None:
    """Stored members are "minute:at_ms:delivered:calls"; anything else is skipped."""
    assert parse("28000000:1680000000123:42:7") == Snapshot(28000000, 1680000000123, 42, 7)
    assert parse("junk") is None and parse("1:2:3:-4") is None
