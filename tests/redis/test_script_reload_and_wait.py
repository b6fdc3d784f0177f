"""Script calls survive an emptied script cache (also inside pipelines); WAIT makes intake durable or fails it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.client import Pipeline

from helpers import KEYS, req
from imunban.deadletter import DeadLetters
from imunban.errors import ConfigError, DurabilityError
from imunban.ha import check_memory_policy
from imunban.keys import request_id
from imunban.pipelines import run_scripts
from imunban.scripts import register
from imunban.settings import Durability, LingerPolicy
from imunban.store import Store

#: One replica that the single test server can never provide, with a short wait.
UNREACHABLE = Durability(replicas=1, timeout_ms=50)


@pytest.fixture
def flush_before_execute(r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Once armed (an item appended), empty the script cache right before the next pipeline is sent."""
    flushes: list[int] = []
    original = Pipeline.execute

    def execute(self: Pipeline, raise_on_error: bool = True) -> Any:
        if flushes == [0]:  # once: a cache emptied on every try would be a different failure
            r.script_flush()
            flushes[0] = 1
        return original(self, raise_on_error)

    monkeypatch.setattr(Pipeline, "execute", execute)
    yield flushes


def test_enqueue_after_script_flush(store: Store, r: redis.Redis) -> None:
    """SCRIPT FLUSH between two enqueues: the second still stores, no error reaches the caller."""
    assert store.enqueue([req("g", "a")]).stored == 1
    r.script_flush()
    assert store.enqueue([req("g", "b")]).stored == 1
    r.script_flush()
    assert store.cancel("g", ["a"]) == 1


def test_pipeline_reloads_scripts_flushed_before_execute(
    r: redis.Redis, flush_before_execute: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    """A pipeline of script calls whose cache is emptied just before it is sent is reloaded and sent again."""
    store = Store(r, KEYS, linger=LingerPolicy(0))
    store.enqueue([req("warm", "x")])  # the scripts are loaded now
    flush_before_execute.append(0)
    with caplog.at_level(logging.INFO, logger="imunban.redis"):
        result = store.enqueue([req(f"g{i}", *(f"m{j}" for j in range(600))) for i in range(20)])
    assert flush_before_execute == [1]
    assert result.stored == 12_000
    assert "scripts not in the server's cache" in caplog.text


def test_run_scripts_reruns_calls_that_already_ran(r: redis.Redis, flush_before_execute: list[int]) -> None:
    """Calls of a pipeline re-sent after NOSCRIPT run again; enqueue is idempotent, so nothing doubles."""
    store = Store(r, KEYS, linger=LingerPolicy(0))
    keys, args = next(iter(store._enqueue_calls([req("g", "m")])))
    call = (register(r, "enqueue"), keys, args)
    run_scripts(r, [call], operation="enqueue")  # loaded
    flush_before_execute.append(0)
    replies = run_scripts(r, [call, call], operation="enqueue")
    assert flush_before_execute == [1]
    assert len(replies) == 2
    assert r.zcard(KEYS.ready("g")) == 1


def test_wait_confirmed_by_zero_replicas_is_immediate(store: Store, r: redis.Redis) -> None:
    """Durability(0) adds no WAIT: enqueue and cancel behave as before."""
    durable = Store(r, KEYS, linger=LingerPolicy(0), durability=Durability(0, 50))
    assert durable.enqueue([req("g", "a")]).stored == 1
    assert durable.cancel("g", ["a"]) == 1


def test_unreachable_replica_count_is_a_durability_error(r: redis.Redis) -> None:
    """WAIT 1 on a Redis without replicas times out: enqueue, cancel and dead replay raise DurabilityError."""
    durable = Store(r, KEYS, linger=LingerPolicy(0), durability=UNREACHABLE)
    with pytest.raises(DurabilityError, match=r"0 of 1 replica.*may or may not be stored.*re-sending it is safe"):
        durable.enqueue([req("g", "a")])
    assert r.zcard(KEYS.ready("g")) == 1  # stored on the primary: the error says "may or may not"
    with pytest.raises(DurabilityError):
        durable.enqueue([req(f"g{i}", *(f"m{j}" for j in range(1_000))) for i in range(10)])  # bulk: many chunks
    with pytest.raises(DurabilityError):
        durable.cancel("g", ["a"])
    dead = DeadLetters(r, KEYS, durability=UNREACHABLE)
    r.zadd(KEYS.dead, {request_id("g", "a"): 1})
    with pytest.raises(DurabilityError):
        dead.replay([("g", "a")])


def test_memory_policy_checked(r: redis.Redis) -> None:
    """noeviction passes; an evicting policy is refused with an error naming maxmemory-policy."""
    check_memory_policy(r)
    r.config_set("maxmemory-policy", "allkeys-lru")
    try:
        with pytest.raises(ConfigError, match=r"maxmemory-policy is 'allkeys-lru'.*noeviction"):
            check_memory_policy(r)
    finally:
        r.config_set("maxmemory-policy", "noeviction")


def test_memory_policy_unreadable_is_a_warning(fake_redis: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Where CONFIG is not allowed (here: unknown to the fake), a warning says it could not check."""
    with caplog.at_level(logging.WARNING, logger="imunban.redis"):
        check_memory_policy(fake_redis)
    assert "could not check Redis maxmemory-policy" in caplog.text
