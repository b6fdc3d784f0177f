"""Pure validators for request input. Each error names the field; nothing here touches Redis."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from imunban.errors import ValidationError

MAX_GROUP_ID_BYTES = 48
MAX_MEMBER_BYTES = 32
#: A sane ceiling on members per request; bulk imports use many requests, not one giant one.
MAX_MEMBERS_PER_REQUEST = 10_000
#: Due times must fall in [2000-01-01, 2200-01-01): anything else is a unit mistake (ms vs s).
MIN_AT_S = 946_684_800
MAX_AT_S = 7_258_118_400
PRIORITIES = ("normal", "high")
#: A version is an int64 the producer chooses (e.g. the ban record's update time in ms).
MAX_VERSION = 2**63 - 1


@dataclass(frozen=True)
class UnbanRequest:
    """A validated request: unban ``members`` of ``group_id`` at ``at_ms`` (None = now).

    ``version`` orders instructions between producers: a lower one than already applied is ignored.
    ``app`` names the app it is for (None: the only one); the producer resolves it (imunban.apps).
    """

    group_id: str
    members: tuple[str, ...]
    at_ms: int | None = None
    priority: str = "normal"
    version: int | None = None
    app: str | None = None

    @property
    def high(self) -> bool:
        return self.priority == "high"


def _printable_ascii(value: str) -> bool:
    # For ASCII text, isprintable() is exactly 0x20-0x7e; both checks run in C (bulk enqueue speed).
    return value.isascii() and value.isprintable()


def _validate_id(value: object, field: str, max_bytes: int) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValidationError(field, "must not be empty")
    if not _printable_ascii(value):
        raise ValidationError(field, "must be printable ASCII (0x20-0x7e)")
    if len(value) > max_bytes:
        raise ValidationError(field, f"must be at most {max_bytes} bytes, got {len(value)}")
    return value


def validate_group_id(value: object, field: str = "group_id") -> str:
    """A GroupID: printable ASCII, 1 to 48 bytes."""
    return _validate_id(value, field, MAX_GROUP_ID_BYTES)


def validate_member(value: object, field: str = "member") -> str:
    """A UserID: printable ASCII, 1 to 32 bytes."""
    return _validate_id(value, field, MAX_MEMBER_BYTES)


def validate_members(values: object, field: str = "members") -> tuple[str, ...]:
    """A non-empty list of member ids, deduplicated in first-seen order."""
    # A mapping is iterable too, but its keys are not a list of members the caller meant.
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise ValidationError(field, "must be a list of strings")
    out: dict[str, None] = {}
    for index, value in enumerate(values):
        out[validate_member(value, f"{field}[{index}]")] = None
        if len(out) > MAX_MEMBERS_PER_REQUEST:
            raise ValidationError(field, f"must have at most {MAX_MEMBERS_PER_REQUEST} members")
    if not out:
        raise ValidationError(field, "must not be empty")
    return tuple(out)


def parse_at(value: object, field: str = "at") -> int | None:
    """Unix seconds (int/float/numeric string), ISO-8601 text or a datetime -> epoch ms; None = now."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError(field, "must be Unix seconds or ISO-8601 text, got a boolean")
    try:
        seconds = _to_seconds(value, field)
    except OverflowError:
        # float(10**400), or an aware datetime whose UTC time falls outside year 1..9999.
        raise ValidationError(field, "is out of range") from None
    if not math.isfinite(seconds):
        raise ValidationError(field, "must be a finite time")
    if not MIN_AT_S <= seconds < MAX_AT_S:
        if MIN_AT_S <= seconds / 1000 < MAX_AT_S:
            # Epoch milliseconds (what JavaScript and Java hand out) where seconds are expected.
            raise ValidationError(
                field,
                f"must be Unix seconds, got {seconds:.15g}: milliseconds? In seconds that is {seconds / 1000:.15g}",
            )
        raise ValidationError(field, f"must be Unix seconds between 2000 and 2200, got {seconds:.15g}")
    return round(seconds * 1000)


def _to_seconds(value: object, field: str) -> float:
    if isinstance(value, datetime):
        return _aware(value).timestamp()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            return _aware(datetime.fromisoformat(text.replace("Z", "+00:00"))).timestamp()
        except ValueError:
            shown = value if len(value) <= 64 else value[:61] + "..."
            raise ValidationError(field, f"is neither Unix seconds nor ISO-8601: {shown!r}") from None
    raise ValidationError(field, f"must be Unix seconds or ISO-8601 text, got {type(value).__name__}")


def _aware(moment: datetime) -> datetime:
    # A naive timestamp is taken as UTC: servers in different zones must agree on it.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def validate_priority(value: object, field: str = "priority") -> str:
    if value is None:
        return "normal"
    if not isinstance(value, str) or value not in PRIORITIES:
        raise ValidationError(field, f"must be 'high' or 'normal', got {value!r}")
    return value


def validate_version(value: object, field: str = "version") -> int | None:
    """An instruction's version: an integer in [0, 2**63 - 1] (int64), or None for no version."""
    if value is None:
        return None
    # bool is an int in Python, but True is no version anyone meant.
    if isinstance(value, bool):
        raise ValidationError(field, "must be an integer, got a boolean")
    if not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, got {type(value).__name__}")
    if not 0 <= value <= MAX_VERSION:
        raise ValidationError(field, f"must be between 0 and {MAX_VERSION} (int64), got {value}")
    return value


def validate_app(value: object, field: str = "app") -> str | None:
    """An app name as a request gives it (None: left out); whether the app exists is the producer's check."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 64 or not _printable_ascii(value):
        raise ValidationError(field, "must be an app name (printable ASCII, at most 64 characters)")
    return value


def build_request(
    group_id: object,
    members: object,
    at: object = None,
    priority: object = None,
    *,
    version: object = None,
    app: object = None,
    prefix: str = "",
) -> UnbanRequest:
    """Validate every field of one request; ``prefix`` qualifies field names (e.g. ``requests[3].``)."""
    return UnbanRequest(
        group_id=validate_group_id(group_id, f"{prefix}group_id"),
        members=validate_members(members, f"{prefix}members"),
        at_ms=parse_at(at, f"{prefix}at"),
        priority=validate_priority(priority, f"{prefix}priority"),
        version=validate_version(version, f"{prefix}version"),
        app=validate_app(app, f"{prefix}app"),
    )


def request_from_mapping(data: Any, *, line: int | None = None) -> UnbanRequest:
    """Validate a JSON object: group_id, member or members; optional at, priority, version, app."""
    try:
        if not isinstance(data, dict):
            raise ValidationError("request", "must be a JSON object")
        unknown = set(data) - {"group_id", "member", "members", "at", "priority", "version", "app"}
        if unknown:
            # Keys of a decoded JSON object are strings, but a Python caller may pass anything.
            names = sorted(key if isinstance(key, str) and key.strip() else repr(key) for key in unknown)
            raise ValidationError(names[0], "is not a known field")
        if ("member" in data) == ("members" in data):
            raise ValidationError("member", "give exactly one of 'member' or 'members'")
        if "member" in data:
            members: object = [validate_member(data["member"], "member")]
        else:
            members = data["members"]
        if "group_id" not in data:
            raise ValidationError("group_id", "is required")
        return build_request(
            data["group_id"], members, data.get("at"), data.get("priority"), version=data.get("version"),
            app=data.get("app"),
        )  # fmt: skip
    except ValidationError as exc:
        if line is None:
            raise
        raise ValidationError(exc.field, exc.reason, line=line) from None
