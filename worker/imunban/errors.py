"""Every exception imunban raises, arranged by what the worker must do about it.

::

    ImunbanError
    ├── ConfigError ................ bad IMUNBAN_* setting: refuse to start, name the variable
    ├── ValidationError ............ bad request input: reject, name the field, store nothing
    ├── StoreError ................. Redis unreachable or refused a command (redis-py errors, translated)
    │   ├── DurabilityError ........ IMUNBAN_DURABLE_REPLICAS not confirmed in time: maybe stored, re-send
    │   └── RedisFullError ......... Redis is full (maxmemory, or intake's share): intake refused; delivery drains
    └── ApiError(code, info) ....... an unban call did not succeed; the subclass is the action
        ├── RetryableError ......... RETRY the members with backoff
        │   ├── TransportError ..... network failure, timeout or HTTP != 200 (code is 0 or -status)
        │   │   └── ConnectError ... failed before the request was sent: the only case that fails over
        │   │       └── FailoverError  the next domain is now preferred: reserve again (leases checked), call again
        │   └── RateLimitedError ... 60007/60011/60018/60019/10006: also push the shared limiter back
        ├── RenewSigError .......... 70001/70052: regenerate the UserSig, retry once, then treat as HoldError
        ├── HoldError .............. configuration error for the whole app: HOLD delivery, dead-letter nothing
        ├── PermanentError ......... this request can never succeed: DEAD-LETTER it
        │   ├── IsolateError ....... 10004/10019/70107: split a multi-member batch in halves to find the culprit
        │   └── GroupGoneError ..... 10010: every member of the group ends as ``group_gone``
        ├── UnknownApiError ........ unclassified code: retry a few times, then dead-letter
        └── InternalError .......... not an answer: a bug or untranslated library error in a delivery run

Library errors are translated where they enter our code (``raise StoreError(...) from exc``), so the
delivery loop only ever catches the classes above. Anything else that escapes a delivery run is a bug:
the Deliverer logs it and retries the batch as an :class:`InternalError` (an attempt counts).
"""

from __future__ import annotations


class ImunbanError(Exception):
    """Root of every error imunban raises on purpose."""


class ConfigError(ImunbanError):
    """A setting is missing or malformed; the message names the IMUNBAN_* variable."""


class ValidationError(ImunbanError, ValueError):
    """Request input is invalid; ``field`` names the offending field (and ``line`` for files)."""

    def __init__(self, field: str, message: str, *, line: int | None = None) -> None:
        self.field = field
        self.reason = message
        self.line = line
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{where}{field}: {message}")


class StoreError(ImunbanError):
    """Redis could not be reached or refused an operation."""


class DurabilityError(StoreError):
    """The write reached the primary but ``WAIT`` saw too few replicas confirm it in time.

    The request may or may not survive a failover; re-sending it is safe (intake is idempotent).
    """


class RedisFullError(StoreError):
    """Redis is full and refused new data (enqueue, cancel, dead-letter replay).

    Full is ``maxmemory`` itself, or for an enqueue the intake's share of it
    (IMUNBAN_INTAKE_MEMORY_FRACTION, ``reason`` says which). The refusal comes before anything is
    written, so the refused call stored nothing; a Celery message that meets it is not acknowledged.
    Delivery still runs and frees memory.
    """

    def __init__(self, operation: str, detail: str = "", *, reason: str = "maxmemory reached") -> None:
        self.operation = operation
        super().__init__(
            f"Redis is full ({reason}): it refused {operation}{detail or ' and nothing was stored'}. "
            "Delivery keeps draining the backlog; free memory or raise maxmemory, then try again"
        )


class ApiError(ImunbanError):
    """The unban call did not succeed. ``code`` is the API ErrorCode, 0 for every transport failure
    (network, timeout, HTTP status other than 200: ``info`` and ``http_status`` say which)."""

    def __init__(self, code: int, info: str, *, http_status: int | None = None) -> None:
        self.code = code
        self.info = info
        self.http_status = http_status
        super().__init__(f"ErrorCode {code}: {info}" if code else info)


class RetryableError(ApiError):
    """Transient: retry the same members later with backoff."""


class TransportError(RetryableError):
    """Network failure, timeout or a non-200 HTTP status."""


class ConnectError(TransportError):
    """Failed before the request was sent (DNS, TCP connect, TLS certificate, proxy connect); the backup may help."""


class FailoverError(ConnectError):
    """Nothing was sent; the client now prefers the next domain. Reserve a slot again (which re-checks the
    leases: a cancel that returned meanwhile stops the call) and call again at once."""


class RateLimitedError(RetryableError):
    """The API said we are too fast; every worker must slow down."""


class RenewSigError(ApiError):
    """The UserSig expired or was invalidated: regenerate and retry once."""


class HoldError(ApiError):
    """A configuration error that affects every request of the app: hold delivery."""


class PermanentError(ApiError):
    """This request cannot succeed; dead-letter it."""


class IsolateError(PermanentError):
    """Some member of the batch is bad; bisect the batch to find it."""


class GroupGoneError(PermanentError):
    """The group does not exist (any more)."""


class UnknownApiError(ApiError):
    """An ErrorCode we do not know: retry a few times, then dead-letter."""


class InternalError(ApiError):
    """Not an API answer: an unexpected exception inside a delivery run (a bug, an untranslated library error).

    The batch is retried with an attempt counted, so it ends dead as "internal error: <type>" instead
    of being reaped again and again. Only the type is kept: a message could carry a secret.
    """

    def __init__(self, exc: BaseException) -> None:
        super().__init__(0, f"internal error: {type(exc).__name__}")
