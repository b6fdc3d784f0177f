"""One row of the benchmark's verdict table, and the small formatters every row builder shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

OK, MISS, INFO = "ok", "MISS", ""


@dataclass(frozen=True)
class Row:
    scenario: str
    metric: str
    value: str
    target: str
    verdict: str  # OK, MISS, or INFO (no target)


def num(value: Any, spec: str = ",.0f", suffix: str = "") -> str:
    """``value`` formatted with ``spec``; an em dash when it was not measured."""
    return "—" if value is None else f"{value:{spec}}{suffix}"


def cpu_text(per_call_s: Any, members_per_call: Any) -> str:
    """CPU seconds per call as "x.xx ms / y.yy ms" (per call / per member)."""
    if per_call_s is None:
        return "—"
    per_member = f"{1000 * per_call_s / members_per_call:.2f} ms" if members_per_call else "—"
    return f"{1000 * per_call_s:.2f} ms / {per_member}"


def check(value: Any, test: Callable[[Any], bool]) -> str:
    """OK when ``test(value)`` holds; MISS when it does not, or when nothing was measured."""
    return MISS if value is None else (OK if test(value) else MISS)
