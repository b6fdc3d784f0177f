"""The console's query parameters, each validated into a 400 that names it (:class:`BadParam`).

Routes read their parameters through these functions only, so a bad value never reaches Redis
(where it was a 500, or an outcome stream that silently stayed empty). An empty value is "not
given": a GET form sends its empty fields. Messages say what is expected, never echo the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request

from imunban.errors import ImunbanError, ValidationError
from imunban.validation import validate_app, validate_group_id, validate_member

#: Offsets and cursors: ranks in a sorted set.
MAX_RANK = 10**9
#: The largest epoch ms a query may carry (year 2286: later than any due time the engine accepts).
MAX_EPOCH_MS = 10**13
#: ErrorCodes are int32 (transport failures are 0 or minus the HTTP status).
CODE_LOW, CODE_HIGH = -(2**31), 2**31 - 1
#: A stream entry id: milliseconds and a sequence, each an unsigned 64-bit integer.
STREAM_ID = re.compile(r"([0-9]{1,20})(?:-([0-9]{1,20}))?")
MAX_U64 = 2**64 - 1
MAX_NEXT = 2_000


class BadParam(HTTPException):
    """A parameter that does not validate: ``field`` names it (400, or 404 for an app that is not served)."""

    def __init__(self, field: str, reason: str, status_code: int = 400) -> None:
        super().__init__(status_code, f"{field}: {reason}")
        self.field = field
        self.reason = reason


def bad_request(exc: ImunbanError) -> HTTPException:
    """An engine error met while acting on a request, as the 400 to answer (naming the field when known)."""
    if isinstance(exc, ValidationError):
        return BadParam(exc.field, exc.reason)
    return HTTPException(400, str(exc))


def raw(request: Request, name: str) -> str | None:
    """The parameter's text, None when absent or empty."""
    value = request.query_params.get(name)
    return value or None


def integer(request: Request, name: str, default: int, *, low: int = 0, high: int = MAX_RANK) -> int:
    return to_integer(raw(request, name), name, default, low=low, high=high)


def to_integer(value: str | None, name: str, default: int, *, low: int = 0, high: int = MAX_RANK) -> int:
    """``value`` as an integer in [low, high]; ``default`` when not given."""
    if value is None:
        return default
    digits = value[1:] if value[:1] == "-" else value
    # isdigit() alone takes "²" and other Unicode digits; int() takes "1_000" and " 1": neither is asked for.
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19 or not low <= int(value) <= high:
        raise BadParam(name, f"must be an integer from {low:,} to {high:,}")
    return int(value)


def group_id(request: Request, name: str = "group_id") -> str | None:
    value = raw(request, name)
    return None if value is None else checked(validate_group_id, value, name)


def member(request: Request, name: str = "member") -> str | None:
    value = raw(request, name)
    return None if value is None else checked(validate_member, value, name)


def checked(validate: Callable[[object, str], str], value: object, name: str) -> str:
    """``validate(value, name)`` (a validation.py function), its ValidationError as a BadParam."""
    try:
        return validate(value, name)
    except ValidationError as exc:
        raise BadParam(exc.field, exc.reason) from None


def flag(request: Request, name: str) -> bool:
    """``1`` on, ``0`` or absent off."""
    value = raw(request, name)
    if value not in (None, "0", "1"):
        raise BadParam(name, "must be 1 or 0")
    return value == "1"


def choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = raw(request, name)
    if value is not None and value not in allowed:
        raise BadParam(name, "must be one of " + ", ".join(allowed))
    return value


def app_name(value: object, name: str = "app") -> str | None:
    """An app name as given (query or JSON body); None: the default app."""
    if value is None or value == "":
        return None
    try:
        return validate_app(value, name)
    except ValidationError as exc:
        raise BadParam(exc.field, exc.reason) from None


def code(value: object, name: str = "code") -> int | None:
    """An ErrorCode filter (query text or a JSON integer); None: any."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadParam(name, f"must be an integer from {CODE_LOW:,} to {CODE_HIGH:,}")
    return to_integer(str(value), name, 0, low=CODE_LOW, high=CODE_HIGH)


def stream_id(request: Request, name: str = "after") -> str | None:
    """An outcome stream entry id (``MS-SEQ``, or ``MS`` for ``MS-0``), as the API hands them out."""
    value = raw(request, name)
    if value is None:
        return None
    found = STREAM_ID.fullmatch(value) if value.isascii() else None
    if found is None or int(found[1]) > MAX_U64 or int(found[2] or 0) > MAX_U64:
        raise BadParam(name, "must be an outcome entry id like 1767225600000-0 (a last_id the API returned)")
    return f"{int(found[1])}-{int(found[2] or 0)}"


def next_path(request: Request, name: str = "next") -> str:
    """Where to go after signing in: a path on this console ("/" when not given)."""
    value = raw(request, name)
    if value is None:
        return "/"
    if not local_path(value):
        raise BadParam(name, f"must be a path on this console (starting with one /, printable, at most {MAX_NEXT})")
    return value


def local_path(value: str) -> bool:
    """A path on this console: one leading slash (``//host`` and ``/\\host`` leave it), printable ASCII."""
    return (
        value.startswith("/")
        and not value.startswith(("//", "/\\"))
        and len(value) <= MAX_NEXT
        and value.isascii()
        and value.isprintable()
    )
