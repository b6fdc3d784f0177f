"""The adaptive linger in Lua (_lib.lua's pace_use and linger_ms) agrees with its Python twin."""

from __future__ import annotations

import pytest
import redis

from imunban.linger import limiter_use, linger_ms
from imunban.scripts import lua_source

#: Runs pace_use and linger_ms on the server with the stats fields given, and returns both results.
PROBE = """
local now = tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'pace_us', ARGV[2], 'pace', ARGV[3], 'pace_interval_us', ARGV[4], 'pace_booked_us', ARGV[5])
local use, interval_ms = pace_use(KEYS[1], now)
return {tostring(use), linger_ms(use, tonumber(ARGV[6]), interval_ms, tonumber(ARGV[7]))}
"""

INTERVAL_US = 5_264


@pytest.mark.parametrize(
    ("age_us", "count", "booked_ahead_us", "waiting", "bound_ms"),
    [
        (0, 0.5, 0, 50, 1000),  # idle: goes at once
        (0, 150.0, 0, 50, 1000),  # busy: waits part of a round
        (0, 190.0, 0, 300, 1000),  # at the limit with many groups: the bound
        (2_000_000, 190.0, 0, 50, 1000),  # two seconds quiet: calls to spare again
        (0, 3.0, 20 * INTERVAL_US, 100, 1000),  # a burst: the schedule is booked ahead
        (0, 3.0, INTERVAL_US // 2, 100, 1000),  # only the next slot taken: still spare
    ],
)
def test_lua_linger_equals_python(
    r: redis.Redis, age_us: int, count: float, booked_ahead_us: int, waiting: int, bound_ms: int
) -> None:
    """For the same pace, schedule and waiting groups, Lua and Python give the same use and wait."""
    now_us = 1_800_000_000_000_000
    script = r.register_script(lua_source("imunban", "_lib") + "\n" + PROBE)
    args = [now_us, now_us - age_us, count, INTERVAL_US, now_us + booked_ahead_us, waiting, bound_ms]
    lua_use, lua_wait = script(keys=["t:linger-probe"], args=args)
    use = limiter_use(count, age_us / 1e6, INTERVAL_US / 1e6, booked_ahead_us / 1e6)
    assert float(lua_use) == pytest.approx(use, rel=1e-6)
    assert int(lua_wait) == linger_ms(use, waiting, INTERVAL_US / 1000, bound_ms)
