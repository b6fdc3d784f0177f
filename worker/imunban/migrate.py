"""Move a store of the single-app layout (``prefix:name`` keys) under one app (``{prefix:app}:name``).

Before several apps, every key was the prefix, a colon and its name; now each carries its app's
hash tag first (see the data model in keys.py). A worker runs :func:`migrate_single_app_layout` at start (and ``imunban
migrate`` runs it by hand): it finds the old keys with SCAN and moves them, a few hundred per atomic
script call, to the ``default`` app (or the app named). It is idempotent (a second run finds nothing),
counted (``migrated_keys`` in the app's stats) and logged.

A key whose new name is still free is renamed: exact. A new name that already holds data (a producer
of the new version wrote before any worker migrated) is merged, never overwritten, so no pending
request is lost (lua/migrate.lua, one atomic call per chunk of keys): group indexes keep the earlier
time, counters add up; a hold, a limiter or an outcome stream of the new layout wins over the old
one. A request pending in both layouts (in the same set, or ready in one and scheduled in the other)
keeps one copy, the new layout's, and the ``ready``/``scheduled`` gauges are corrected in the same
call, so they stay equal to the sets. Versions merge by maximum, a cancel winning a tie; then each
request both layouts versioned is settled by the merged version (:func:`_settle`): a merged cancel
ends whatever copy is still pending (a stale instruction of the other layout does not survive an
applied cancel), and where the old layout's higher version lost its pending copy to a stale one of
the new layout, its own due time is applied again. Left as it is: a pending copy of the old layout
whose request the new layout ended with a higher version that was then delivered (an unban sent
again). Stop old workers and producers before upgrading and no merge case arises.

The old layout never lived on a Redis Cluster (it could not: its keys had no hash tag), so on a
cluster there is nothing to migrate and nothing is scanned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis

from imunban.connection import is_cluster, translated
from imunban.keys import DEFAULT_APP, HIGH_BAND_MS, Keys, request_id, split_request_id
from imunban.scripts import register
from imunban.settings import LingerPolicy
from imunban.store import Store
from imunban.validation import UnbanRequest

log = logging.getLogger("imunban.migrate")

#: Key pairs per script call: atomic per call, short enough not to stall Redis for long.
CHUNK_PAIRS = 500
#: SCAN page size.
SCAN_COUNT = 1_000
#: How long a worker waits for another one's migration before it goes on (it then migrates what is left).
LOCK_MS = 120_000

#: Fixed keys -> how a key already present under the new name is merged (lua/migrate.lua; "keep": the new one wins).
MERGE_MODES: dict[str, str] = {
    "schedidx": "min", "groups": "min", "inflight": "nx", "leases": "nx", "meta": "nx", "high": "nx",
    "dead": "nx", "dead_info": "nx", "outcomes": "keep", "stats": "sum", "hold": "keep", "dispatch": "nx",
    "probed": "keep", "holds": "nx", "ok_groups": "keep", "versions": "version", "version_ends": "nx",
    "replies": "nx", "reply_expiry": "nx",
}  # fmt: skip

#: One move: (old key, new key, merge mode).
Pair = tuple[str, str, str]


@dataclass(frozen=True)
class MigrationReport:
    """What one run moved: keys renamed, keys merged into existing ones, per-group keys among them."""

    app: str
    renamed: int = 0
    merged: int = 0
    group_keys: int = 0
    #: Requests both layouts versioned whose merged instruction was applied again (_settle).
    settled: int = 0

    @property
    def moved(self) -> int:
        return self.renamed + self.merged


def legacy_pairs(client: redis.Redis, prefix: str, app: str = DEFAULT_APP) -> Iterator[list[Pair]]:
    """The keys of the single-app layout to move, as units that go into one script call together:
    each fixed key alone, each group's ready and scheduled sets together (lua/migrate.lua), each limiter alone."""
    old, new = Keys.single_app_layout(prefix), Keys(prefix, app)
    for name, mode in MERGE_MODES.items():
        yield [(getattr(old, name), getattr(new, name), mode)]
    groups: dict[str, None] = {}  # ordered, without repeats: a group may have both sets
    for pattern, start in ((old.ready_pattern(), len(old.ready(""))), (old.sched_pattern(), len(old.sched_group("")))):
        for key in client.scan_iter(match=pattern, count=SCAN_COUNT):
            groups.setdefault(key[start:])
    for group in groups:
        yield [(old.ready(group), new.ready(group), "ready"), (old.sched_group(group), new.sched_group(group), "sched")]
    start = len(old.limiter(""))
    for key in client.scan_iter(match=old.limiter_pattern(), count=SCAN_COUNT):
        yield [(key, new.limiter(key[start:]), "keep")]


def has_legacy_keys(client: redis.Redis, prefix: str) -> bool:
    """Whether the single-app layout is there, or a move of it was cut short (cheap: no SCAN).

    Its fixed keys go first in a move and the ``migrating`` marker stays until the last group key
    went, so these few keys tell without scanning the keyspace at every worker start.
    """
    if is_cluster(client):
        return False
    old = Keys.single_app_layout(prefix)
    with translated("migrate"):
        return bool(client.exists(old.groups, old.schedidx, old.stats, old.inflight, old.dead, Keys(prefix).migrating))


def migrate_single_app_layout(client: redis.Redis, prefix: str, app: str = DEFAULT_APP) -> MigrationReport:
    """Move every key of the single-app layout under ``app`` (idempotent; see the module docstring)."""
    if is_cluster(client):
        return MigrationReport(app)
    new = Keys(prefix, app)
    with translated("migrate"):
        if not has_legacy_keys(client, prefix):
            return MigrationReport(app)
        token = f"{time.time_ns()}"
        _wait_for_lock(client, new.migrate_lock, token)
        try:
            client.set(new.migrating, app)
            report = _move_all(client, prefix, app)
            client.delete(new.migrating)  # only now: a run cut short is finished by the next start
        finally:
            if client.get(new.migrate_lock) == token:
                client.delete(new.migrate_lock)
        if report.moved:
            client.hincrby(new.stats, "migrated_keys", report.moved)
            log.warning(
                "moved the single-app layout of prefix %r to app %r: %d key(s) renamed, %d merged into keys "
                "already there (%d of them a group's ready or scheduled members); %d request(s) both layouts "
                "versioned settled by the merged version",
                prefix, app, report.renamed, report.merged, report.group_keys, report.settled,
            )  # fmt: skip
    return report


def _wait_for_lock(client: redis.Redis, lock: str, token: str) -> None:
    """Take the migration lock; if another worker holds it, wait for it (then finish what it left)."""
    deadline = time.monotonic() + LOCK_MS / 1000
    while not client.set(lock, token, nx=True, px=LOCK_MS):
        if time.monotonic() > deadline:
            log.warning("another process has been migrating for %d s; migrating alongside it", LOCK_MS // 1000)
            return
        time.sleep(0.2)


@dataclass
class _Moved:
    """What the script calls of one run said: counts, and the requests to settle by version afterwards."""

    renamed: int = 0
    merged: int = 0
    group_keys: int = 0
    #: request id -> (merged version record, whether the old layout's version won)
    decided: dict[str, tuple[str, bool]] = field(default_factory=dict)
    #: request id -> (the old copy's set, "ready" or "sched", and its score) where both layouts held it pending
    collisions: dict[str, tuple[str, float]] = field(default_factory=dict)


def _move_all(client: redis.Redis, prefix: str, app: str) -> MigrationReport:
    script = register(client, "migrate")
    moved = _Moved()
    chunk: list[Pair] = []
    old = Keys.single_app_layout(prefix)
    stats = Keys(prefix, app).stats

    def flush() -> None:
        keys = [stats, *(key for old_key, new_key, _ in chunk for key in (old_key, new_key))]
        renamed, merged, group_keys, decided, collisions = script(keys=keys, args=[mode for _, _, mode in chunk])
        moved.renamed += int(renamed)
        moved.merged += int(merged)
        moved.group_keys += int(group_keys)
        for i in range(0, len(decided), 3):
            moved.decided[decided[i]] = (decided[i + 1], int(decided[i + 2]) == 1)
        for i in range(0, len(collisions), 3):
            old_key, _, mode = chunk[int(collisions[i]) - 1]
            group = old_key[len(old.ready("") if mode == "ready" else old.sched_group("")) :]
            moved.collisions[request_id(group, collisions[i + 1])] = (mode, float(collisions[i + 2]))
        chunk.clear()

    for unit in legacy_pairs(client, prefix, app):
        chunk += unit  # a group's two sets always go into one call: each sees the other (migrate.lua)
        if len(chunk) >= CHUNK_PAIRS:
            flush()
    if chunk:
        flush()
    settled = _settle(client, Keys(prefix, app), moved)
    return MigrationReport(app, moved.renamed, moved.merged, moved.group_keys, settled)


def _settle(client: redis.Redis, keys: Keys, moved: _Moved) -> int:
    """Apply the merged version of each request both layouts versioned, through the normal scripts.

    A merged cancel ends every copy still pending (cancel.lua at that version: a cancel wins the tie).
    Where the old layout's higher version won but its pending copy gave way to the new layout's (the
    merge keeps the new copy), that instruction's own due time comes back (enqueue.lua at that version).
    """
    store = Store(client, keys, linger=LingerPolicy(0))
    settled = 0
    for rid, (record, old_won) in moved.decided.items():
        group, member = split_request_id(rid)
        version = int(record.rstrip("c"))
        if record.endswith("c"):
            settled += store.cancel(group, [member], version=version)
        elif old_won and rid in moved.collisions:
            mode, score = moved.collisions[rid]
            high = score < 0 if mode == "ready" else bool(client.hexists(keys.high, rid))
            due_ms = int(score + HIGH_BAND_MS if score < 0 else score)
            priority = "high" if high else "normal"
            settled += store.enqueue([UnbanRequest(group, (member,), due_ms, priority, version=version)]).stored
    return settled
