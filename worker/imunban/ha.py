"""High availability: the Redis Sentinel client, the retry policy that rides out a failover, the memory check.

A ``redis+sentinel://`` URL gives a client whose connections ask the sentinels for the current
primary. When the primary dies, or is demoted (``READONLY`` replies, which redis-py turns into a
connection error on a master pool), the failed command is retried with backoff and its new
connection asks the sentinels again, so every worker, pump and producer follows the new primary by
itself. The retries are bounded: past them the caller gets a :class:`~imunban.errors.StoreError`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelManagedConnection

from imunban.errors import ConfigError
from imunban.redis_url import SentinelUrl, parse_sentinel_url
from imunban.settings import Secret

log = logging.getLogger("imunban.redis")

T = TypeVar("T")

#: The memory policy imunban needs: any other one may silently drop queued requests.
REQUIRED_POLICY = "noeviction"
#: Errors a command is retried on: the primary is away, restarting, loading or being replaced.
RETRY_ON = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError)
#: How long one sentinel may take to answer before the next one is asked.
SENTINEL_TIMEOUT_S = 1.0


class FailoverRetry(Retry):
    """redis-py's Retry, except that a rejected password fails at once: retrying cannot fix it."""

    def call_with_retry(self, do: Callable[[], T], fail: Callable[..., Any], *args: Any, **kwargs: Any) -> T:
        def fail_fast(error: Exception, *rest: Any) -> None:
            fail(error, *rest)
            if isinstance(error, redis.exceptions.AuthenticationError):
                raise error

        return super().call_with_retry(do, fail_fast, *args, **kwargs)


def failover_retry(*, cap_s: float, retries: int) -> Retry:
    """Exponential backoff from 50 ms up to ``cap_s`` for ``retries`` attempts (a failover takes seconds)."""
    return FailoverRetry(ExponentialBackoff(cap=cap_s, base=0.05), retries=retries, supported_errors=RETRY_ON)


class FollowingConnection(SentinelManagedConnection):
    """A sentinel-managed connection that asks for the primary on *every* (re)connect.

    redis-py 8 reconnects a connection that failed mid-command (the retry of that command) through
    ``connect_check_health``, which dials the host it had, bypassing the sentinel lookup in
    ``connect``: a command in flight when the primary died retried against the dead address until
    its retries ran out. Looking the primary up in ``_connect``, where the socket is opened, covers
    both paths.
    """

    def _connect(self) -> Any:
        if self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        return super()._connect()  # type: ignore[no-untyped-call]


class SentinelAuthError(MasterNotFoundError, redis.exceptions.AuthenticationError):
    """The sentinels refused their password: not retried (see :class:`FailoverRetry`)."""


class LoggingSentinel(Sentinel):
    """redis-py's Sentinel manager that says, once, when the primary moves or cannot be found, and why."""

    def __init__(self, sentinels: list[tuple[str, int]], **kwargs: Any) -> None:
        super().__init__(sentinels, **kwargs)  # type: ignore[no-untyped-call]
        self._addresses = ",".join(f"{h}:{p}" for h, p in sentinels)
        self._lock = threading.Lock()
        self._primary: tuple[str, int] | None = None
        self._missing = False

    def discover_master(self, service_name: str) -> tuple[str, int]:
        try:
            address: tuple[str, int] = super().discover_master(service_name)  # type: ignore[no-untyped-call]
        except MasterNotFoundError as exc:
            explained = self._explain(service_name, exc)
            raise explained from exc
        with self._lock:
            previous, self._primary, self._missing = self._primary, address, False
        if previous is None:
            log.info("redis sentinel: primary of %r is %s:%s", service_name, *address)
        elif previous != address:
            log.warning(
                "redis sentinel: failover: primary of %r is now %s:%s (was %s:%s)", service_name, *address, *previous
            )
        return address

    def _explain(self, service: str, exc: MasterNotFoundError) -> MasterNotFoundError:
        text = str(exc)
        refused = "AuthenticationError" in text or "invalid password" in text.lower() or "WRONGPASS" in text
        if refused:
            why = "a sentinel refused the password: check IMUNBAN_SENTINEL_PASSWORD"
        elif text.count(" - ") >= len(self.sentinels):
            why = f"no sentinel reachable at {self._addresses}"
        else:
            known = self._known_services()
            if known is not None and service not in known:
                names = ", ".join(sorted(known)) or "none"
                why = f"the sentinels at {self._addresses} monitor no service {service!r} (they monitor: {names})"
            else:
                why = f"the sentinels see no healthy primary for {service!r} (a failover may be under way)"
        with self._lock:
            first, self._missing = not self._missing, True
        if first:
            log.warning("redis sentinel: %s; retrying", why)
        error = SentinelAuthError if refused else MasterNotFoundError
        # redis-py's own text repeats each sentinel client's full repr: kept for debugging only.
        log.debug("redis sentinel: %s", text)
        return error(f"no primary for {service!r}: {why}")

    def _known_services(self) -> set[str] | None:
        for sentinel in self.sentinels:
            try:
                return {str(name) for name in sentinel.sentinel_masters()}
            except redis.exceptions.RedisError:
                continue
        return None


def sentinel_client(
    url: str, sentinel_password: Secret | None, *, options: dict[str, Any], retry: Retry
) -> redis.Redis:
    """A client of the primary of the service named in ``url``, found (and found again) through the sentinels."""
    parsed: SentinelUrl = parse_sentinel_url(url)
    sentinel_kwargs: dict[str, Any] = {
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
        "socket_timeout": SENTINEL_TIMEOUT_S,
        "decode_responses": True,
        # The manager tries every sentinel in turn: one retry each, not redis-py's default ten.
        "retry": failover_retry(cap_s=0.1, retries=1),
    }
    if sentinel_password is not None:
        sentinel_kwargs["password"] = sentinel_password.reveal()
    manager = LoggingSentinel(list(parsed.sentinels), sentinel_kwargs=sentinel_kwargs)
    client: redis.Redis = manager.master_for(  # type: ignore[no-untyped-call]
        parsed.service,
        redis_class=redis.Redis,
        connection_class=FollowingConnection,
        db=parsed.db,
        username=parsed.username,
        password=parsed.password or options.get("password"),
        retry=retry,
        **{k: v for k, v in options.items() if k != "password"},
    )
    return client


def check_memory_policy(client: redis.Redis) -> None:
    """Refuse a Redis that may evict keys (ConfigError naming maxmemory-policy); warn if it cannot be read."""
    try:
        reply = client.config_get("maxmemory-policy")
    except redis.exceptions.ResponseError as exc:
        # Managed Redis often renames or forbids CONFIG (NOPERM, unknown command).
        log.warning(
            "could not check Redis maxmemory-policy (%s); make sure it is %s, or queued requests may be evicted",
            exc,
            REQUIRED_POLICY,
        )
        return
    policy = str(reply.get("maxmemory-policy", "")) if isinstance(reply, dict) else ""
    if not policy:
        log.warning(
            "could not check Redis maxmemory-policy (CONFIG GET answered nothing); it must be %s", REQUIRED_POLICY
        )
        return
    if policy != REQUIRED_POLICY:
        raise ConfigError(
            f"Redis maxmemory-policy is {policy!r}: imunban refuses to run on a Redis that may evict its "
            f"queued requests; set maxmemory-policy {REQUIRED_POLICY} (redis.conf or CONFIG SET)"
        )
