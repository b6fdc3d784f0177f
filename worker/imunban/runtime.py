"""Assemble the engine for one worker process from :class:`~imunban.settings.Settings`."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from imunban.api import ApiClient
from imunban.connection import connect
from imunban.delivery import Deliverer, UnbanApi
from imunban.hold import Hold
from imunban.keys import Keys
from imunban.limiter import RedisRateLimiter
from imunban.observe import Observer
from imunban.pump import Pump, PumpConfig, Submit
from imunban.retry import RetryPolicy
from imunban.schedule import Scheduler
from imunban.settings import Settings
from imunban.store import Store


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
        client, keys, linger=settings.linger, lease_ms=settings.lease_ms, outcome_maxlen=settings.outcome_stream_maxlen
    )
    scheduler = Scheduler(client, keys, linger=settings.linger)
    hold = Hold(client, keys)
    limiter = RedisRateLimiter(client, keys, sdkappid, settings.rate_limit_per_s)
    if api is None:
        api = ApiClient(settings)
    policy = RetryPolicy.from_settings(settings)
    observer = observer or Observer()
    deliverer = Deliverer(store, limiter, api, hold, policy=policy, observer=observer)
    pump = Pump(
        client, keys, store, scheduler, hold, submit,
        PumpConfig(slots_per_group=settings.concurrency, max_markers=max(16, 4 * settings.concurrency)),
    )  # fmt: skip
    return Runtime(settings, client, keys, store, scheduler, hold, deliverer, pump, observer)
