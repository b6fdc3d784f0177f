"""An app removed from or renamed in the apps file leaves its backlog behind: a worker warns, status shows it."""

from __future__ import annotations

import logging

import pytest
import redis

from imunban.apps import AppConfig, Apps
from imunban.deployment import open_deployment
from imunban.runtime import prepare_worker
from imunban.secret import Secret
from imunban.settings import Settings
from imunban.stats import status_of_apps
from imunban.validation import build_request


def app(name: str, sdkappid: int) -> AppConfig:
    return AppConfig(name, sdkappid, secret_key=Secret("k" * 32), base_url="http://127.0.0.1:9")


def test_a_renamed_apps_backlog_is_warned_at_start_and_shown_in_status(
    r: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """'cn' held requests, the file now names 'china': the worker warns naming 'cn', status lists it."""
    settings = Settings(key_prefix="orph")
    old = open_deployment(settings, client=r, apps=Apps([app("cn", 1)]))
    prepare_worker(old)
    old.enqueue([build_request("g", ["a", "b"], app="cn"), build_request("g", ["c"], 4102444800, app="cn")])
    new = open_deployment(settings, client=r, apps=Apps([app("china", 1)]))
    with caplog.at_level(logging.WARNING, logger="imunban.runtime"):
        prepare_worker(new)
    assert "app 'cn' still has requests in Redis (queued 2, scheduled 1)" in caplog.text
    snapshot = status_of_apps(r, [engine.keys for engine in new])
    assert snapshot["orphaned_apps"] == {"cn": {"queued": 2, "scheduled": 1, "in_flight": 0, "dead": 0}}


def test_an_app_found_only_by_its_keys_counts_too_and_an_empty_one_is_quiet(r: redis.Redis) -> None:
    """A store from before the registry is found by its keys at a worker's start; an empty app is not listed."""
    settings = Settings(key_prefix="orph2")
    old = open_deployment(settings, client=r, apps=Apps([app("eu", 1), app("us", 2)]))
    old.enqueue([build_request("g", ["a"], app="eu")])
    r.hset(old.app("us").keys.stats, "delivered", 5)  # ran once, nothing waiting
    new = open_deployment(settings, client=r, apps=Apps([app("asia", 3)]))
    prepare_worker(new)
    assert set(status_of_apps(r, [engine.keys for engine in new])["orphaned_apps"]) == {"eu"}


def test_a_worker_starts_on_a_full_redis(r: redis.Redis) -> None:
    """The registry write is refused at maxmemory; the worker still starts (draining frees memory)."""
    settings = Settings(key_prefix="orph3")
    deployment = open_deployment(settings, client=r, apps=Apps([app("eu", 1)]))
    r.config_set("maxmemory", int(r.info("memory")["used_memory"]) + 1)
    try:
        prepare_worker(deployment)
    finally:
        r.config_set("maxmemory", 0)
