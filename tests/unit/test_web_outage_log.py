"""The console's log of a Redis outage: one line per kind of failure per minute, then how many were left out."""

from __future__ import annotations

import logging

import pytest
import redis

from imunban.errors import StoreError
from imunban.web.outage import OutageLog, unreachable


def test_one_line_per_kind_per_interval_then_the_count_left_out(caplog: pytest.LogCaptureFixture) -> None:
    """Within 60 s a kind logs once; the next line after that says how many were not logged."""
    now = [0.0]
    outages = OutageLog(every_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="imunban.web.outage"):
        for _ in range(5):
            outages.failure("redis unreachable", "GET /: refused")
        outages.failure("redis error", "GET /dead: NOPERM")
        now[0] = 61.0
        outages.failure("redis unreachable", "GET /: refused")
    messages = [rec.getMessage() for rec in caplog.records]
    assert messages == [
        "redis unreachable: GET /: refused",
        "redis error: GET /dead: NOPERM",
        "redis unreachable: GET /: refused (4 more since the last report)",
    ]


def test_unreachable_looks_through_the_translation() -> None:
    """A StoreError translated from a connection error is "unreachable"; a refused command is not."""
    try:
        try:
            raise redis.exceptions.ConnectionError("Connection refused")
        except redis.exceptions.ConnectionError as exc:
            raise StoreError("redis: overview failed") from exc
    except StoreError as translated:
        assert unreachable(translated)
    assert not unreachable(StoreError("redis: NOPERM"))
    assert unreachable(redis.exceptions.TimeoutError("timed out"))
