"""Assemble the engine for one worker process from :class:`~worker.settings.Settings`."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from worker.connection import connect
from worker.delivery import Deliverer, RetryPolicy, UnbanApi
from worker.hold import Hold
from worker.keys import Keys
from worker.limiter import RedisRateLimiter
from worker.observe import Observer
from worker.pump import Pump, PumpConfig, Submit
from worker.schedule import Scheduler
from worker.settings import Settings
from worker.store import Store


@dataclass
class Runtime:
    """Everything a worker process needs, built once and shared by its threads."""

    settings: Settings
    client: redis.Redis
    keys: Keys
    store: Store
    scheduler: Scheduler
    hold: Hold
    deliverer: Deliverer
    pump: Pump
    observer: Observer


def build_runtime(
    settings: Settings,
    submit: Submit,
    *,
    client: redis.Redis | None = None,
    api: UnbanApi | None = None,
    observer: Observer | None = None,
) -> Runtime:
    """Wire store, limiter, API client, hold, deliverer and pump; ``submit`` runs delivery tasks."""
    sdkappid, _, _ = settings.require_credentials()
    client = client or connect(settings)
    keys = Keys(settings.key_prefix)
    store = Store(
        client, keys, linger_ms=settings.linger_ms, max_linger_ms=settings.max_linger_ms, lease_ms=settings.lease_ms,
        outcome_maxlen=settings.outcome_stream_maxlen,
    )  # fmt: skip
    scheduler = Scheduler(client, keys, linger_ms=settings.linger_ms, max_linger_ms=settings.max_linger_ms)
    hold = Hold(client, keys)
    limiter = RedisRateLimiter(client, keys, sdkappid, settings.rate_limit_per_s)
    if api is None:
        from worker.api import ApiClient

        api = ApiClient(settings)
    policy = RetryPolicy(
        max_attempts=settings.max_attempts,
        max_age_ms=settings.max_age_s * 1000,
        backoff_base_ms=settings.backoff_base_ms,
        backoff_cap_ms=settings.backoff_cap_ms,
    )
    observer = observer or Observer()
    deliverer = Deliverer(store, limiter, api, hold, policy=policy, observer=observer)
    pump = Pump(
        client, keys, store, scheduler, hold, submit,
        PumpConfig(slots_per_group=settings.concurrency, max_markers=max(16, 4 * settings.concurrency)),
    )  # fmt: skip
    return Runtime(settings, client, keys, store, scheduler, hold, deliverer, pump, observer)
