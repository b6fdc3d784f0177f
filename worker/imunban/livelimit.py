"""An app's live rate limit: set at run time by an operator, applied by every worker within a second.

``imunban limit [--app A] RATE`` (or the console) stores the rate in ``Keys.limit`` with an audit entry in
the same script (``limit_set.lua``); ``--reset`` deletes it (``limit_reset.lua``), and the configured
``rate_limit`` applies again. Each worker's limiter asks :class:`LiveRate` for the rate before every
reservation; :class:`LiveRate` reads Redis at most once per :data:`LIVE_LIMIT_CACHE_S`, so a change
reaches every worker within that time plus one reservation, without a restart. A rate is a number
> 0 and <= :data:`~imunban.apps.API_LIMIT_PER_S` (the API's own per-app ceiling, the same bound as
the apps file); it may be above the configured one (a bigger package bought), never above the API's.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import redis

from imunban.apps import API_LIMIT_PER_S
from imunban.connection import translated
from imunban.errors import StoreError, ValidationError
from imunban.keys import Keys
from imunban.pause import Actor
from imunban.scripts import register, script_keys

#: How long a worker keeps the live rate it read: a change applies within this (the issue asks <= 1 s).
LIVE_LIMIT_CACHE_S = 0.5


def validate_rate(value: object, field: str = "rate") -> float:
    """A live rate in calls/s: a finite number > 0 and <= API_LIMIT_PER_S; an error names ``field``."""
    if isinstance(value, bool):
        raise ValidationError(field, f"must be a number of calls/s, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValidationError(field, f"must be a number of calls/s, got {value!r}") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(field, f"must be a finite number of calls/s, got {value!r}")
    if not 0 < value <= API_LIMIT_PER_S:
        raise ValidationError(field, f"must be > 0 and <= {API_LIMIT_PER_S:g} calls/s (the API's limit), got {value:g}")
    return float(value)


@dataclass(frozen=True)
class LimitState:
    """An app's rate limit as operators see it: the configured one, and the live one when set."""

    configured_per_s: float
    live_per_s: float | None = None
    since_ms: int = 0
    role: str = ""
    via: str = ""
    client: str = ""

    @classmethod
    def from_hash(cls, configured_per_s: float, raw: dict[str, str]) -> LimitState:
        """The state a ``Keys.limit`` HGETALL answered (an empty or unreadable hash: the configured limit)."""
        try:
            live = validate_rate(raw["rate_per_s"]) if raw.get("rate_per_s") else None
        except ValidationError:
            live = None  # a hand-edited key: the configured limit applies, as the limiter does
        if live is None:
            return cls(configured_per_s)
        return cls(
            configured_per_s,
            live,
            int(raw.get("since_ms") or 0),
            raw.get("role", ""),
            raw.get("via", ""),
            raw.get("client", ""),
        )

    @property
    def effective_per_s(self) -> float:
        return self.configured_per_s if self.live_per_s is None else self.live_per_s

    @property
    def by(self) -> str:
        return Actor(self.role, self.via, self.client).text() if self.live_per_s is not None else ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "effective_per_s": self.effective_per_s,
            "configured_per_s": self.configured_per_s,
            "live_per_s": self.live_per_s,
            "since_ms": self.since_ms if self.live_per_s is not None else None,
            "by": self.by,
            "source": "configured" if self.live_per_s is None else "live",
        }


class HasLimit(Protocol):
    """An app engine as :func:`add_limits` sees it (imunban.deployment.AppEngine)."""

    name: str
    limit: LiveLimit


class LiveLimit:
    """Set, reset and read one app's live rate limit (each change audited in its script)."""

    def __init__(
        self, client: redis.Redis, keys: Keys, configured_per_s: float, *, outcome_maxlen: int = 100_000
    ) -> None:
        self.client = client
        self.keys = keys
        self.configured_per_s = configured_per_s
        self.outcome_maxlen = outcome_maxlen
        self._set = register(client, "limit_set")
        self._reset = register(client, "limit_reset")

    def set(self, rate_per_s: object, actor: Actor, field: str = "rate") -> float | None:
        """Set the live limit (validated first: nothing is stored on bad input); the live rate it replaced."""
        rate = validate_rate(rate_per_s, field)
        args: list[str | int] = [f"{rate:g}", f"{self.configured_per_s:g}", *actor.as_argv(), self.outcome_maxlen]
        with translated("limit"):
            before = self._set(keys=script_keys(self.keys, "limit_set"), args=args)
        return float(before) if before else None

    def reset(self, actor: Actor) -> float | None:
        """Revert to the configured limit; the live rate that ended, None when none was set."""
        args: list[str | int] = [f"{self.configured_per_s:g}", *actor.as_argv(), self.outcome_maxlen]
        with translated("limit"):
            before = self._reset(keys=script_keys(self.keys, "limit_reset"), args=args)
        return float(before) if before else None

    def get(self) -> LimitState:
        with translated("limit"):
            raw = cast(dict[str, str], self.client.hgetall(self.keys.limit))
        return LimitState.from_hash(self.configured_per_s, raw)


def needs_read(now_s: float, read_at_s: float | None, cache_s: float = LIVE_LIMIT_CACHE_S) -> bool:
    """Whether a cached live rate read at ``read_at_s`` (None: never) must be read again at ``now_s``."""
    return read_at_s is None or not 0 <= now_s - read_at_s < cache_s


class LiveRate:
    """The rate a worker's limiter paces by: the live limit, read from Redis at most once per ``cache_s``.

    If Redis cannot be read, the last rate read stays (the limiter's own call fails the same way anyway).
    """

    def __init__(
        self,
        read: Callable[[], LimitState],
        configured_per_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        cache_s: float = LIVE_LIMIT_CACHE_S,
    ) -> None:
        self._read = read
        self._clock = clock
        self._cache_s = cache_s
        self._rate = configured_per_s
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def __call__(self) -> float:
        now = self._clock()
        if not needs_read(now, self._read_at, self._cache_s):
            return self._rate
        with self._lock:
            if needs_read(now, self._read_at, self._cache_s):
                with contextlib.suppress(StoreError):
                    self._rate = self._read().effective_per_s
                self._read_at = now
        return self._rate


def add_limit(limit: LiveLimit, snapshot: dict[str, Any]) -> LimitState:
    """Add ``rate_limit`` (effective, configured, live, since, by) to one app's status document."""
    state = limit.get()
    snapshot["rate_limit"] = state.as_dict()
    return state


def add_limits(engines: Iterable[HasLimit], totals: dict[str, Any]) -> None:
    """Add each app's ``rate_limit`` to its document under ``totals["apps"]`` (and to the totals with one app)."""
    engines = list(engines)
    for engine in engines:
        state = add_limit(engine.limit, totals["apps"][engine.name])
        if len(engines) == 1:
            totals["rate_limit"] = state.as_dict()


def describe(state: dict[str, Any]) -> str:
    """A status document's ``rate_limit`` in a few words: ``150 calls/s (live; configured 190)``."""
    if state["source"] == "configured":
        return f"{state['effective_per_s']:g} calls/s (configured)"
    return (
        f"{state['effective_per_s']:g} calls/s (live, set by {state['by']}; configured {state['configured_per_s']:g})"
    )
