"""The quota scenario's figures from a simulator timeline: rejections before and after the live limit, the rate."""

from __future__ import annotations

from imunban.bench.quota import quota_rows, summarize
from imunban.bench.verdict import MISS, OK


def _second(t: int, ok: int, rejected: int = 0) -> dict[str, int]:
    return {"t": t, "calls": ok + rejected, "ok": ok, "members": 20 * ok, "rate_limited": rejected}


def test_rejections_stop_after_the_live_limit_and_the_rate_is_read_after_it_settles() -> None:
    """60007 between the drop and the limit are counted; the last one after the limit is timed from the second the
    limit was set; the steady rate leaves out SETTLE_S seconds and the unfinished last second."""
    timeline = [_second(100, 190), _second(101, 100, 90), _second(102, 100, 80), _second(103, 98, 5)]
    timeline += [_second(t, 95) for t in range(104, 112)]
    result = summarize(timeline, drop_s=101.0, set_s=103.5, end_s=111.5)
    assert result["rejected_before_limit"] == 170 and result["rejected_after_limit"] == 5
    assert result["last_rejection_after_limit_s"] == 0.5
    assert result["calls_ok_per_s"] == 95 and result["ratio_to_new_quota"] == 0.95 and result["steady_seconds"] == 6
    verdicts = [row.verdict for row in quota_rows(result)]
    assert verdicts == ["", OK, OK]


def test_a_drain_below_the_new_quota_misses() -> None:
    """Rejections that go on, or a rate under 0.9 of the new quota, are misses."""
    timeline = [_second(t, 80, 3) for t in range(100, 115)]
    verdicts = [row.verdict for row in quota_rows(summarize(timeline, 100.0, 102.0, 114.0))]
    assert verdicts == ["", MISS, MISS]
