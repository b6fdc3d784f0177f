"""Assemble the engine for one worker process from :class:`~imunban.settings.Settings`."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from imunban.api import ApiClient
from imunban.apps import AppConfig, Apps, load_apps
from imunban.connection import connect
from imunban.delivery import Deliverer, UnbanApi
from imunban.errors import ConfigError
from imunban.ha import check_memory_policy
from imunban.hold import Hold
from imunban.keys import DEFAULT_APP, Keys
from imunban.limiter import RedisRateLimiter
from imunban.migrate import has_legacy_keys, migrate_single_app_layout
from imunban.observe import Observer
from imunban.pump import Pump, PumpConfig, Submit
from imunban.retry import RetryPolicy
from imunban.schedule import Scheduler
from imunban.settings import Settings
from imunban.store import Store

#: submit_app(app, group_id, slot, probe): hand one delivery run of one app to whatever executes it.
AppSubmit = Callable[[str, str, int, bool], None]


@dataclass
class AppRuntime:
    """One app's engine: its keys, store, hold, limiter and API client (in the deliverer), and pump."""

    config: AppConfig
    settings: Settings
    keys: Keys
    store: Store
    scheduler: Scheduler
    hold: Hold
    deliverer: Deliverer
    pump: Pump

    @property
    def name(self) -> str:
        return self.config.name


@dataclass
class Runtime:
    """Everything a worker process needs, built once and shared by its threads.

    ``apps`` holds one :class:`AppRuntime` per app; the single-app fields (``store``, ``pump`` ...)
    are the first app's, so code that knows one app keeps working.
    """

    settings: Settings
    client: redis.Redis
    keys: Keys
    store: Store
    scheduler: Scheduler
    hold: Hold
    deliverer: Deliverer
    pump: Pump
    observer: Observer
    apps: dict[str, AppRuntime] = field(default_factory=dict)
    catalog: Apps | None = None

    def app(self, name: object = None) -> AppRuntime:
        """The app a request names (None: the only one); ValidationError(``app``) if unknown or missing."""
        assert self.catalog is not None
        return self.apps[self.catalog.resolve(name).name]


def build_runtime(
    settings: Settings,
    submit: Submit,
    *,
    client: redis.Redis | None = None,
    api: UnbanApi | None = None,
    observer: Observer | None = None,
    apps: Apps | None = None,
    submit_app: AppSubmit | None = None,
) -> Runtime:
    """Wire store, limiter, API client, hold, deliverer and pump of every app; ``submit`` runs delivery tasks.

    With several apps, ``submit_app`` (which also says the app) is required: ``submit`` cannot tell
    the apps' runs apart. ``api`` replaces every app's API client (tests).
    """
    catalog = apps or load_apps(settings)
    if len(catalog) > 1 and submit_app is None:
        raise ValueError("several apps need submit_app: a delivery run must say its app")
    for config in catalog:
        # Fail now, naming the app's missing field, not at its first call.
        config.settings(settings).require_credentials()
    client = client or connect(settings)
    # An evicting Redis could drop queued unbans without a trace: refuse it before any work starts.
    check_memory_policy(client)
    _migrate(client, settings.key_prefix, catalog)
    observer = observer or Observer()
    weights = {config.name: config.rate_limit_per_s for config in catalog}
    built: dict[str, AppRuntime] = {}
    for config in catalog:
        app_submit = submit if submit_app is None else functools.partial(submit_app, config.name)
        share = weights[config.name] / sum(weights.values())
        built[config.name] = _build_app(config, settings, client, app_submit, api, observer, share)
    first = next(iter(built.values()))
    return Runtime(
        settings, client, first.keys, first.store, first.scheduler, first.hold, first.deliverer, first.pump,
        observer, built, catalog,
    )  # fmt: skip


def _migrate(client: redis.Redis, prefix: str, catalog: Apps) -> None:
    """Move a store written before several apps under app ``default``, once (idempotent, logged)."""
    if DEFAULT_APP in catalog.by_name:
        migrate_single_app_layout(client, prefix, DEFAULT_APP)
    elif has_legacy_keys(client, prefix):
        raise ConfigError(
            "Redis holds requests written before several apps, and no app is named 'default' to move them to: "
            "run `imunban migrate --app NAME` with the app they are for, then start the workers"
        )


def _build_app(
    config: AppConfig,
    base: Settings,
    client: redis.Redis,
    submit: Submit,
    api: UnbanApi | None,
    observer: Observer,
    share: float,
) -> AppRuntime:
    settings = config.settings(base)
    sdkappid, _, _ = settings.require_credentials()
    keys = config.keys(settings.key_prefix)
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
    policy = RetryPolicy.from_settings(settings)
    deliverer = Deliverer(
        store, limiter, api or ApiClient(settings), hold, policy=policy, observer=observer.bind(config.name)
    )
    # Each app's tasks in the broker are bounded by its share of the limits: a backlog of one app never
    # fills the workers' queue in front of another app's due work (the apps' queues are served in turn).
    markers = max(16, 4 * settings.concurrency)
    pump = Pump(
        client, keys, store, scheduler, hold, submit,
        PumpConfig(slots_per_group=settings.concurrency, max_markers=max(4, math.ceil(markers * share))),
    )  # fmt: skip
    return AppRuntime(config, settings, keys, store, scheduler, hold, deliverer, pump)
