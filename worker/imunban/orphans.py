"""Apps whose requests are still in Redis but that this deployment no longer serves (removed or renamed).

Nothing delivers them, so they are said out loud: a worker logs a warning at start, and ``status``
(CLI, console, ``/api/status``) lists them under ``orphaned_apps``. Workers record every app they
serve in ``Keys.apps_seen`` (and, once at start, every app whose keys they find), so ``status``
needs one SMEMBERS, never a scan.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import cast

import redis

from imunban.connection import translated
from imunban.errors import RedisFullError
from imunban.keys import Keys

log = logging.getLogger(__name__)

#: SCAN page size when a worker looks for the apps whose keys are in Redis.
SCAN_COUNT = 1_000


def record_apps(client: redis.Redis, prefix: str, served: Iterable[str]) -> set[str]:
    """Add ``served`` and every app with a ``stats`` key under ``prefix`` to the registry; return all of them."""
    keys = Keys(prefix)
    names = set(served)
    with translated("record apps"):
        for key in client.scan_iter(match=keys.stats_pattern_of_every_app(), count=SCAN_COUNT):
            name = keys.app_of_stats_key(str(key))
            if name is not None:
                names.add(name)
    try:
        with translated("record apps"):
            client.sadd(keys.apps_seen, *sorted(names))
    except RedisFullError:
        # A worker starting on a full Redis must start (draining is what frees memory): the registry waits.
        log.warning("Redis is full: the registry of apps is updated at the next worker start")
    return names


def orphaned_apps(client: redis.Redis, prefix: str, served: Iterable[str]) -> dict[str, dict[str, int]]:
    """Apps in the registry but not in ``served`` that still hold requests: their queued, scheduled, in flight, dead."""
    registry = Keys(prefix)
    with translated("orphaned apps"):
        others = sorted(set(cast(set[str], client.smembers(registry.apps_seen))) - set(served))
        found: dict[str, dict[str, int]] = {}
        for name in others:
            keys = Keys(prefix, name)
            pipe = client.pipeline(transaction=False)  # reads only: works on a full Redis
            pipe.hmget(keys.stats, ["ready", "scheduled"])
            pipe.zcard(keys.inflight)
            pipe.zcard(keys.dead)
            (ready, scheduled), in_flight, dead = pipe.execute()
            counts = {
                "queued": int(ready or 0),
                "scheduled": int(scheduled or 0),
                "in_flight": int(in_flight),
                "dead": int(dead),
            }
            if any(counts.values()):
                found[name] = counts
    return found
