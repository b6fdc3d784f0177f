"""The JSON Lines reader behind ``imunban enqueue --file``.

One request per line::

    {"group_id": "@TGS#aJRGC4MH6", "member": "alice"}
    {"group_id": "@TGS#aJRGC4MH6", "members": ["bob", "carol"], "at": "2026-12-01T08:00:00Z", "priority": "high"}
    {"group_id": "@TGS#aJRGC4MH6", "member": "dave", "version": 1717171717000}

``at`` is Unix seconds or ISO-8601 (absent: the ``default_at_ms`` given to the reader, else now);
``priority`` is ``high`` or ``normal`` (absent: ``default_priority``); ``version`` is an integer
>= 0 (absent: ``default_version``, else none). Blank lines are skipped.
A bad line raises :class:`~imunban.errors.ValidationError` with its 1-based line number and field.

:func:`read_all` validates a whole input before anything may be stored, reporting every bad line in
one pass (:class:`BadLines`), and keeps memory small by merging runs of consecutive lines that share
group, due time, priority and version into one request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from imunban.errors import ValidationError
from imunban.validation import UnbanRequest, request_from_mapping, validate_priority

#: Members per merged request: stays well under one enqueue chunk, so chunks stay bounded.
MERGE_LIMIT = 500
#: Bad lines an input's error lists one by one; the rest are counted.
BAD_LINES_SHOWN = 20


class BadLines(ValidationError):
    """Several bad lines of one input: the first :data:`BAD_LINES_SHOWN` listed, each with its line number and field."""

    def __init__(self, errors: list[ValidationError], total: int) -> None:
        self.errors = errors
        self.total = total
        listed = "".join(f"\n  {error}" for error in errors)
        more = f"\n  and {total - len(errors):,} more bad lines" if total > len(errors) else ""
        super().__init__("--file", f"{total:,} bad lines; nothing was stored:{listed}{more}")


def parse_line(raw: str | bytes, line: int) -> dict[str, object] | None:
    """The JSON object on one line, or None for a blank line; errors name the line."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError("line", f"is not UTF-8 (byte {exc.start + 1})", line=line) from None
    else:
        text = raw
    if line == 1:
        text = text.removeprefix("\ufeff")
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and int() refusing a 5,000-digit number
        raise ValidationError("line", f"is not valid JSON: {_json_reason(exc)}", line=line) from None
    except RecursionError:
        raise ValidationError("line", "is nested too deeply", line=line) from None
    if not isinstance(data, dict):
        raise ValidationError("line", f"must be a JSON object, got {_json_type(data)}", line=line)
    return data


def to_request(
    data: dict[str, object],
    line: int,
    *,
    default_at_ms: int | None = None,
    default_priority: str = "normal",
    default_version: int | None = None,
    default_app: str | None = None,
) -> UnbanRequest:
    """Validate one decoded line; ``members`` must be a JSON array."""
    if "members" in data and not isinstance(data["members"], list):
        raise ValidationError("members", f"must be a list of strings, got {_json_type(data['members'])}", line=line)
    request = request_from_mapping(data, line=line)
    if "at" not in data and default_at_ms is not None:
        request = replace(request, at_ms=default_at_ms)
    if "priority" not in data and default_priority != request.priority:
        request = replace(request, priority=default_priority)
    if "version" not in data and default_version is not None:
        request = replace(request, version=default_version)
    if "app" not in data and default_app is not None:
        request = replace(request, app=default_app)
    return request


def read_requests(
    lines: Iterable[str | bytes],
    *,
    default_at_ms: int | None = None,
    default_priority: str = "normal",
    default_version: int | None = None,
    default_app: str | None = None,
) -> Iterator[tuple[int, UnbanRequest]]:
    """Yield ``(line number, request)`` for every non-blank line; raise at the first bad one."""
    default_priority = validate_priority(default_priority, "--priority")
    for number, raw in enumerate(lines, start=1):
        data = parse_line(raw, number)
        if data is not None:
            yield (
                number,
                to_request(
                    data,
                    number,
                    default_at_ms=default_at_ms,
                    default_priority=default_priority,
                    default_version=default_version,
                    default_app=default_app,
                ),
            )


@dataclass
class Validated:
    """A whole input, validated: requests ready to store, and what they hold."""

    requests: list[UnbanRequest] = field(default_factory=list)
    lines: int = 0
    members: int = 0


def read_all(
    lines: Iterable[str | bytes],
    *,
    default_at_ms: int | None = None,
    default_priority: str = "normal",
    default_version: int | None = None,
    default_app: str | None = None,
    check_app: Callable[[str | None], object] | None = None,
) -> Validated:
    """Validate every line, then merge runs; any bad line raises (:class:`BadLines` for several), so nothing is stored.

    ``check_app`` (e.g. the deployment's app catalog) is asked about each line's app: an unknown one is
    a bad line too, with its number.
    """
    out = Validated()
    groups: dict[str, str] = {}  # one string object per group id, however many lines name it
    run: list[str] = []
    head: UnbanRequest | None = None
    errors: list[ValidationError] = []
    bad = 0
    requests = _checked_lines(
        lines,
        check_app,
        default_at_ms=default_at_ms,
        default_priority=validate_priority(default_priority, "--priority"),
        default_version=default_version,
        default_app=default_app,
    )
    for number, request in requests:
        if isinstance(request, ValidationError):
            bad += 1
            if len(errors) < BAD_LINES_SHOWN:
                errors.append(request)
            continue
        if bad:
            continue  # nothing will be stored: only the remaining lines' errors matter
        out.lines = number
        out.members += len(request.members)
        same = head is not None and (head.group_id, head.at_ms, head.priority, head.version, head.app) == (
            request.group_id,
            request.at_ms,
            request.priority,
            request.version,
            request.app,
        )
        if same and len(run) + len(request.members) <= MERGE_LIMIT:
            run.extend(request.members)
            continue
        if head is not None:
            out.requests.append(replace(head, members=tuple(run)))
        group_id = groups.setdefault(request.group_id, request.group_id)
        head = UnbanRequest(group_id, (), request.at_ms, request.priority, request.version, request.app)
        run = list(request.members)
    if bad == 1:
        raise errors[0]
    if bad:
        raise BadLines(errors, bad)
    if head is not None:
        out.requests.append(replace(head, members=tuple(run)))
    return out


def _checked_lines(
    lines: Iterable[str | bytes], check_app: Callable[[str | None], object] | None, **defaults: Any
) -> Iterator[tuple[int, UnbanRequest | ValidationError]]:
    """Each non-blank line's request, or its error (with its line number), in order."""
    for number, raw in enumerate(lines, start=1):
        try:
            data = parse_line(raw, number)
            if data is None:
                continue
            request = to_request(data, number, **defaults)
            if check_app is not None:
                check_app(request.app)
        except ValidationError as exc:
            yield number, exc if exc.line is not None else ValidationError(exc.field, exc.reason, line=number)
            continue
        yield number, request


def _json_reason(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    return str(exc).split(";")[0]


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
