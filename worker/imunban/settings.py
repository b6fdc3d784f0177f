"""Settings: one frozen object built from ``IMUNBAN_*`` environment variables.

The environment is read here and nowhere else; everything else receives a :class:`Settings`.
Bad values raise one :class:`~imunban.errors.ConfigError` naming every bad variable. :class:`Settings`
holds what is deployment-wide (Redis, broker, durability, linger, retries, metrics, web tokens);
what differs between apps lives in :class:`~imunban.apps.AppConfig`: the apps file's tables, or
:attr:`Settings.single_app`, app ``default`` as the single-app variables define it. Secrets are
wrapped in :class:`~imunban.secret.Secret` so that they never show up in ``repr``, logs or
tracebacks, and a secret key file is read only when an API call is signed.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from imunban.apps import (
    API_LIMIT_PER_S,
    PREFIX,
    REGIONS,
    AppConfig,
    Apps,
    parse_apps_file,
)
from imunban.envnames import unknown_variables, warn_unknown
from imunban.envreader import EnvReader, check_root_path
from imunban.keys import DEFAULT_APP
from imunban.redis_url import (
    CLUSTER_SCHEME,
    SENTINEL_SCHEME,
    check_plain_url,
    parse_cluster_url,
    parse_sentinel_url,
)
from imunban.secret import Secret, read_secret_file

__all__ = [
    "API_LIMIT_PER_S", "PREFIX", "REGIONS", "Durability", "LingerPolicy", "Secret", "Settings", "check_root_path",
]  # fmt: skip

#: The API's own server-side timeout: the client's read timeout must be longer.
SERVER_TIMEOUT_S = 3.0
#: Connect and read timeouts of an API call unless told otherwise (the read timeout must be longer than the API's).
CONNECT_TIMEOUT_S = 3.05
READ_TIMEOUT_S = 5.0
#: Accepted values of IMUNBAN_LOG_FORMAT.
LOG_FORMATS = ("text", "json")
#: Accepted values of IMUNBAN_LOG_LEVEL (any case).
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
#: The longest a partial batch may wait for more members, unless told otherwise (IMUNBAN_LINGER_MS).
#: The wait itself adapts to the limiter (imunban.linger): none while calls are to spare.
DEFAULT_LINGER_MS = 1000
#: How long an ended request's instruction version is remembered, unless told otherwise (IMUNBAN_VERSION_MEMORY_S).
DEFAULT_VERSION_MEMORY_S = 86_400
#: How long a request's trace record (its last outcome) is kept, unless told otherwise (IMUNBAN_TRACE_TTL_S): 7 days.
DEFAULT_TRACE_TTL_S = 7 * 86_400
#: Schemes IMUNBAN_REDIS_URL accepts.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", SENTINEL_SCHEME, CLUSTER_SCHEME)
#: Schemes IMUNBAN_BROKER_URL accepts (kombu has no Redis Cluster transport).
BROKER_SCHEMES = ("redis://", "rediss://", "unix://", SENTINEL_SCHEME)
#: Characters a key prefix may not hold: they would break the hash tag every key carries (keys.py).
HASH_TAG_CHARS = "{}"


@dataclass(frozen=True)
class LingerPolicy:
    """The bound on how long a group below a full batch waits for more members.

    The wait adapts to the limiter (:func:`imunban.linger.linger_ms`, ``reindex`` in ``lua/_lib.lua``):
    none while the limiter has calls to spare, growing toward one oldest-first round as calls near
    the limit, and never more than ``linger_ms`` after the group's oldest due member (0: never wait).
    Workers build it from :class:`Settings` (:attr:`Settings.linger`); producers built in code get
    the same default.
    """

    #: The longest wait after the oldest due member; 0 means no wait.
    linger_ms: int = DEFAULT_LINGER_MS

    @property
    def script_arg(self) -> str:
        """The bound as the Lua scripts take it (ARGV "linger_ms")."""
        return str(self.linger_ms)


#: Intake stops at this share of Redis's maxmemory unless told otherwise (IMUNBAN_INTAKE_MEMORY_FRACTION).
DEFAULT_INTAKE_MEMORY_FRACTION = 0.9


@dataclass(frozen=True)
class Durability:
    """What an intake needs before it reports success.

    ``WAIT replicas timeout_ms`` confirmed it (0 = at once), and room in Redis: an enqueue is refused
    once ``intake_memory_fraction`` of ``maxmemory`` is used, so what delivery and the Celery broker
    write always has room (1.0: only Redis's own limit refuses; see imunban.memory).
    """

    replicas: int = 0
    timeout_ms: int = 1_000
    intake_memory_fraction: float = DEFAULT_INTAKE_MEMORY_FRACTION


@dataclass(frozen=True)
class Settings:
    """Every knob imunban has. Build with :meth:`from_env`; see docs/configuration.md."""

    redis_url: str | None = None
    #: The Celery broker when it is not the state Redis (required with a ``redis+cluster://`` state URL).
    broker_url: str | None = None
    #: A TOML file with one table per app (imunban.apps); None: the single-app variables define app ``default``.
    apps_file: str | None = None
    sentinel_password: Secret | None = field(default=None, repr=False)
    #: Files holding the Redis password (for URLs without one) and the sentinels' password, read when connecting.
    redis_password_file: Path | None = None
    sentinel_password_file: Path | None = None
    durable_replicas: int = Durability().replicas
    durable_timeout_ms: int = Durability().timeout_ms
    #: App ``default`` as the single-app variables define it; the deployment's one app without an apps file.
    single_app: AppConfig = field(default_factory=functools.partial(AppConfig, DEFAULT_APP))
    #: Intake stops at this share of maxmemory; the rest is delivery's and the broker's (Durability).
    intake_memory_fraction: float = DEFAULT_INTAKE_MEMORY_FRACTION
    key_prefix: str = "imunban"
    linger_ms: int = DEFAULT_LINGER_MS
    lease_ms: int = 30_000
    max_attempts: int = 12
    max_age_s: int = 86_400
    backoff_base_ms: int = 1_000
    backoff_cap_ms: int = 300_000
    #: While held: the first probe after this, then doubling up to the cap (70050 keeps its 60 s floor).
    probe_base_ms: int = 1_000
    probe_cap_ms: int = 60_000
    #: With due work this old and live workers, no claim for this long is ``stalled`` (imunban.state).
    stall_after_s: int = 30
    concurrency: int = 8
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    read_timeout_s: float = READ_TIMEOUT_S
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    log_format: str = "text"
    log_level: str = "INFO"
    #: Seconds between a worker's INFO summary lines (delivered, calls, retries, dead); 0: none.
    log_summary_s: int = 60
    outcome_stream_maxlen: int = 100_000
    #: How long the version of an ended (or cancelled) request is remembered (docs/semantics.md, "Requests").
    version_memory_s: int = DEFAULT_VERSION_MEMORY_S
    #: How long a request's trace record (its last outcome, imunban.trace) is kept after it was written.
    trace_ttl_s: int = DEFAULT_TRACE_TTL_S
    data_dir: str | None = None
    #: imunban web: who may look (viewer) and who may also act (operator); neither set = loopback only.
    web_viewer_token: Secret | None = field(default=None, repr=False)
    web_operator_token: Secret | None = field(default=None, repr=False)
    #: imunban web: the path prefix a reverse proxy serves it under ("" = at the root; see check_root_path).
    web_root_path: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, for_delivery: bool = False) -> Settings:
        """Read every ``IMUNBAN_*`` variable; raise one ConfigError naming every bad one.

        ``for_delivery`` (a worker): what every app needs to sign and send calls is missing is named too.
        """
        env = EnvReader(os.environ if environ is None else environ)
        d = cls()  # every default is written once, on its field above
        log_format = env.choice("LOG_FORMAT", LOG_FORMATS) or d.log_format
        log_level = (env.choice("LOG_LEVEL", LOG_LEVELS) or d.log_level).upper()
        linger_ms = env.integer("LINGER_MS", d.linger_ms, minimum=0)
        redis_url = env.url("REDIS_URL", REDIS_SCHEMES)
        with env.collecting():  # a malformed URL is named with the other bad variables
            if redis_url is not None and redis_url.startswith(SENTINEL_SCHEME):
                parse_sentinel_url(redis_url)
            if redis_url is not None and redis_url.startswith(CLUSTER_SCHEME):
                parse_cluster_url(redis_url)
            elif redis_url is not None and not redis_url.startswith(SENTINEL_SCHEME):
                check_plain_url(redis_url)
        broker_url = env.url("BROKER_URL", BROKER_SCHEMES)
        with env.collecting():
            if broker_url is not None and broker_url.startswith(SENTINEL_SCHEME):
                parse_sentinel_url(broker_url, variable=PREFIX + "BROKER_URL")
            elif broker_url is not None:
                check_plain_url(broker_url, variable=PREFIX + "BROKER_URL")
        sentinel_password = env.text("SENTINEL_PASSWORD")
        redis_password_file, sentinel_password_file = env.password_files(redis_url, broker_url, sentinel_password)
        key_prefix = env.ascii_name("KEY_PREFIX", d.key_prefix, max_bytes=64)
        if any(c in key_prefix for c in HASH_TAG_CHARS):
            env.fail(f"{PREFIX}KEY_PREFIX must not contain {{ or }} (every key carries a {{hash tag}})")
        # On a Redis Cluster, WAIT runs on the node that took the writes (imunban.cluster_scripts).
        durable_replicas = env.integer("DURABLE_REPLICAS", d.durable_replicas, minimum=0)
        settings = cls(
            redis_url=redis_url,
            broker_url=broker_url,
            apps_file=env.text("APPS_FILE"),
            sentinel_password=None if sentinel_password is None else Secret(sentinel_password),
            redis_password_file=redis_password_file,
            sentinel_password_file=sentinel_password_file,
            durable_replicas=durable_replicas,
            # WAIT with timeout 0 would block forever.
            durable_timeout_ms=env.integer("DURABLE_TIMEOUT_MS", d.durable_timeout_ms, minimum=1),
            single_app=env.single_app(),
            intake_memory_fraction=env.number(
                "INTAKE_MEMORY_FRACTION", d.intake_memory_fraction, above=0.0, maximum=1.0
            ),
            key_prefix=key_prefix,
            linger_ms=linger_ms,
            lease_ms=env.integer("LEASE_MS", d.lease_ms, minimum=1_000),
            max_attempts=env.integer("MAX_ATTEMPTS", d.max_attempts, minimum=1),
            max_age_s=env.integer("MAX_AGE_S", d.max_age_s, minimum=1),
            backoff_base_ms=env.integer("BACKOFF_BASE_MS", d.backoff_base_ms, minimum=1),
            backoff_cap_ms=env.integer("BACKOFF_CAP_MS", d.backoff_cap_ms, minimum=1),
            probe_base_ms=env.integer("PROBE_BASE_MS", d.probe_base_ms, minimum=1),
            probe_cap_ms=env.integer("PROBE_CAP_MS", d.probe_cap_ms, minimum=1),
            stall_after_s=env.integer("STALL_AFTER_S", d.stall_after_s, minimum=1),
            concurrency=env.integer("CONCURRENCY", d.concurrency, minimum=1),
            connect_timeout_s=env.number("CONNECT_TIMEOUT_S", d.connect_timeout_s),
            # The API gives up after 3 s itself; a client giving up first turns slow successes into retries.
            read_timeout_s=env.number("READ_TIMEOUT_S", d.read_timeout_s, above=SERVER_TIMEOUT_S),
            metrics_port=env.integer("METRICS_PORT", d.metrics_port, minimum=0, maximum=65_535),
            metrics_host=env.text("METRICS_HOST") or d.metrics_host,
            log_format=log_format,
            log_level=log_level,
            log_summary_s=env.integer("LOG_SUMMARY_S", d.log_summary_s, minimum=0),
            outcome_stream_maxlen=env.integer("OUTCOME_STREAM_MAXLEN", d.outcome_stream_maxlen, minimum=1),
            version_memory_s=env.integer("VERSION_MEMORY_S", d.version_memory_s, minimum=1),
            # At most 10 years: the record's expiry in ms stays far inside Redis's integer range.
            trace_ttl_s=env.integer("TRACE_TTL_S", d.trace_ttl_s, minimum=1, maximum=10 * 365 * 86_400),
            data_dir=env.text("DATA_DIR"),
            **env.web_tokens(),
            web_root_path=env.root_path("WEB_ROOT_PATH"),
        )
        if for_delivery:
            with env.collecting():  # an unreadable apps file
                env.errors += settings.apps().delivery_problems()
        # Before any error: a misspelt name is often why a variable is "missing".
        warn_unknown(unknown_variables(env.environ, env.read))
        env.raise_errors()
        return settings

    @property
    def linger(self) -> LingerPolicy:
        """The linger pair for :class:`~imunban.store.Store`, :class:`~imunban.schedule.Scheduler`, producers."""
        return LingerPolicy(self.linger_ms)

    @property
    def durability(self) -> Durability:
        """What an intake needs before it reports success: replicas, room in Redis (see :class:`Durability`)."""
        return Durability(self.durable_replicas, self.durable_timeout_ms, self.intake_memory_fraction)

    def redis_password(self) -> Secret | None:
        """The password of ``IMUNBAN_REDIS_PASSWORD_FILE``, read now (when a client connects), else None."""
        if self.redis_password_file is None:
            return None
        return Secret(read_secret_file(self.redis_password_file, f"{PREFIX}REDIS_PASSWORD_FILE"))

    def sentinel_auth(self) -> Secret | None:
        """The sentinels' password: ``IMUNBAN_SENTINEL_PASSWORD``, else its file's (read now), else None."""
        if self.sentinel_password_file is None:
            return self.sentinel_password
        return Secret(read_secret_file(self.sentinel_password_file, f"{PREFIX}SENTINEL_PASSWORD_FILE"))

    def apps(self) -> Apps:
        """The apps this deployment serves: the apps file's (read now), else :attr:`single_app` alone."""
        if self.apps_file is None:
            return Apps([self.single_app])
        return parse_apps_file(Path(self.apps_file))
