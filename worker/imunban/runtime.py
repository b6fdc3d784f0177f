"""Assemble the engine for one worker process from :class:`~imunban.settings.Settings`."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from imunban.api import ApiClient
from imunban.connection import connect
from imunban.delivery import Deliverer, UnbanApi
from imunban.ha import check_memory_policy
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
    # An evicting Redis could drop queued unbans without a trace: refuse it before any work starts.
    check_memory_policy(client)
    keys = Keys(settings.key_prefix)
    store = Store(
        client,
        keys,
        linger=settings.linger,
        lease_ms=settings.lease_ms,
        outcome_maxlen=settings.outcome_stream_maxlen,
        # The Celery intake tasks enqueue through this store: a DurabilityError leaves their message unacknowledged.
        durability=settings.durability,
    )
    scheduler = Scheduler(client, keys, linger=settings.linger, version_memory_ms=settings.version_memory_s * 1000)
    hold = Hold(client, keys, probe_base_ms=settings.probe_base_ms, probe_cap_ms=settings.probe_cap_ms)
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
