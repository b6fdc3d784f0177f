"""classify(): every ErrorCode of SPEC §1 maps to the exception class of its action."""

from __future__ import annotations

import pytest

from imunban.classify import (
    AMBIGUOUS_GLOBAL_CODE,
    GLOBAL_CODES,
    GROUP_GONE_CODES,
    ISOLATE_CODES,
    PERMANENT_CODES,
    RATE_LIMIT_CODES,
    RENEW_CODES,
    TRANSIENT_CODES,
    classify,
    describe,
)
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

#: SPEC §1 "Error classes", transcribed code by code.
SPEC_TABLE: dict[type[ApiError], list[int]] = {
    RateLimitedError: [10006, 60007, 60011, 60018, 60019],
    RetryableError: [10002, 60008, 60013, 60014, 70169, 70500],
    RenewSigError: [70001, 70052],
    HoldError: [
        10003, 10007, 10012, 10026, 60002, 60004, 60005, 60006, 60009, 60010, 60012, 60016, 60017,
        60020, 60021, 70002, 70003, 70005, 70009, 70013, 70014, 70016, 70020, 70050, 70051, 70114, 70403,
    ],
    IsolateError: [10004, 10019, 70107],
    GroupGoneError: [10010],
    PermanentError: [10005, 10011, 10015, 60003, 60015, 70206, 70402],
}  # fmt: skip

CASES = [(code, cls) for cls, codes in SPEC_TABLE.items() for code in codes]


@pytest.mark.parametrize(("code", "cls"), CASES, ids=[str(c) for c, _ in CASES])
def test_spec_code_maps_to_its_class(code: int, cls: type[ApiError]) -> None:
    """Each SPEC §1 code yields exactly its class, keeping the code and the ErrorInfo."""
    error = classify(code, "the info", 200)
    assert type(error) is cls
    assert error is not None
    assert (error.code, error.info, error.http_status) == (code, "the info", 200)


@pytest.mark.parametrize("code", [1, 10008, 10016, 12345, 70398, 80001, 99999, -1])
def test_unlisted_codes_are_unknown(code: int) -> None:
    """A code outside the SPEC table is an UnknownApiError (retry a few times, then dead-letter)."""
    assert type(classify(code, "x")) is UnknownApiError


def test_success_is_none() -> None:
    """ErrorCode 0 on HTTP 200 (or with no status given) is success: None."""
    assert classify(0) is None
    assert classify(0, "", 200) is None


@pytest.mark.parametrize("status", [502, 503, 504, 500, 404, 301])
def test_http_status_other_than_200_is_transport(status: int) -> None:
    """A non-200 HTTP status is a TransportError with code 0 (every transport failure's), whatever ErrorCode says."""
    error = classify(0, "", status)
    assert type(error) is TransportError
    assert error is not None
    assert (error.code, error.http_status, error.info) == (0, status, f"HTTP {status}")
    assert type(classify(70009, "", status)) is TransportError


def test_missing_info_gets_a_description() -> None:
    """Without ErrorInfo the error carries a short meaning of the code."""
    error = classify(60007)
    assert error is not None
    assert error.info == describe(60007) == "REST API call frequency exceeds the limit"
    assert describe(4242) == "unknown error code"


def test_ambiguous_global_code_is_a_hold_that_delivery_weighs() -> None:
    """10007, the code delivery weighs by evidence across groups, classifies as a global HoldError."""
    assert AMBIGUOUS_GLOBAL_CODE == 10007 and AMBIGUOUS_GLOBAL_CODE in GLOBAL_CODES
    error = classify(AMBIGUOUS_GLOBAL_CODE)
    assert isinstance(error, HoldError) and error.code == AMBIGUOUS_GLOBAL_CODE


def test_code_sets_match_the_table() -> None:
    """The exported frozensets are the SPEC sets, disjoint where the actions differ."""
    assert frozenset(SPEC_TABLE[RateLimitedError]) == RATE_LIMIT_CODES
    assert frozenset(SPEC_TABLE[RetryableError]) | RATE_LIMIT_CODES == TRANSIENT_CODES
    assert frozenset(SPEC_TABLE[RenewSigError]) == RENEW_CODES
    assert frozenset(SPEC_TABLE[HoldError]) == GLOBAL_CODES
    assert frozenset(SPEC_TABLE[IsolateError]) == ISOLATE_CODES
    assert frozenset({10010}) == GROUP_GONE_CODES
    assert frozenset(SPEC_TABLE[PermanentError]) | ISOLATE_CODES | GROUP_GONE_CODES == PERMANENT_CODES
    groups = [TRANSIENT_CODES, RENEW_CODES, GLOBAL_CODES, PERMANENT_CODES]
    assert sum(len(g) for g in groups) == len(frozenset().union(*groups))


def test_subclass_relations_drive_the_action() -> None:
    """Rate-limit and transport errors are retryable; isolate and group-gone are permanent."""
    assert isinstance(classify(60007), RetryableError)
    assert isinstance(classify(0, "", 502), RetryableError)
    assert isinstance(classify(10004), PermanentError)
    assert isinstance(classify(10010), PermanentError)
    assert not isinstance(classify(70001), RetryableError | PermanentError | HoldError)
