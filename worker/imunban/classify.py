"""Map an API answer (ErrorCode, ErrorInfo, HTTP status) to the exception class that says what to do.

This is the table "Error classes" of docs/semantics.md and nothing more: it is pure and keeps no state.
Policy that needs evidence across calls (is a 10007 global or about one group?) or a retry budget
(renew the sig once, then hold) lives in the delivery engine.
"""

from __future__ import annotations

from imunban.errors import (
    ApiError,
    GroupGoneError,
    HoldError,
    IsolateError,
    PermanentError,
    RateLimitedError,
    RenewSigError,
    RetryableError,
    TransportError,
    UnknownApiError,
)

__all__ = [
    "AMBIGUOUS_GLOBAL_CODE",
    "CODE_INFO",
    "GLOBAL_CODES",
    "GROUP_GONE_CODES",
    "ISOLATE_CODES",
    "PERMANENT_CODES",
    "RATE_LIMIT_CODES",
    "RENEW_CODES",
    "TRANSIENT_CODES",
    "classify",
    "describe",
]

#: "Slow down": retry, and push the shared limiter back so every worker slows.
RATE_LIMIT_CODES = frozenset({60007, 60011, 60018, 60019, 10006})

#: Retry with backoff (includes the rate-limit codes).
TRANSIENT_CODES = frozenset({10002, 60008, 60013, 60014, 70169, 70500}) | RATE_LIMIT_CODES

#: The UserSig expired or was invalidated: regenerate it and retry once.
RENEW_CODES = frozenset({70001, 70052})

#: Configuration errors that every request of the app would hit: hold delivery.
GLOBAL_CODES = frozenset(
    {
        10003, 10007, 10012, 10026,
        60002, 60004, 60005, 60006, 60009, 60010, 60012, 60016, 60017, 60020, 60021,
        70002, 70003, 70005, 70009, 70013, 70014, 70016, 70020, 70050, 70051, 70114, 70403,
    }
)  # fmt: skip

#: The global code that can also concern a single group: 10007 is "feature off" for the app or
#: "group type unsupported" for one group. The delivery engine decides by evidence: per group only
#: when another group of the app was delivered to lately, otherwise global (see imunban.hold).
AMBIGUOUS_GLOBAL_CODE = 10007

#: Some member of the batch is bad: bisect the batch to find it.
ISOLATE_CODES = frozenset({10004, 10019, 70107})

#: The group does not exist any more: every member of it ends as ``group_gone``.
GROUP_GONE_CODES = frozenset({10010})

#: Per-request permanent codes (includes the isolate and group-gone codes).
PERMANENT_CODES = frozenset({10005, 10011, 10015, 60003, 60015, 70206, 70402}) | ISOLATE_CODES | GROUP_GONE_CODES

#: Short meanings (from Tencent's error-code pages), used when the API sends no ErrorInfo.
CODE_INFO: dict[int, str] = {
    10002: "server internal error, retry",
    10003: "invalid command word",
    10004: "invalid parameter",
    10005: "too many accounts in the request",
    10006: "operation frequency limit exceeded",
    10007: "insufficient permission (feature switch, edition, or group type)",
    10010: "group does not exist or was dismissed",
    10011: "request body JSON parse error",
    10012: "invalid operator identifier",
    10015: "invalid group ID",
    10019: "account does not exist",
    10026: "command word disabled for this SDKAppID",
    60002: "HTTP parse error: check the request URL",
    60003: "HTTP request JSON parse error",
    60004: "account or signature error",
    60005: "account or signature error",
    60006: "SDKAppID invalid",
    60007: "REST API call frequency exceeds the limit",
    60008: "service request timed out",
    60009: "request resource error: check the request URL",
    60010: "request needs App admin permission",
    60011: "SDKAppID request frequency exceeds the limit",
    60012: "REST API needs SDKAppID in the URL",
    60013: "HTTP response JSON parse error",
    60014: "account exchange timed out",
    60015: "account type in the body is wrong: accounts must be strings",
    60016: "SDKAppID disabled",
    60017: "request disabled",
    60018: "request too frequent, retry later",
    60019: "request too frequent, retry later",
    60020: "package expired or suspended",
    60021: "call from an IP address that is not allowed",
    70001: "UserSig expired",
    70002: "UserSig length is 0",
    70003: "UserSig check failed (unparseable)",
    70005: "UserSig check failed",
    70009: "UserSig verification failed: wrong secret key",
    70013: "identifier in the request differs from the one in the UserSig",
    70014: "SDKAppID in the request differs from the one in the UserSig",
    70016: "key not found: check the SDKAppID against the region",
    70020: "SDKAppID not found: check the SDKAppID against the region",
    70050: "UserSig verification failed too often: retry after 1 minute",
    70051: "account is blacklisted",
    70052: "UserSig has been invalidated",
    70107: "account not imported into IM",
    70114: "restricted for security reasons",
    70169: "server internal timeout, retry",
    70206: "invalid batch count",
    70402: "invalid parameters",
    70403: "request needs App admin permission",
    70500: "server internal error, retry",
}


def describe(code: int) -> str:
    """A short human meaning of ``code`` ("unknown error code" if we have none)."""
    return CODE_INFO.get(code, "unknown error code")


def classify(code: int, info: str = "", http_status: int | None = None) -> ApiError | None:
    """Return the exception for this answer, or None for success (HTTP 200 and ErrorCode 0).

    A non-200 HTTP status is a transport failure whatever the body says. Like every transport failure
    its code is 0 (one spelling in dead letters, outcomes and metrics); the info names the status.
    """
    if http_status is not None and http_status != 200:
        return TransportError(0, info or f"HTTP {http_status}", http_status=http_status)
    if code == 0:
        return None
    text = info or describe(code)
    cls: type[ApiError]
    if code in RATE_LIMIT_CODES:
        cls = RateLimitedError
    elif code in TRANSIENT_CODES:
        cls = RetryableError
    elif code in RENEW_CODES:
        cls = RenewSigError
    elif code in GLOBAL_CODES:
        cls = HoldError
    elif code in ISOLATE_CODES:
        cls = IsolateError
    elif code in GROUP_GONE_CODES:
        cls = GroupGoneError
    elif code in PERMANENT_CODES:
        cls = PermanentError
    else:
        cls = UnknownApiError
    return cls(code, text, http_status=http_status)
