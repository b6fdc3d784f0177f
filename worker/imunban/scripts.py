"""Load the ``.lua`` files beside a module, register each once per Redis client, and build their KEYS.

Every script is prefixed with ``lua/_lib.lua`` (shared helpers such as the server clock and the
group re-index), so each file holds exactly one atomic operation and no helper is written twice.

Line numbers: because ``_lib.lua`` and a newline come first, a Redis error's ``user_script:N``
is line ``N - lib_lines()`` of the script's own file (a smaller N is line N of ``_lib.lua``).
The demo's scripts (``imunban.demo``) have no ``_lib.lua`` and keep their line numbers.

KEYS: every script takes the keys it needs in one canonical order, :data:`KEY_ORDER`, and names
them in its header and in locals (``local K_STATS, K_META = KEYS[1], KEYS[2]``).
:data:`SCRIPT_KEYS` is that list for each script; ``tests/redis/test_lua_contracts.py`` checks it
against the headers. The per-group keys (``ready:{group}``, ``sched:{group}``) always come last, in
that order: once for a one-group script, or once per group for a script over many groups, which
gets the groups through :class:`GroupArgs`.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib import resources

import redis
from redis.commands.core import Script

from imunban.keys import Keys

LIB = "_lib"

#: The one order of KEYS: a script takes any of these it needs in this relative order.
KEY_ORDER = (
    "schedidx", "groups", "stats", "high", "meta", "inflight", "leases", "versions", "version_ends", "outcomes",
    "trace", "dead", "dead_info", "dispatch", "hold", "pause", "limit", "probed", "holds", "ok_groups", "replies",
    "reply_expiry", "limiter", "wake", "throughput",
)  # fmt: skip
#: Keys of one group, after every key of KEY_ORDER, always in this order.
PER_GROUP = ("ready", "sched")

#: Each script's KEYS, in order, by their names in :class:`Keys` (``sched`` is ``Keys.sched_group``).
#: ``limiter`` is ``Keys.limiter(sdkappid)``, which the limiter passes itself.
SCRIPT_KEYS: dict[str, tuple[str, ...]] = {
    "enqueue": (
        "schedidx", "groups", "stats", "high", "meta", "inflight", "leases", "versions", "version_ends", "trace",
        "wake", *PER_GROUP,
    ),  # per group, many groups
    "cancel": (
        "schedidx", "groups", "stats", "high", "meta", "inflight", "leases", "versions", "version_ends", "trace",
        "dead", "dead_info", *PER_GROUP,
    ),
    "reschedule": (
        "schedidx", "groups", "stats", "high", "meta", "versions", "version_ends", "trace", "wake", *PER_GROUP,
    ),
    "claim": (
        "groups", "stats", "high", "meta", "inflight", "leases", "hold", "pause", "replies", "reply_expiry", "ready",
    ),
    "ack": (
        "stats", "meta", "inflight", "leases", "versions", "version_ends", "outcomes", "trace", "dead", "dead_info",
        "ok_groups", "replies", "reply_expiry",
    ),
    "requeue": (
        "schedidx", "groups", "stats", "high", "meta", "inflight", "leases", "replies", "reply_expiry", "wake",
        *PER_GROUP,
    ),
    "group_gone": (
        "schedidx", "groups", "stats", "high", "meta", "versions", "version_ends", "outcomes", "trace", *PER_GROUP,
    ),
    "promote": ("schedidx", "groups", "stats", "high", *PER_GROUP),  # many groups
    "reap": ("schedidx", "stats", "high", "inflight", "leases", *PER_GROUP),  # many groups
    "dead_replay": (
        "schedidx", "stats", "high", "inflight", "versions", "version_ends", "dead", "dead_info", *PER_GROUP,
    ),  # many groups
    "dispatch": ("dispatch", "hold", "pause", "replies", "reply_expiry"),
    "dispatch_touch": ("dispatch",),
    "dispatch_finish": ("dispatch", "wake"),
    "stats_incr": ("stats",),
    "forget_versions": ("versions", "version_ends"),
    "forget_replies": ("replies", "reply_expiry"),
    "hold_set": ("hold",),
    "hold_probe": ("groups", "hold", "probed"),
    "hold_release": ("hold", "probed", "holds"),
    "probe_now": ("hold",),
    "evidence_10007": ("meta", "ok_groups"),
    "limiter_reserve": ("stats", "inflight", "leases", "hold", "pause", "limiter"),  # lease, hold, pause; pace
    "pause": ("outcomes", "pause"),
    "resume": ("outcomes", "pause", "holds", "wake"),
    "limit_set": ("outcomes", "limit"),
    "limit_reset": ("outcomes", "limit"),
    "limiter_penalize": ("limiter",),
    "migrate": ("stats",),  # then (old name, new name) pairs of the keys it moves: migrate.py builds them
    "trace": (
        "stats", "high", "meta", "inflight", "leases", "versions", "trace", "dead", "dead_info", *PER_GROUP,
    ),  # one group
    "dead_clear": ("dead", "dead_info"),
    "dead_scan": ("dead", "dead_info"),
    "dead_purge": ("dead", "dead_info"),
    "throughput_sample": ("stats", "throughput"),
}  # fmt: skip


@cache
def _split(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    spec = SCRIPT_KEYS[name]
    return tuple(k for k in spec if k not in PER_GROUP), tuple(k for k in spec if k in PER_GROUP)


def script_keys(keys: Keys, name: str, groups: Iterable[str] = ()) -> list[str]:
    """The KEYS of script ``name``: its named keys, then its per-group keys for each of ``groups``."""
    common, per_group = _split(name)
    out: list[str] = [getattr(keys, key) for key in common]
    for group_id in groups:
        out += (keys.ready(group_id) if key == "ready" else keys.sched_group(group_id) for key in per_group)
    return out


class ScriptKeys:
    """:func:`script_keys` of one script for one :class:`Keys`, its named keys built once (the delivery hot path)."""

    __slots__ = ("_common", "_keys", "_per_group")

    def __init__(self, keys: Keys, name: str) -> None:
        self._keys = keys
        self._common = script_keys(keys, name)
        self._per_group = _split(name)[1]

    def __call__(self, groups: Iterable[str] = ()) -> list[str]:
        out = list(self._common)
        for group_id in groups:
            out += (
                self._keys.ready(group_id) if k == "ready" else self._keys.sched_group(group_id)
                for k in self._per_group
            )
        return out


class GroupArgs:
    """The ARGV packing of scripts over many groups (enqueue, reap, dead_replay).

    ARGV carries ``n, group id 1 .. group id n`` and then tuples that start with their group's
    1-based index; KEYS end with each group's (ready, sched) pair in the same group order
    (``script_keys(keys, name, packed.groups)``).
    """

    __slots__ = ("groups", "tuples")

    def __init__(self) -> None:
        #: group id -> 1-based index, in the order first seen.
        self.groups: dict[str, int] = {}
        self.tuples: list[str | int] = []

    def add(self, group_id: str, members: Iterable[str], *fields: str | int) -> None:
        """Append ``(group index, member, *fields)`` for each member of the group."""
        index = self.groups.setdefault(group_id, len(self.groups) + 1)
        for member in members:
            self.tuples += (index, member, *fields)

    def argv(self) -> list[str | int]:
        return [len(self.groups), *self.groups, *self.tuples]


@cache
def lua_source(package: str, name: str) -> str:
    """Return ``_lib.lua`` + ``{name}.lua`` from ``{package}/lua`` (cached: files never change at run time)."""
    return _lib_prefix(package) + (resources.files(package) / "lua" / f"{name}.lua").read_text(encoding="utf-8")


@cache
def _lib_prefix(package: str) -> str:
    lib = resources.files(package) / "lua" / f"{LIB}.lua"
    return lib.read_text(encoding="utf-8") + "\n" if lib.is_file() else ""


def lib_lines(package: str = "imunban") -> int:
    """How many lines come before a script's first line in its loaded source (see the module docstring)."""
    return _lib_prefix(package).count("\n")


def register(client: redis.Redis, name: str, package: str = "imunban") -> Script:
    """Register one script with ``client``; redis-py runs it by EVALSHA and falls back to EVAL on NOSCRIPT."""
    return client.register_script(lua_source(package, name))
