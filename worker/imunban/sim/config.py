"""The simulator's fault knobs (:class:`SimConfig`) and their validation, shared by the API and the CLI."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SimConfig", "validate_changes"]


@dataclass(frozen=True)
class SimConfig:
    """Every fault knob; change them at runtime with :meth:`Simulator.configure` or POST /_admin/config."""

    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0  # uniform extra delay in [0, jitter)
    http_502_rate: float = 0.0
    hang_rate: float = 0.0
    hang_s: float = 6.0  # past the client's default 5 s read timeout; the call still takes effect
    error_10002_rate: float = 0.0
    burst_60007: int = 0  # the next N authenticated calls answer 60007 (counts down)
    global_error: int | None = None  # answered for every authenticated call, e.g. 10007; switch at run time
    # group id -> ErrorCode answered for every call of that group (after the global error: a
    # configuration error comes first, as at the real API), e.g. an unknown code forever.
    group_errors: Mapping[str, int] = dataclasses.field(default_factory=dict)
    group_delay_ms: Mapping[str, float] = dataclasses.field(default_factory=dict)  # extra delay per group
    poison_members: frozenset[str] = frozenset()  # any batch holding one answers 10004
    rate_limit: int = 200  # accepted calls per sliding 1 s window; beyond it 60007
    known_groups: Mapping[str, str] | None = None  # group id -> type; non-AVChatRoom answers 10007
    unknown_groups_gone: bool = False  # groups not in known_groups answer 10010
    seed: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["poison_members"] = sorted(self.poison_members)
        data["known_groups"] = None if self.known_groups is None else dict(self.known_groups)
        data["group_errors"] = dict(self.group_errors)
        data["group_delay_ms"] = dict(self.group_delay_ms)
        return data


def _rate(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1e6:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


def _count(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _optional_int(name: str, value: Any) -> int | None:
    return None if value is None else _count(name, value)


def _members(name: str, value: Any) -> frozenset[str]:
    if isinstance(value, str) or not all(isinstance(m, str) for m in value):
        raise ValueError(f"{name} must be a list of strings")
    return frozenset(value)


def _groups(name: str, value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"{name} must be an object of group id -> group type")
    return dict(value)


def _group_errors(name: str, value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{name} must be an object of group id -> ErrorCode")
    return {group: _count(f"{name}[{group!r}]", code) for group, code in value.items()}


def _group_delays(name: str, value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{name} must be an object of group id -> milliseconds")
    return {group: _non_negative(f"{name}[{group!r}]", ms) for group, ms in value.items()}


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


_VALIDATORS: dict[str, Callable[[str, Any], Any]] = {
    "latency_ms": _non_negative,
    "latency_jitter_ms": _non_negative,
    "http_502_rate": _rate,
    "hang_rate": _rate,
    "hang_s": _non_negative,
    "error_10002_rate": _rate,
    "burst_60007": _count,
    "global_error": _optional_int,
    "group_errors": _group_errors,
    "group_delay_ms": _group_delays,
    "poison_members": _members,
    "rate_limit": lambda n, v: _count(n, v, 1),
    "known_groups": _groups,
    "unknown_groups_gone": _flag,
    "seed": _optional_int,
}


def validate_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Check option -> value changes (from Python or JSON); raise ValueError naming the bad one."""
    clean: dict[str, Any] = {}
    for name, value in changes.items():
        validator = _VALIDATORS.get(name)
        if validator is None:
            raise ValueError(f"unknown simulator option {name!r}")
        clean[name] = validator(name, value)
    return clean
