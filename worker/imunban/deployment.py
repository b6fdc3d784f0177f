"""The composition: one :class:`Deployment` with one :class:`AppEngine` per app, built once.

Every entry point (the worker, the Celery tasks, the producer API, the console, each CLI command)
opens the deployment once with :func:`open_deployment` and reaches an app only through
:meth:`Deployment.app`, the one place an app name is resolved. Nothing else in the package builds a
:class:`~imunban.store.Store`, :class:`~imunban.hold.Hold`, a limiter, an API client or a pump.

An app's engine has two halves. What any process needs (keys, store, scheduler, hold, pause, dead letters)
is built with the deployment. What only delivery needs (limiter, API client with its UserSig cache,
deliverer, pump) is built on first use, because it needs the app's credentials: a console or
``imunban status`` never reads a secret key file.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import redis

from imunban.api import ApiClient
from imunban.apps import AppConfig, Apps
from imunban.connection import connect, translated
from imunban.deadletter import DeadLetters
from imunban.delivery import Deliverer, UnbanApi
from imunban.errors import ConfigError
from imunban.hold import Hold
from imunban.keys import Keys
from imunban.limiter import RedisRateLimiter
from imunban.livelimit import LiveLimit, LiveRate
from imunban.observe import Observer
from imunban.pause import Pause
from imunban.pump import Pump, PumpConfig, Submit
from imunban.retry import RetryPolicy
from imunban.schedule import Scheduler
from imunban.settings import Settings
from imunban.store import EnqueueResult, Store
from imunban.validation import UnbanRequest

#: Makes one app's API client (tests and tools put a fake or a simulator's client here).
ApiFactory = Callable[[AppConfig], UnbanApi]


@dataclass
class _Delivery:
    """The half of an app's engine that signs calls: built on first use, once."""

    limiter: RedisRateLimiter
    api: UnbanApi
    deliverer: Deliverer


class AppEngine:
    """One app: its config and every engine object keyed by it."""

    def __init__(self, deployment: Deployment, config: AppConfig) -> None:
        settings, client = deployment.settings, deployment.client
        self._deployment = deployment
        self.config = config
        self.name = config.name
        self.keys: Keys = config.keys(settings.key_prefix)
        self.store = Store(
            client,
            self.keys,
            linger=settings.linger,
            lease_ms=settings.lease_ms,
            outcome_maxlen=settings.outcome_stream_maxlen,
            # The Celery intake tasks enqueue through this store: a DurabilityError leaves their message unacknowledged.
            durability=settings.durability,
            trace_ttl_ms=settings.trace_ttl_s * 1000,
        )
        self.scheduler = Scheduler(
            client, self.keys, linger=settings.linger, version_memory_ms=settings.version_memory_s * 1000
        )
        self.hold = Hold(client, self.keys, probe_base_ms=settings.probe_base_ms, probe_cap_ms=settings.probe_cap_ms)
        self.dead = DeadLetters(client, self.keys, durability=settings.durability)
        #: An operator's pause (imunban pause/resume, the console): a hold no probe lifts.
        self.pause = Pause(client, self.keys, outcome_maxlen=settings.outcome_stream_maxlen)
        #: An operator's live rate limit (imunban limit, the console); the limiter paces by it.
        self.limit = LiveLimit(
            client, self.keys, config.rate_limit_per_s, outcome_maxlen=settings.outcome_stream_maxlen
        )
        self._lock = threading.Lock()
        self._delivery: _Delivery | None = None
        self._pump: Pump | None = None

    def __repr__(self) -> str:
        return f"AppEngine({self.name!r}, sdkappid={self.config.sdkappid})"

    @property
    def sdkappid(self) -> int | None:
        return self.config.sdkappid

    @property
    def rate_limit_per_s(self) -> float:
        return self.config.rate_limit_per_s

    @property
    def limiter_key(self) -> str | None:
        """The app's GCRA key when its SDKAppID is known (no credentials needed to read it)."""
        return None if self.config.sdkappid is None else self.keys.limiter(self.config.sdkappid)

    # -- delivery: built on first use (it reads the app's secret key) ------------------------------

    @property
    def built_delivery(self) -> bool:
        """Whether the delivery half exists yet (a worker builds it at start: imunban.runtime.prepare_worker)."""
        return self._delivery is not None

    @property
    def deliverer(self) -> Deliverer:
        return self._delivering().deliverer

    @property
    def limiter(self) -> RedisRateLimiter:
        return self._delivering().limiter

    @property
    def api(self) -> UnbanApi:
        return self._delivering().api

    def _delivering(self) -> _Delivery:
        if self._delivery is None:
            with self._lock:
                if self._delivery is None:
                    self._delivery = self._build_delivery()
        return self._delivery

    def _build_delivery(self) -> _Delivery:
        d = self._deployment
        credentials = self.config.credentials()  # a ConfigError names the app, the file and the field
        live_rate = LiveRate(self.limit.get, self.config.rate_limit_per_s)
        limiter = RedisRateLimiter(
            d.client, self.keys, credentials.sdkappid, self.config.rate_limit_per_s, live_rate=live_rate
        )
        api = d.api_factory(self.config) if d.api_factory is not None else d.api_client(self.config)
        deliverer = Deliverer(
            self.store,
            limiter,
            api,
            self.hold,
            policy=RetryPolicy.from_settings(d.settings),
            observer=d.observer.bind(self.name),
        )
        return _Delivery(limiter, api, deliverer)

    @property
    def pump(self) -> Pump:
        """This app's pump; the deployment must have been opened with a ``submit`` (workers only)."""
        if self._pump is None:
            with self._lock:
                if self._pump is None:
                    self._pump = self._build_pump()
        return self._pump

    def _build_pump(self) -> Pump:
        d = self._deployment
        if d.submit is None:
            raise ConfigError("this process runs no delivery: open the deployment with submit= to get a pump")
        settings = d.settings
        # Each app's tasks in the broker are bounded by its share of the limits: a backlog of one app never
        # fills the workers' queue in front of another app's due work (the apps' queues are served in turn).
        total = sum(app.rate_limit_per_s for app in d)
        markers = max(16, 4 * settings.concurrency)
        share = self.config.rate_limit_per_s / total
        config = PumpConfig(slots_per_group=settings.concurrency, max_markers=max(4, math.ceil(markers * share)))
        return Pump(d.client, self.keys, self.store, self.scheduler, self.hold, d.submit, config)


class Deployment:
    """Settings, the Redis client, the broker URL and one :class:`AppEngine` per app."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        apps: Apps,
        *,
        observer: Observer | None = None,
        submit: Submit | None = None,
        api_factory: ApiFactory | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.catalog = apps
        #: Delivery events (metrics in a worker); each app's engine reports through ``observer.bind(app)``.
        self.observer = observer or Observer()
        #: How a pump hands a delivery run to whatever executes it (a Celery task); None: no delivery here.
        self.submit = submit
        self.api_factory = api_factory
        self.apps: dict[str, AppEngine] = {config.name: AppEngine(self, config) for config in apps}

    def __repr__(self) -> str:
        return f"Deployment(apps={list(self.apps)}, key_prefix={self.settings.key_prefix!r})"

    def __iter__(self) -> Iterator[AppEngine]:
        return iter(self.apps.values())

    def __len__(self) -> int:
        return len(self.apps)

    @property
    def names(self) -> list[str]:
        return list(self.apps)

    @property
    def broker_url(self) -> str | None:
        """The Celery broker: ``IMUNBAN_BROKER_URL``, else the state Redis."""
        return self.settings.broker_url or self.settings.redis_url

    def app(self, name: object = None) -> AppEngine:
        """The app a request or command names (None: the only one); ValidationError(``app``) otherwise."""
        return self.apps[self.catalog.resolve(name).name]

    def api_client(self, config: AppConfig) -> ApiClient:
        """The HTTP client of one app, with the deployment's timeouts and a pool sized to its threads."""
        s = self.settings
        return ApiClient(
            config,
            connect_timeout_s=s.connect_timeout_s,
            read_timeout_s=s.read_timeout_s,
            pool_size=max(10, s.concurrency * 2),
        )

    def count_rejected(self, task: str) -> None:
        """Count one rejected Celery message: a deployment counter, as its app may be unknown or wrong."""
        with translated("count a rejection"):
            self.client.hincrby(Keys(self.settings.key_prefix).deployment_stats, "rejected_messages", 1)
        self.observer.rejected(task)

    def require_delivery(self) -> None:
        """Fail now, naming the app, the file and the field, if any app cannot sign calls (worker start)."""
        self.catalog.require_delivery()

    def enqueue(self, requests: Sequence[UnbanRequest]) -> EnqueueResult:
        """Store ``requests``, each in its app's store; every app is resolved before anything is stored."""
        by_app: dict[str, list[UnbanRequest]] = {}
        resolved: dict[str | None, list[UnbanRequest]] = {}  # each distinct ``app`` value resolved once
        for request in requests:
            of_app = resolved.get(request.app)
            if of_app is None:
                of_app = resolved[request.app] = by_app.setdefault(self.app(request.app).name, [])
            of_app.append(request)
        total = EnqueueResult()
        for name, of_app in by_app.items():
            total += self.apps[name].store.enqueue(of_app)
        return total

    def cancel(self, group_id: str, members: Sequence[str], *, version: int | None = None, app: object = None) -> int:
        """End requests of ``app``: pending ones are removed, in-flight ones are not sent."""
        return self.app(app).store.cancel(group_id, list(members), version=version)


def open_deployment(
    settings: Settings,
    *,
    client: redis.Redis | None = None,
    apps: Apps | None = None,
    observer: Observer | None = None,
    submit: Submit | None = None,
    api_factory: ApiFactory | None = None,
) -> Deployment:
    """Build the deployment of ``settings``: its apps (the apps file, or app ``default``) on one client.

    ``client`` defaults to a connection to ``settings.redis_url`` (an unset URL is resolved to the
    embedded server by the entry points, never here); ``submit`` makes the apps' pumps (workers);
    ``api_factory`` replaces every app's API client (tests, tools).
    """
    catalog = apps if apps is not None else settings.apps()
    return Deployment(
        settings,
        client if client is not None else connect(settings),
        catalog,
        observer=observer,
        submit=submit,
        api_factory=api_factory,
    )
