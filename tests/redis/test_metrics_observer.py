"""The Prometheus series of one worker, fed by a real store: delivery events, and the readings taken at scrape time."""

from __future__ import annotations

import redis
from prometheus_client import generate_latest

from helpers import deployment_on, metric_value, set_maxmemory
from imunban.connection import server_time_ms
from imunban.heartbeat import ALIVE_MS, Heartbeat
from imunban.hold import Hold
from imunban.keys import Keys
from imunban.limiter import RedisRateLimiter
from imunban.metrics import PrometheusObserver, RedisCollector
from imunban.store import Store
from imunban.validation import UnbanRequest
from imunban.vitals import read_vitals

KEYS = Keys("imunban")


def scrape(r: redis.Redis) -> str:
    observer = PrometheusObserver()
    observer.registry.register(RedisCollector(deployment_on(r, KEYS)))
    return generate_latest(observer.registry).decode()


def test_observer_series_move(r: redis.Redis) -> None:
    """Each delivery event moves its series; queue depths and the hold are read at scrape time."""
    observer = PrometheusObserver()
    observer.registry.register(RedisCollector(deployment_on(r, KEYS)))
    observer.api_call(0, 20, 0.05)
    observer.api_call(10002, 3, 0.2)
    observer.limiter_wait(0.004)
    observer.delivered([100, 2_500])
    observer.retried(3)
    observer.dead(1, 10004)
    observer.group_gone(2)
    observer.rejected("imunban.unban")
    Store(r, KEYS).enqueue([UnbanRequest("g", ("a", "b")), UnbanRequest("g", ("c",), 2_000_000_000_000)])
    Hold(r, KEYS).set(10007, "switched off")
    text = generate_latest(observer.registry).decode()
    assert metric_value(text, "imunban_api_calls_total", kind="answer", code="0") == 1
    assert metric_value(text, "imunban_api_calls_total", kind="answer", code="10002") == 1
    assert metric_value(text, "imunban_batch_size_count") == 2
    assert metric_value(text, "imunban_batch_size_bucket", le="20.0") == 2
    assert metric_value(text, "imunban_members_delivered_total") == 2
    assert metric_value(text, "imunban_due_to_delivered_seconds_bucket", le="0.1") == 1
    assert metric_value(text, "imunban_due_to_delivered_seconds_count") == 2
    assert metric_value(text, "imunban_limiter_wait_seconds_count") == 1
    assert metric_value(text, "imunban_retries_total") == 3
    assert metric_value(text, "imunban_dead_letters_total", code="10004") == 1
    assert metric_value(text, "imunban_group_gone_total") == 2
    assert metric_value(text, "imunban_rejected_messages_total", task="imunban.unban") == 1
    assert metric_value(text, "imunban_queue_depth", state="queued") == 2
    assert metric_value(text, "imunban_queue_depth", state="scheduled") == 1
    assert metric_value(text, "imunban_queue_depth", state="in_flight") == 0
    assert metric_value(text, "imunban_hold_active", code="10007") == 1
    assert metric_value(text, "imunban_redis_up") == 1


def test_oldest_due_age_on_the_server_clock(r: redis.Redis) -> None:
    """The oldest due age is server time minus the oldest due request's due time; 0 once nothing is due."""
    now = server_time_ms(r, KEYS.stats)
    assert read_vitals(r, KEYS, now).oldest_due_ms is None
    Store(r, KEYS).enqueue([UnbanRequest("g", ("a",), now - 40_000), UnbanRequest("h", ("b",), now - 5_000)])
    assert read_vitals(r, KEYS, now).oldest_due_age_s == 40.0
    assert 40 <= metric_value(scrape(r), "imunban_oldest_due_age_seconds") < 45
    r.delete(KEYS.groups, KEYS.ready("g"), KEYS.ready("h"), KEYS.schedidx)
    assert metric_value(scrape(r), "imunban_oldest_due_age_seconds") == 0


def test_workers_alive_count_recent_heartbeats(r: redis.Redis) -> None:
    """Workers that beat within ALIVE_MS count as alive; a silent one does not."""
    assert metric_value(scrape(r), "imunban_workers_alive") == 0
    Heartbeat(r, KEYS, "host-a:1").beat()
    Heartbeat(r, KEYS, "host-b:2").beat()
    r.hset(KEYS.workers, "host-c:3", server_time_ms(r) - ALIVE_MS - 5_000)
    assert metric_value(scrape(r), "imunban_workers_alive") == 2


def test_limiter_use_follows_reservations(r: redis.Redis) -> None:
    """No reservation: use 0; calls booked ahead of now: the limit counts as fully used (>= 1)."""
    assert metric_value(scrape(r), "imunban_limiter_use_ratio") == 0
    limiter = RedisRateLimiter(r, KEYS, 1400000000, 10.0, sleep=lambda s: None)
    for _ in range(5):
        limiter.acquire()
    assert metric_value(scrape(r), "imunban_limiter_use_ratio") >= 1
    assert metric_value(scrape(r), "imunban_rate_limit_calls_per_second") == 190


def test_redis_memory_against_maxmemory(r: redis.Redis) -> None:
    """used_memory and maxmemory of the server are exported, maxmemory 0 when unlimited."""
    r.config_set("maxmemory", 0)
    text = scrape(r)
    assert metric_value(text, "imunban_redis_memory_used_bytes") > 0
    assert metric_value(text, "imunban_redis_memory_max_bytes") == 0
    try:
        limit = set_maxmemory(r, 50 * 1024 * 1024)
        text = scrape(r)
        assert metric_value(text, "imunban_redis_memory_max_bytes") == limit
        assert metric_value(text, "imunban_redis_memory_used_bytes") < limit
    finally:
        r.config_set("maxmemory", 0)


def test_status_counters_are_exported(r: redis.Redis) -> None:
    """Every status counter (reaped, revoked, internal_errors, ...) and the rejected messages come from Redis."""
    r.hset(KEYS.stats, mapping={"reaped": 3, "revoked": 2, "internal_errors": 1, "stale_requeues": 4})
    r.hset(KEYS.deployment_stats, "rejected_messages", 6)
    text = scrape(r)
    for counter, value in {"reaped": 3, "revoked": 2, "internal_errors": 1, "stale_requeues": 4, "replayed": 0}.items():
        assert metric_value(text, "imunban_status_counter_total", counter=counter) == value, counter
    assert metric_value(text, "imunban_status_counter_total", app="-", counter="rejected_messages") == 6
