"""Move a store of the single-app layout (``prefix:name`` keys) under one app (``{prefix:app}:name``).

Before several apps, every key was the prefix, a colon and its name; now each carries its app's
hash tag first (see the data model in keys.py). A worker runs :func:`migrate_single_app_layout` at start (and ``imunban
migrate`` runs it by hand): it finds the old keys with SCAN and moves them, a few hundred per atomic
script call, to the ``default`` app (or the app named). It is idempotent (a second run finds nothing),
counted (``migrated_keys`` in the app's stats) and logged.

A key whose new name is still free is renamed: exact. A new name that already holds data (a producer
of the new version wrote before any worker migrated) is merged, never overwritten, so no pending
request is lost: a member in the same set of both keeps the newer instruction (the new layout's),
group indexes keep the earlier time, counters add up; a hold, a limiter or an outcome stream of the
new layout wins over the old one. Only in that merge case can a member be ready in one layout and
scheduled in the other: it then stays in both (an unban sent twice is harmless) and the
``ready``/``scheduled`` gauges count it twice. Stop old workers and producers before upgrading and
this case never arises.

The old layout never lived on a Redis Cluster (it could not: its keys had no hash tag), so on a
cluster there is nothing to migrate and nothing is scanned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import redis

from imunban.connection import is_cluster, translated
from imunban.keys import DEFAULT_APP, Keys

log = logging.getLogger("imunban.migrate")

#: Key pairs per script call: atomic per call, short enough not to stall Redis for long.
CHUNK_PAIRS = 500
#: SCAN page size.
SCAN_COUNT = 1_000
#: How long a worker waits for another one's migration before it goes on (it then migrates what is left).
LOCK_MS = 120_000

#: Fixed keys -> how a key already present under the new name is merged ("keep": the new one wins).
MERGE_MODES: dict[str, str] = {
    "schedidx": "min", "groups": "min", "inflight": "nx", "leases": "nx", "meta": "nx", "high": "nx",
    "dead": "nx", "dead_info": "nx", "outcomes": "keep", "stats": "sum", "hold": "keep", "dispatch": "nx",
    "probed": "keep", "holds": "nx", "ok_groups": "keep", "versions": "nx", "version_ends": "nx",
    "replies": "nx", "reply_expiry": "nx",
}  # fmt: skip

#: KEYS: old1, new1, old2, new2, ...; ARGV[i]: the merge mode of pair i. Returns {renamed, merged}.
MIGRATE_LUA = """
local renamed, merged = 0, 0
for i = 1, #KEYS, 2 do
  local old, new, mode = KEYS[i], KEYS[i + 1], ARGV[(i + 1) / 2]
  local kind = redis.call('TYPE', old)['ok']
  if kind ~= 'none' then
    if redis.call('EXISTS', new) == 0 then
      redis.call('RENAME', old, new)
      renamed = renamed + 1
    else
      if mode ~= 'keep' and kind == 'zset' then
        local flag = mode == 'min' and 'LT' or 'NX'
        local items = redis.call('ZRANGE', old, 0, -1, 'WITHSCORES')
        for j = 1, #items, 2 do redis.call('ZADD', new, flag, items[j + 1], items[j]) end
      elseif mode ~= 'keep' and kind == 'hash' then
        local items = redis.call('HGETALL', old)
        for j = 1, #items, 2 do
          if mode == 'sum' and tonumber(items[j + 1]) and not string.find(items[j + 1], '[.eE]') then
            redis.call('HINCRBY', new, items[j], items[j + 1])
          else
            redis.call('HSETNX', new, items[j], items[j + 1])
          end
        end
      end
      redis.call('DEL', old)
      merged = merged + 1
    end
  end
end
return {renamed, merged}
"""


@dataclass(frozen=True)
class MigrationReport:
    """What one run moved: keys renamed, keys merged into existing ones, per-group keys among them."""

    app: str
    renamed: int = 0
    merged: int = 0
    group_keys: int = 0

    @property
    def moved(self) -> int:
        return self.renamed + self.merged


def legacy_pairs(client: redis.Redis, prefix: str, app: str = DEFAULT_APP) -> Iterator[tuple[str, str, str]]:
    """(old key, new key, merge mode) of every key of the single-app layout that exists now."""
    old, new = Keys.single_app_layout(prefix), Keys(prefix, app)
    for name, mode in MERGE_MODES.items():
        yield getattr(old, name), getattr(new, name), mode
    for pattern, start, build, mode in (
        (old.sched_pattern(), len(old.sched_group("")), new.sched_group, "nx"),
        (old.ready_pattern(), len(old.ready("")), new.ready, "nx"),
        (old.limiter_pattern(), len(old.limiter("")), new.limiter, "keep"),
    ):
        for key in client.scan_iter(match=pattern, count=SCAN_COUNT):
            yield key, build(key[start:]), mode


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
                "already there (%d of them a group's ready or scheduled members)",
                prefix, app, report.renamed, report.merged, report.group_keys,
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


def _move_all(client: redis.Redis, prefix: str, app: str) -> MigrationReport:
    script = client.register_script(MIGRATE_LUA)
    renamed = merged = group_keys = 0
    chunk: list[tuple[str, str, str]] = []
    old = Keys.single_app_layout(prefix)
    per_group = (old.sched_group(""), old.ready(""))

    def flush() -> None:
        nonlocal renamed, merged
        keys = [key for old, new, _ in chunk for key in (old, new)]
        got = script(keys=keys, args=[mode for _, _, mode in chunk])
        renamed += int(got[0])
        merged += int(got[1])
        chunk.clear()

    for pair in legacy_pairs(client, prefix, app):
        chunk.append(pair)
        group_keys += pair[0].startswith(per_group)
        if len(chunk) >= CHUNK_PAIRS:
            flush()
    if chunk:
        flush()
    return MigrationReport(app, renamed, merged, group_keys)
