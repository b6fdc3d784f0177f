"""Settings: one frozen object built from ``IMUNBAN_*`` environment variables.

The environment is read here and nowhere else; everything else receives a :class:`Settings`.
A bad value raises :class:`~worker.errors.ConfigError` naming the variable. The secret key is
wrapped in :class:`Secret` so that it never shows up in ``repr``, logs or tracebacks.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from worker.errors import ConfigError

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
class Settings:
    """Every knob imunban has. Build with :meth:`from_env`; see docs/configuration.md."""

    redis_url: str | None = None
    sdkappid: int | None = None
    identifier: str = "administrator"
    secret_key: Secret | None = field(default=None, repr=False)
    region: str | None = None
    base_url: str | None = None
    rate_limit_per_s: float = 190.0
    key_prefix: str = "imunban"
    linger_ms: int = 150
    max_linger_ms: int = 750
    lease_ms: int = 30_000
    max_attempts: int = 12
    max_age_s: int = 86_400
    backoff_base_ms: int = 1_000
    backoff_cap_ms: int = 300_000
    concurrency: int = 8
    connect_timeout_s: float = 3.05
    read_timeout_s: float = 5.0
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    log_format: str = "text"
    log_level: str = "INFO"
    outcome_stream_maxlen: int = 100_000
    data_dir: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every ``IMUNBAN_*`` variable; raise ConfigError naming the first bad one."""
        env = _Env(os.environ if environ is None else environ)
        region = env.text("REGION")
        if region is not None:
            region = region.lower()
            if region not in REGIONS:
                raise ConfigError(f"{PREFIX}REGION={region!r} is not one of {', '.join(sorted(REGIONS))}")
        base_url = env.text("BASE_URL")
        if base_url is not None:
            if not base_url.startswith(("http://", "https://")):
                raise ConfigError(f"{PREFIX}BASE_URL must start with http:// or https://, got {base_url!r}")
            base_url = base_url.rstrip("/")
        rate = env.number("RATE_LIMIT", 190.0)
        if not 0 < rate <= API_LIMIT_PER_S:
            raise ConfigError(
                f"{PREFIX}RATE_LIMIT must be in (0, {API_LIMIT_PER_S:g}] calls/s (the API's own limit), got {rate:g}"
            )
        log_format = (env.text("LOG_FORMAT") or "text").lower()
        if log_format not in ("text", "json"):
            raise ConfigError(f"{PREFIX}LOG_FORMAT must be 'text' or 'json', got {log_format!r}")
        redis_url = env.text("REDIS_URL")
        if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"{PREFIX}REDIS_URL must be a redis://, rediss:// or unix:// URL")
        identifier = env.text("IDENTIFIER") or "administrator"
        if len(identifier.encode()) > 32 or not identifier.isprintable() or not identifier.isascii():
            raise ConfigError(f"{PREFIX}IDENTIFIER must be printable ASCII of at most 32 bytes")
        prefix = env.text("KEY_PREFIX") or "imunban"
        if not prefix.isascii() or not prefix.isprintable() or " " in prefix:
            raise ConfigError(f"{PREFIX}KEY_PREFIX must be printable ASCII without spaces")
        return cls(
            redis_url=redis_url,
            sdkappid=env.integer("SDKAPPID", None, minimum=1),
            identifier=identifier,
            secret_key=env.secret(),
            region=region,
            base_url=base_url,
            rate_limit_per_s=rate,
            key_prefix=prefix,
            linger_ms=env.integer("LINGER_MS", 150, minimum=0) or 0,
            lease_ms=env.integer("LEASE_MS", 30_000, minimum=1_000) or 30_000,
            max_attempts=env.integer("MAX_ATTEMPTS", 12, minimum=1) or 12,
            max_age_s=env.integer("MAX_AGE_S", 86_400, minimum=1) or 86_400,
            backoff_base_ms=env.integer("BACKOFF_BASE_MS", 1_000, minimum=1) or 1_000,
            backoff_cap_ms=env.integer("BACKOFF_CAP_MS", 300_000, minimum=1) or 300_000,
            concurrency=env.integer("CONCURRENCY", 8, minimum=1) or 8,
            connect_timeout_s=env.number("CONNECT_TIMEOUT_S", 3.05),
            read_timeout_s=env.number("READ_TIMEOUT_S", 5.0, minimum=3.0),
            metrics_port=env.integer("METRICS_PORT", 0, minimum=0) or 0,
            metrics_host=env.text("METRICS_HOST") or "127.0.0.1",
            log_format=log_format,
            log_level=(env.text("LOG_LEVEL") or "INFO").upper(),
            outcome_stream_maxlen=env.integer("OUTCOME_STREAM_MAXLEN", 100_000, minimum=1) or 100_000,
            data_dir=env.text("DATA_DIR"),
        )

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

    def integer(self, name: str, default: int | None, *, minimum: int | None = None) -> int | None:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw, 10)
        except ValueError:
            raise ConfigError(f"{PREFIX}{name} must be an integer, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise ConfigError(f"{PREFIX}{name} must be >= {minimum}, got {value}")
        return value

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{PREFIX}{name} must be a number, got {raw!r}") from None
        if not math.isfinite(value) or value <= 0 or value < minimum:
            raise ConfigError(f"{PREFIX}{name} must be a finite number >= {minimum:g} and > 0, got {raw!r}")
        return value

    def secret(self) -> Secret | None:
        inline = self.text("SECRET_KEY")
        path = self.text("SECRET_KEY_FILE")
        if inline is not None and path is not None:
            raise ConfigError(f"set only one of {PREFIX}SECRET_KEY and {PREFIX}SECRET_KEY_FILE")
        if path is not None:
            try:
                text = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{PREFIX}SECRET_KEY_FILE: cannot read {path!r}: {exc.strerror}") from None
            if not text:
                raise ConfigError(f"{PREFIX}SECRET_KEY_FILE: {path!r} is empty")
            return Secret(text)
        return None if inline is None else Secret(inline)
