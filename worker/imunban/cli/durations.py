"""Parse human durations for ``--in``: ``90s``, ``15m``, ``2h``, ``3d``, ``1h30m`` or plain seconds. Pure."""

from __future__ import annotations

import math
import re

from imunban.errors import ValidationError

#: Seconds per unit suffix.
UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
#: Longer than this is a mistake (the validators refuse due times after 2200 anyway).
MAX_DURATION_S = 100 * 365 * 86_400

_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)([smhdw])")


def parse_duration(text: str, field: str = "--in") -> float:
    """Seconds in ``text``: a non-negative number of seconds, or number+unit parts (``1h30m``, ``90s``).

    Raises :class:`~imunban.errors.ValidationError` naming ``field`` for anything else.
    """
    value = text.strip().lower()
    if not value:
        raise ValidationError(field, "must not be empty; use e.g. 90s, 15m, 2h, 3d or plain seconds")
    seconds = _plain_seconds(value, field)
    if seconds is None:
        seconds = _with_units(value, field)
    if seconds > MAX_DURATION_S:
        raise ValidationError(field, f"must be at most 100 years, got {text!r}")
    return seconds


def _plain_seconds(value: str, field: str) -> float | None:
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?", value):
        return None
    seconds = float(value)
    if not math.isfinite(seconds):
        raise ValidationError(field, "must be a finite duration")
    if seconds < 0:
        raise ValidationError(field, f"must not be negative, got {value!r}")
    return seconds


def _with_units(value: str, field: str) -> float:
    total = 0.0
    position = 0
    seen: set[str] = set()
    for match in _PART.finditer(value):
        if match.start() != position or match.group(2) in seen:
            break
        seen.add(match.group(2))
        total += float(match.group(1)) * UNITS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(value):
        raise ValidationError(field, f"is not a duration: {value!r}; use e.g. 90s, 15m, 2h, 3d, 1h30m or seconds")
    return total
