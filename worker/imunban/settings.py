"""Settings: one frozen object built from ``IMUNBAN_*`` environment variables.

The environment is read here and nowhere else; everything else receives a :class:`Settings`.
A bad value raises :class:`~imunban.errors.ConfigError` naming the variable. The secret key is
wrapped in :class:`Secret` so that it never shows up in ``repr``, logs or tracebacks.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imunban.errors import ConfigError
from imunban.redis_url import CLUSTER_SCHEME, SENTINEL_SCHEME, parse_cluster_url, parse_sentinel_url

#: Every variable imunban reads starts with this.
PREFIX = "IMUNBAN_"

#: Region name -> (primary domain, backup domain). The backup is used on DNS/connection failure only.
REGIONS: dict[str, tuple[str, str]] = {
    "china": ("console.tim.qq.com", "adminapi.my-imcloud.com"),
    "singapore": ("adminapisgp.im.qcloud.com", "adminapisgp.my-imcloud.com"),
    "seoul": ("adminapikr.im.qcloud.com", "adminapikr.my-imcloud.com"),
    "tokyo": ("adminapijpn.im.qcloud.com", "adminapijpn.my-imcloud.com"),
    "frankfurt": ("adminapiger.im.qcloud.com", "adminapiger.my-imcloud.com"),
    "india": ("adminapiind.im.qcloud.com", "adminapiind.my-imcloud.com"),
    "siliconvalley": ("adminapiusa.im.qcloud.com", "adminapiusa.my-imcloud.com"),
    "jakarta": ("adminapiidn.im.qcloud.com", "adminapiidn.my-imcloud.com"),
    "riyadh": ("adminapiksa.im.qcloud.com", "adminapiksa.my-imcloud.com"),
}

#: The API's documented limit for unban_group_member; it cannot be bought up.
API_LIMIT_PER_S = 200.0
#: The API's own server-side timeout: the client's read timeout must be longer.
SERVER_TIMEOUT_S = 3.0
#: Accepted values of IMUNBAN_LOG_FORMAT.
LOG_FORMATS = ("text", "json")
#: Accepted values of IMUNBAN_LOG_LEVEL (any case).
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
#: The longest a partial batch may wait for more members, unless told otherwise (IMUNBAN_LINGER_MS).
#: The wait itself adapts to the limiter (imunban.linger): none while calls are to spare.
DEFAULT_LINGER_MS = 1000
#: Unless told otherwise, a partial batch waits at most max(this, linger) after its oldest due member.
DEFAULT_MAX_LINGER_MS = 750
#: How long an ended request's instruction version is remembered, unless told otherwise (IMUNBAN_VERSION_MEMORY_S).
DEFAULT_VERSION_MEMORY_S = 86_400
#: Schemes IMUNBAN_REDIS_URL accepts.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", SENTINEL_SCHEME, CLUSTER_SCHEME)
#: Schemes IMUNBAN_BROKER_URL accepts (kombu has no Redis Cluster transport).
BROKER_SCHEMES = ("redis://", "rediss://", "unix://", SENTINEL_SCHEME)
#: Characters a key prefix may not hold: they would break the hash tag every key carries (keys.py).
HASH_TAG_CHARS = "{}"


def read_secret_file(path: Path, label: str, *, empty_ok: bool = False) -> str:
    """The stripped UTF-8 text of a secret file; a ConfigError that starts with ``label`` when it cannot be read.

    One reader for every secret given as a file: IMUNBAN_SECRET_KEY_FILE, an app's ``secret_key_file``,
    the console's token files. Nothing of the file's content ever goes into a message.
    """
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{label}: {str(path)!r} is not UTF-8 text") from None
    if not text and not empty_ok:
        raise ConfigError(f"{label}: {str(path)!r} is empty")
    return text


class Secret:
    """A string that refuses to show itself in ``repr``/``str``; call :meth:`reveal` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would be the easiest way to smuggle the key into a Celery message.
        raise TypeError("Secret values are not serialisable")


@dataclass(frozen=True)
class LingerPolicy:
    """The bound on how long a group below a full batch waits for more members.

    The wait adapts to the limiter (:func:`imunban.linger.linger_ms`, ``reindex`` in ``lua/_lib.lua``):
    none while the limiter has calls to spare, growing toward one oldest-first round as calls near
    the limit, and never more than ``linger_ms`` after the group's oldest due member (0: never wait).
    ``max_linger_ms`` is kept for old configurations and no longer changes the wait. Workers build
    it from :class:`Settings` (:attr:`Settings.linger`); producers built in code get the same default.
    """

    #: The longest wait after the oldest due member; 0 means no wait.
    linger_ms: int = DEFAULT_LINGER_MS
    #: The cap after the oldest due member; None means the default rule (see :attr:`cap_ms`).
    max_linger_ms: int | None = None

    @property
    def cap_ms(self) -> int:
        """``max_linger_ms`` but never below the linger; unset, max(DEFAULT_MAX_LINGER_MS, linger_ms)."""
        cap = DEFAULT_MAX_LINGER_MS if self.max_linger_ms is None else self.max_linger_ms
        return max(cap, self.linger_ms)

    @property
    def script_arg(self) -> str:
        """The pair as the Lua scripts take it: ``"linger_ms:cap_ms"``."""
        return f"{self.linger_ms}:{self.cap_ms}"


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
    durable_replicas: int = Durability().replicas
    durable_timeout_ms: int = Durability().timeout_ms
    #: Intake stops at this share of maxmemory; the rest is delivery's and the broker's (Durability).
    intake_memory_fraction: float = DEFAULT_INTAKE_MEMORY_FRACTION
    sdkappid: int | None = None
    identifier: str = "administrator"
    secret_key: Secret | None = field(default=None, repr=False)
    region: str | None = None
    base_url: str | None = None
    rate_limit_per_s: float = 190.0
    key_prefix: str = "imunban"
    linger_ms: int = DEFAULT_LINGER_MS
    max_linger_ms: int = LingerPolicy(DEFAULT_LINGER_MS).cap_ms
    lease_ms: int = 30_000
    max_attempts: int = 12
    max_age_s: int = 86_400
    backoff_base_ms: int = 1_000
    backoff_cap_ms: int = 300_000
    #: While held: the first probe after this, then doubling up to the cap (70050 keeps its 60 s floor).
    probe_base_ms: int = 1_000
    probe_cap_ms: int = 60_000
    concurrency: int = 8
    connect_timeout_s: float = 3.05
    read_timeout_s: float = 5.0
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    log_format: str = "text"
    log_level: str = "INFO"
    outcome_stream_maxlen: int = 100_000
    #: How long the version of an ended (or cancelled) request is remembered (SPEC §2, order between producers).
    version_memory_s: int = DEFAULT_VERSION_MEMORY_S
    data_dir: str | None = None
    #: imunban web: who may look (viewer) and who may also act (operator); neither set = loopback only.
    web_viewer_token: Secret | None = field(default=None, repr=False)
    web_operator_token: Secret | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every ``IMUNBAN_*`` variable; raise ConfigError naming the first bad one."""
        env = _Env(os.environ if environ is None else environ)
        d = cls()  # every default is written once, on its field above
        region = env.choice("REGION", sorted(REGIONS))
        log_format = env.choice("LOG_FORMAT", LOG_FORMATS) or d.log_format
        log_level = (env.choice("LOG_LEVEL", LOG_LEVELS) or d.log_level).upper()
        linger_ms = env.integer("LINGER_MS", d.linger_ms, minimum=0)
        max_linger_ms = env.integer("MAX_LINGER_MS", LingerPolicy(linger_ms).cap_ms, minimum=linger_ms)
        redis_url = env.url("REDIS_URL", REDIS_SCHEMES)
        if redis_url is not None and redis_url.startswith(SENTINEL_SCHEME):
            parse_sentinel_url(redis_url)  # a malformed URL stops the process here, naming the variable
        if redis_url is not None and redis_url.startswith(CLUSTER_SCHEME):
            parse_cluster_url(redis_url)
        broker_url = env.url("BROKER_URL", BROKER_SCHEMES)
        if broker_url is not None and broker_url.startswith(SENTINEL_SCHEME):
            parse_sentinel_url(broker_url, variable=PREFIX + "BROKER_URL")
        sentinel_password = env.text("SENTINEL_PASSWORD")
        key_prefix = env.ascii_name("KEY_PREFIX", d.key_prefix, max_bytes=64)
        if any(c in key_prefix for c in HASH_TAG_CHARS):
            raise ConfigError(f"{PREFIX}KEY_PREFIX must not contain {{ or }} (every key carries a {{hash tag}})")
        durable_replicas = env.integer("DURABLE_REPLICAS", d.durable_replicas, minimum=0)
        if durable_replicas and redis_url is not None and redis_url.startswith(CLUSTER_SCHEME):
            # WAIT counts one connection's writes; a cluster client spreads them over many nodes.
            raise ConfigError(f"{PREFIX}DURABLE_REPLICAS is not supported with a {CLUSTER_SCHEME} {PREFIX}REDIS_URL")
        return cls(
            redis_url=redis_url,
            broker_url=broker_url,
            apps_file=env.text("APPS_FILE"),
            sentinel_password=None if sentinel_password is None else Secret(sentinel_password),
            durable_replicas=durable_replicas,
            # WAIT with timeout 0 would block forever.
            durable_timeout_ms=env.integer("DURABLE_TIMEOUT_MS", d.durable_timeout_ms, minimum=1),
            intake_memory_fraction=env.number(
                "INTAKE_MEMORY_FRACTION", d.intake_memory_fraction, above=0.0, maximum=1.0
            ),
            sdkappid=env.optional_integer("SDKAPPID", minimum=1),
            identifier=env.ascii_name("IDENTIFIER", d.identifier, max_bytes=32),
            secret_key=env.secret(),
            region=region,
            base_url=env.url("BASE_URL", ("http://", "https://")),
            # The API's own limit is the ceiling: it cannot be bought up.
            rate_limit_per_s=env.number("RATE_LIMIT", d.rate_limit_per_s, maximum=API_LIMIT_PER_S),
            key_prefix=key_prefix,
            linger_ms=linger_ms,
            max_linger_ms=max_linger_ms,
            lease_ms=env.integer("LEASE_MS", d.lease_ms, minimum=1_000),
            max_attempts=env.integer("MAX_ATTEMPTS", d.max_attempts, minimum=1),
            max_age_s=env.integer("MAX_AGE_S", d.max_age_s, minimum=1),
            backoff_base_ms=env.integer("BACKOFF_BASE_MS", d.backoff_base_ms, minimum=1),
            backoff_cap_ms=env.integer("BACKOFF_CAP_MS", d.backoff_cap_ms, minimum=1),
            probe_base_ms=env.integer("PROBE_BASE_MS", d.probe_base_ms, minimum=1),
            probe_cap_ms=env.integer("PROBE_CAP_MS", d.probe_cap_ms, minimum=1),
            concurrency=env.integer("CONCURRENCY", d.concurrency, minimum=1),
            connect_timeout_s=env.number("CONNECT_TIMEOUT_S", d.connect_timeout_s),
            # The API gives up after 3 s itself; a client giving up first turns slow successes into retries.
            read_timeout_s=env.number("READ_TIMEOUT_S", d.read_timeout_s, above=SERVER_TIMEOUT_S),
            metrics_port=env.integer("METRICS_PORT", d.metrics_port, minimum=0, maximum=65_535),
            metrics_host=env.text("METRICS_HOST") or d.metrics_host,
            log_format=log_format,
            log_level=log_level,
            outcome_stream_maxlen=env.integer("OUTCOME_STREAM_MAXLEN", d.outcome_stream_maxlen, minimum=1),
            version_memory_s=env.integer("VERSION_MEMORY_S", d.version_memory_s, minimum=1),
            data_dir=env.text("DATA_DIR"),
            **env.web_tokens(),
        )

    @property
    def linger(self) -> LingerPolicy:
        """The linger pair for :class:`~imunban.store.Store`, :class:`~imunban.schedule.Scheduler`, producers."""
        return LingerPolicy(self.linger_ms, self.max_linger_ms)

    @property
    def durability(self) -> Durability:
        """What an intake needs before it reports success: replicas, room in Redis (see :class:`Durability`)."""
        return Durability(self.durable_replicas, self.durable_timeout_ms, self.intake_memory_fraction)

    def api_urls(self) -> tuple[str, ...]:
        """Base URLs to try in order: the override alone, or the region's primary then backup."""
        if self.base_url is not None:
            return (self.base_url,)
        if self.region is None:
            raise ConfigError(f"set {PREFIX}REGION (one of {', '.join(sorted(REGIONS))}) or {PREFIX}BASE_URL")
        primary, backup = REGIONS[self.region]
        return (f"https://{primary}", f"https://{backup}")

    def require_credentials(self) -> tuple[int, str, Secret]:
        """Return (sdkappid, identifier, secret) or raise ConfigError naming what is missing."""
        if self.sdkappid is None:
            raise ConfigError(f"{PREFIX}SDKAPPID is required (the app's SDKAppID, a positive integer)")
        if self.secret_key is None:
            raise ConfigError(f"{PREFIX}SECRET_KEY or {PREFIX}SECRET_KEY_FILE is required")
        return self.sdkappid, self.identifier, self.secret_key


class _Env:
    """Typed accessors over a mapping; every error names the full variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str) -> str | None:
        raw = self._environ.get(PREFIX + name)
        if raw is None or raw.strip() == "":
            return None
        return raw.strip()

    def choice(self, name: str, choices: Sequence[str]) -> str | None:
        """One of ``choices`` (case-insensitive, returned lower-case), or None when unset."""
        raw = self.text(name)
        if raw is None:
            return None
        if raw.lower() not in [c.lower() for c in choices]:
            raise ConfigError(f"{PREFIX}{name}={raw!r} is not one of {', '.join(choices)}")
        return raw.lower()

    def url(self, name: str, schemes: tuple[str, ...]) -> str | None:
        raw = self.text(name)
        if raw is None:
            return None
        if not raw.startswith(schemes):
            raise ConfigError(f"{PREFIX}{name} must start with {' or '.join(schemes)}")
        return raw.rstrip("/") if raw.startswith(("http://", "https://")) else raw

    def ascii_name(self, name: str, default: str, *, max_bytes: int) -> str:
        raw = self.text(name) or default
        if len(raw.encode()) > max_bytes or not raw.isascii() or not raw.isprintable() or " " in raw:
            raise ConfigError(f"{PREFIX}{name} must be printable ASCII without spaces, at most {max_bytes} bytes")
        return raw

    def integer(self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        """An integer in [minimum, maximum], ``default`` when unset."""
        value = self.optional_integer(name, minimum=minimum, maximum=maximum)
        return default if value is None else value

    def optional_integer(self, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
        """An integer in [minimum, maximum], None when unset."""
        raw = self.text(name)
        if raw is None:
            return None
        try:
            value = int(raw, 10)
        except ValueError:
            raise ConfigError(f"{PREFIX}{name} must be an integer, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise ConfigError(f"{PREFIX}{name} must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{PREFIX}{name} must be <= {maximum}, got {value}")
        return value

    def number(self, name: str, default: float, *, above: float = 0.0, maximum: float = math.inf) -> float:
        """A finite number in (above, maximum]."""
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{PREFIX}{name} must be a number, got {raw!r}") from None
        if not (math.isfinite(value) and above < value <= maximum):
            limit = "" if maximum == math.inf else f" and <= {maximum:g}"
            raise ConfigError(f"{PREFIX}{name} must be a finite number > {above:g}{limit}, got {raw!r}")
        return value

    def secret(self) -> Secret | None:
        inline = self.text("SECRET_KEY")
        path = self.text("SECRET_KEY_FILE")
        if inline is not None and path is not None:
            raise ConfigError(f"set only one of {PREFIX}SECRET_KEY and {PREFIX}SECRET_KEY_FILE")
        if path is not None:
            return Secret(read_secret_file(Path(path), f"{PREFIX}SECRET_KEY_FILE"))
        return None if inline is None else Secret(inline)

    def token(self, name: str) -> Secret | None:
        """A token given inline (NAME) or in a file (NAME_FILE, e.g. a compose secret), at least 16 characters."""
        inline, path = self.text(name), self.text(name + "_FILE")
        if inline is not None and path is not None:
            raise ConfigError(f"set only one of {PREFIX}{name} and {PREFIX}{name}_FILE")
        if path is not None:
            inline = read_secret_file(Path(path), f"{PREFIX}{name}_FILE", empty_ok=True)  # the length check says why
            name += "_FILE"
        if inline is not None and (len(inline) < 16 or not inline.isascii() or not inline.isprintable()):
            raise ConfigError(f"{PREFIX}{name}: the token must be at least 16 printable ASCII characters")
        return None if inline is None else Secret(inline)

    def web_tokens(self) -> dict[str, Secret | None]:
        viewer, operator = self.token("WEB_VIEWER_TOKEN"), self.token("WEB_OPERATOR_TOKEN")
        if viewer is not None and viewer == operator:
            # One token for both roles would let every viewer act.
            raise ConfigError(f"{PREFIX}WEB_VIEWER_TOKEN and {PREFIX}WEB_OPERATOR_TOKEN must differ")
        return {"web_viewer_token": viewer, "web_operator_token": operator}
