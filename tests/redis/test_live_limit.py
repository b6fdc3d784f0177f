"""The live rate limit on a real Redis: set and reset are stored and audited in one script, bad input stores
nothing, and a worker's limiter paces by the live rate once its cache time passed (injected clock and sleep)."""

from __future__ import annotations

import pytest
import redis

from helpers import KEYS, fill_redis
from imunban.errors import ValidationError
from imunban.limiter import RedisRateLimiter
from imunban.livelimit import LiveLimit, LiveRate
from imunban.pause import Actor

CLI = Actor("cli", "cli", "alice@ops1")


def audits(r: redis.Redis) -> list[dict[str, str]]:
    return [fields for _, fields in r.xrange(KEYS.outcomes) if fields["outcome"] == "audit"]


def test_set_and_reset_are_stored_and_audited(r: redis.Redis) -> None:
    """set stores the rate with who and when and returns the one it replaced; reset reverts; each is audited."""
    limit = LiveLimit(r, KEYS, 190.0)
    assert limit.get().effective_per_s == 190.0 and limit.get().live_per_s is None
    assert limit.set("150", CLI) is None
    state = limit.get()
    assert (state.effective_per_s, state.by, state.as_dict()["source"]) == (150.0, "cli alice@ops1", "live")
    assert limit.set(120, Actor("operator", "session", "10.0.0.7")) == 150.0
    assert limit.reset(CLI) == 120.0
    assert limit.reset(CLI) is None
    assert limit.get().effective_per_s == 190.0 and not r.exists(KEYS.limit)
    assert [(e["action"], e["count"], e["info"], e["role"]) for e in audits(r)] == [
        ("limit", "1", "rate limit 150 calls/s (was 190 (configured))", "cli"),
        ("limit", "1", "rate limit 120 calls/s (was 150)", "operator"),
        ("limit", "1", "rate limit reset to the configured 190 calls/s (was 120)", "cli"),
        ("limit", "0", "rate limit reset: no live limit was set", "cli"),
    ]
    assert audits(r)[0]["app"] == KEYS.app


@pytest.mark.parametrize("rate", [0, "-1", "250", "nan", "lots"])
def test_a_bad_rate_stores_nothing(r: redis.Redis, rate: object) -> None:
    """A rate out of (0, 200] or not a number is refused naming the field; no key, no audit entry."""
    with pytest.raises(ValidationError, match=r"^rate"):
        LiveLimit(r, KEYS, 190.0).set(rate, CLI)
    assert not r.exists(KEYS.limit) and audits(r) == []


def test_an_operator_can_lower_the_limit_on_a_full_redis(fr: redis.Redis) -> None:
    """limit_set's first write proceeds at maxmemory: a quota cut can be applied while Redis is full."""
    fill_redis(fr)
    limit = LiveLimit(fr, KEYS, 190.0)
    limit.set(100, CLI)
    assert limit.get().effective_per_s == 100.0


def test_the_limiter_paces_by_the_live_rate_after_the_cache_time(r: redis.Redis) -> None:
    """Two back-to-back reservations are one interval apart: 1/190 s, then 1/2 s once the live 2/s is read."""
    limit = LiveLimit(r, KEYS, 190.0)
    now = [0.0]
    slept: list[float] = []
    live = LiveRate(limit.get, 190.0, clock=lambda: now[0], cache_s=0.5)
    limiter = RedisRateLimiter(r, KEYS, 1400000000, 190.0, sleep=slept.append, live_rate=live)
    limiter.acquire()
    limiter.acquire()
    assert 0 < slept[-1] <= 1 / 190 + 0.002
    limit.set(2, CLI)
    now[0] = 0.4  # inside the cache time: still 190/s
    limiter.acquire()
    assert limiter.interval_us == 5264
    now[0] = 0.5
    r.delete(KEYS.limiter(1400000000))
    limiter.acquire()
    limiter.acquire()
    assert limiter.interval_us == 500_000 and 0.45 <= slept[-1] <= 0.5
