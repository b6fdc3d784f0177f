"""`imunban limit` shows, sets and resets an app's live rate limit (audited), and `imunban status` shows it."""

from __future__ import annotations

import json

import redis

from helpers import Run
from imunban.keys import Keys

KEYS = Keys()


def test_limit_shows_sets_and_resets_the_rate(cli: Run, r: redis.Redis) -> None:
    """No RATE: the configured limit; RATE: stored, said and audited; --reset: back to the configured one."""
    rc, out, _ = cli("limit")
    assert rc == 0 and out.strip() == "app default: 190 calls/s (configured)"
    rc, out, _ = cli("limit", "120")
    assert rc == 0 and out.startswith("app default: rate limit 120 calls/s (was 190 (configured))")
    data = json.loads(cli("limit", "--json")[1])
    assert data["effective_per_s"] == 120.0 and data["source"] == "live" and data["by"].startswith("cli ")
    doc = json.loads(cli("status", "--json")[1])
    assert doc["rate_limit"]["effective_per_s"] == 120.0
    assert doc["apps"]["default"]["rate_limit"]["live_per_s"] == 120.0
    assert "120 calls/s (live, set by cli " in cli("status")[1]
    rc, out, _ = cli("limit", "--reset")
    assert rc == 0 and "live limit 120 calls/s removed" in out
    assert json.loads(cli("limit", "--json")[1])["source"] == "configured"
    actions = [f["action"] for _, f in r.xrange(KEYS.outcomes) if f["outcome"] == "audit"]
    assert actions == ["limit", "limit"]


def test_a_bad_rate_is_an_error_naming_the_field(cli: Run, r: redis.Redis) -> None:
    """RATE 0, above 200 or not a number exits 2 naming RATE; RATE with --reset too; nothing is stored."""
    for bad in ("0", "500", "fast"):
        rc, _, err = cli("limit", bad)
        assert rc == 2 and "error: RATE" in err, bad
    rc, _, err = cli("limit", "--reset", "100")
    assert rc == 2 and "RATE" in err
    assert not r.exists(KEYS.limit)
