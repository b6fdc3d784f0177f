"""The Prometheus series of one worker, fed by a real store: delivery events and the depths read at scrape time."""

from __future__ import annotations

import redis
from prometheus_client import CollectorRegistry, generate_latest

from helpers import deployment_on, metric_value
from imunban.hold import Hold
from imunban.keys import Keys
from imunban.metrics import PrometheusObserver, QueueDepthCollector, StateCollector
from imunban.pause import Actor, Pause
from imunban.state import STATES
from imunban.store import Store
from imunban.validation import UnbanRequest


def test_observer_series_move(r: redis.Redis) -> None:
    """Each delivery event moves its series; queue depths and the hold are read at scrape time."""
    keys = Keys("imunban")
    observer = PrometheusObserver()
    observer.registry.register(QueueDepthCollector(deployment_on(r, keys)))
    observer.api_call(0, 20, 0.05)
    observer.api_call(10002, 3, 0.2)
    observer.limiter_wait(0.004)
    observer.delivered([100, 2_500])
    observer.retried(3)
    observer.dead(1, 10004)
    observer.group_gone(2)
    observer.rejected("imunban.unban")
    Store(r, keys).enqueue([UnbanRequest("g", ("a", "b")), UnbanRequest("g", ("c",), 2_000_000_000_000)])
    Hold(r, keys).set(10007, "switched off")
    observer.hold(10007)
    text = generate_latest(observer.registry).decode()
    assert metric_value(text, "imunban_api_calls_total", code="0") == 1
    assert metric_value(text, "imunban_api_calls_total", code="10002") == 1
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
    assert metric_value(text, "imunban_hold") == 1


def test_state_gauge_is_one_for_the_current_state_of_each_app(r: redis.Redis) -> None:
    """imunban_state{app, state}: one series per state, 1 for the current one (paused here), 0 for the others."""
    keys = Keys("imunban")
    Store(r, keys).enqueue([UnbanRequest("g", ("a",))])
    Pause(r, keys).pause("deploy", Actor("cli", "cli", "u@h"))
    registry = CollectorRegistry()
    registry.register(StateCollector(deployment_on(r, keys)))
    text = generate_latest(registry).decode()
    values = {state: metric_value(text, "imunban_state", app="default", state=state) for state in STATES}
    assert values == {state: 1.0 if state == "paused" else 0.0 for state in STATES}
