"""Every exception imunban raises, arranged by what the worker must do about it.

::

    ImunbanError
    ├── ConfigError ................ bad IMUNBAN_* setting: refuse to start, name the variable
    ├── ValidationError ............ bad request input: reject, name the field, store nothing
    ├── StoreError ................. Redis unreachable or refused a command (redis-py errors, translated)
    └── ApiError(code, info) ....... an unban call did not succeed; the subclass is the action
        ├── RetryableError ......... RETRY the members with backoff
        │   ├── TransportError ..... network failure, timeout or HTTP != 200 (code is 0 or -status)
        │   │   └── ConnectError ... DNS/connect failure: the only case that fails over to the backup domain
        │   └── RateLimitedError ... 60007/60011/60018/60019/10006: also push the shared limiter back
        ├── RenewSigError .......... 70001/70052: regenerate the UserSig, retry once, then treat as HoldError
        ├── HoldError .............. configuration error for the whole app: HOLD delivery, dead-letter nothing
        ├── PermanentError ......... this request can never succeed: DEAD-LETTER it
        │   ├── IsolateError ....... 10004/10019/70107: split a multi-member batch in halves to find the culprit
        │   └── GroupGoneError ..... 10010: every member of the group ends as ``group_gone``
        └── UnknownApiError ........ unclassified code: retry a few times, then dead-letter

Library errors are translated where they enter our code (``raise StoreError(...) from exc``), so the
delivery loop only ever catches the classes above.
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


class ApiError(ImunbanError):
    """The unban call did not succeed. ``code`` is the API ErrorCode, 0 for transport failures."""

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
    """DNS resolution or TCP/TLS connection failed; the backup domain may help."""


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
