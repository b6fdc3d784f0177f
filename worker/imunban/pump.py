"""The pump: the periodic work every worker node runs (promote, reap, dispatch, probe).

It is safe to run on every node at once: each step is an atomic script that re-checks its own
conditions, and dispatch markers make sure each (group, slot) has at most one delivery task.
A lost task message only costs the marker's ttl before the slot is dispatched again, so no
wake-up is lost; markers are bounded in number, so there are no duplicate storms either.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis

from imunban.connection import translated
from imunban.heartbeat import Heartbeat
from imunban.hold import PROBE_SCAN_GROUPS, Hold
from imunban.keys import MAX_MEMBERS, Keys, marker_id
from imunban.schedule import Scheduler
from imunban.scripts import register, script_keys
from imunban.store import Store

log = logging.getLogger(__name__)

#: submit(group_id, slot, probe): hand one delivery run to whatever executes it (a Celery task).
Submit = Callable[[str, int, bool], None]


@dataclass(frozen=True)
class PumpConfig:
    #: Most delivery tasks working one group at once (a raid's 20,000 expiries in one group).
    slots_per_group: int = 8
    #: Most dispatch markers alive at once: bounds tasks waiting in the broker.
    max_markers: int = 64
    #: A dispatched task that neither starts nor refreshes its marker within this is presumed lost.
    #: Short enough that a killed worker's slots come back quickly, long enough to cover a task's
    #: wait in the broker behind at most ``max_markers`` runs of a few seconds each.
    marker_ttl_ms: int = 15_000
    #: Groups looked at per tick (more than the markers that can be alive is wasted work).
    scan_groups: int = 64
    #: Reap expired leases every this many ticks.
    reap_every: int = 10
    #: Most promote chunks per tick, so one tick never runs long behind a huge due backlog.
    promote_rounds: int = 20
    #: While held, a probe goes to the group probed longest ago among this many first waiting groups.
    probe_scan_groups: int = PROBE_SCAN_GROUPS


class Pump:
    """One node's periodic engine work; call :meth:`tick` every ~50 ms."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        store: Store,
        scheduler: Scheduler,
        hold: Hold,
        submit: Submit,
        config: PumpConfig | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.store = store
        self.scheduler = scheduler
        self.hold = hold
        self.submit = submit
        self.config = config or PumpConfig()
        self._ticks = 0
        self._dispatch = register(client, "dispatch")
        self._touch = register(client, "dispatch_touch")
        self.heartbeat = Heartbeat(client, keys)  # operators see this worker alive (imunban web)

    def tick(self) -> int:
        """Promote, reap (every few ticks), then dispatch or probe; returns tasks submitted."""
        self._ticks += 1
        self.heartbeat.beat()
        self.scheduler.promote_all(max_rounds=self.config.promote_rounds)
        # The first tick reaps, then every reap_every-th (also when reap_every is 1).
        if (self._ticks - 1) % self.config.reap_every == 0:
            reaped = self.scheduler.reap()
            if reaped:
                log.warning("returned %d request(s) whose lease expired (a worker died or stalled)", reaped)
            # Versions of requests ended longer ago than IMUNBAN_VERSION_MEMORY_S: keeps that memory bounded.
            self.scheduler.forget_versions()
        if self.hold.get() is not None:
            return self._probe()
        return self.dispatch()

    def dispatch(self) -> int:
        """Mark and submit delivery slots for claimable groups, oldest first."""
        cfg = self.config
        groups = self.store.claimable_groups(cfg.scan_groups)
        if not groups:
            return 0
        pairs: list[str | int] = []
        for group_id, ready in groups:
            pairs += (group_id, min(cfg.slots_per_group, max(1, math.ceil(ready / MAX_MEMBERS))))
        with translated("dispatch"):
            # A fresh call id: a replay of this call (redis-py's Retry) gets the slots the first send marked.
            marked = self._dispatch(
                keys=script_keys(self.keys, "dispatch"),
                args=[cfg.marker_ttl_ms, cfg.max_markers, uuid.uuid4().hex, *pairs],
            )
        for i in range(0, len(marked), 2):
            self.submit(str(marked[i]), int(marked[i + 1]), False)
        return len(marked) // 2

    def _probe(self) -> int:
        # The script picks the group probed longest ago among the first waiting ones (lingering
        # ones too), so probes rotate and one failing head batch cannot keep the hold forever.
        group_id = self.hold.try_probe(self.config.probe_scan_groups)
        if group_id is None:
            return 0
        log.info("probing the API while delivery is held (group %r)", group_id)
        self.submit(group_id, -1, True)
        return 1

    def touch(self, group_id: str, slot: int) -> bool:
        """Refresh a running task's marker; False if it had expired."""
        if slot < 0:
            return True
        with translated("dispatch"):
            return bool(
                self._touch(
                    keys=script_keys(self.keys, "dispatch_touch"),
                    args=[marker_id(group_id, slot), self.config.marker_ttl_ms],
                )
            )

    def finish(self, group_id: str, slot: int) -> None:
        """A task is done with its slot: the group may be dispatched again at once."""
        if slot < 0:
            return
        with translated("dispatch"):
            self.client.zrem(self.keys.dispatch, marker_id(group_id, slot))
