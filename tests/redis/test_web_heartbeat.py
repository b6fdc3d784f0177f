"""Worker heartbeats: the pump records its ticks, at most once a second, and silent workers are pruned."""

from __future__ import annotations

import redis

from imunban.heartbeat import ALIVE_MS, FORGET_AFTER_MS, Heartbeat, workers
from imunban.keys import Keys

KEYS = Keys("t")


def test_beat_is_throttled_and_read_back(r: redis.Redis) -> None:
    """Beats closer than every_s are skipped; workers() shows the worker alive with its last tick."""
    now = [100.0]
    beat = Heartbeat(r, KEYS, "host-a:1", every_s=1.0, clock=lambda: now[0])
    assert beat.beat() is True
    assert beat.beat() is False
    now[0] += 1.0
    assert beat.beat() is True
    (seen,) = workers(r, KEYS, int(r.hget(KEYS.workers, "host-a:1") or 0) + 500)
    assert seen.worker == "host-a:1" and seen.alive and seen.age_ms == 500
    assert not workers(r, KEYS, seen.last_tick_ms + ALIVE_MS + 1)[0].alive


def test_silent_workers_are_pruned_and_hidden(r: redis.Redis) -> None:
    """A worker silent past FORGET_AFTER_MS is not listed, and the next beating worker deletes it."""
    r.hset(KEYS.workers, "gone:9", 1)
    assert [w.worker for w in workers(r, KEYS, FORGET_AFTER_MS + 10)] == []
    Heartbeat(r, KEYS, "host-b:2").beat()
    assert r.hkeys(KEYS.workers) == ["host-b:2"]


def test_a_refused_beat_never_raises(r: redis.Redis) -> None:
    """A Redis that refuses the write costs a beat, never the pump's tick."""
    r.set(KEYS.workers, "not a hash")  # every HSET on it fails with WRONGTYPE
    assert Heartbeat(r, KEYS, "host-c:3").beat() is False


def test_a_retired_worker_is_gone_and_beats_no_more(r: redis.Redis) -> None:
    """A clean stop removes the worker's entry at once (never "silent" for an hour), and later beats are skipped."""
    now = [100.0]
    beat = Heartbeat(r, KEYS, "host-d:4", clock=lambda: now[0])
    other = Heartbeat(r, KEYS, "host-e:5")
    assert beat.beat() and other.beat()
    assert beat.retire() is True
    now[0] += 5.0
    assert beat.beat() is False
    assert r.hkeys(KEYS.workers) == ["host-e:5"]
