"""The pump: the periodic work every worker node runs (promote, reap, dispatch, probe).

It is safe to run on every node at once: each step is an atomic script that re-checks its own
conditions, and dispatch markers make sure each (group, slot) has at most one delivery task.
A lost task message only costs the marker's ttl before the slot is dispatched again, so no
wake-up is lost; markers are bounded in number, so there are no duplicate storms either.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis

from imunban.connection import is_cluster, server_time_ms, translated
from imunban.heartbeat import Heartbeat
from imunban.hold import PROBE_SCAN_GROUPS, Hold
from imunban.keys import MAX_MEMBERS, Keys, marker_id
from imunban.pause import Pause
from imunban.schedule import Scheduler
from imunban.scripts import register, script_keys
from imunban.store import Store

log = logging.getLogger(__name__)

#: submit(app, group_id, slot, probe): hand one delivery run of one app to whatever executes it (a Celery task).
Submit = Callable[[str, str, int, bool], None]

#: While promotion is behind (a due backlog bigger than one tick's promote_rounds), tick again this soon.
BUSY_TICK_S = 0.05
#: While claimable work runs, the longest sleep. Running tasks serve claimable groups (a run moves on to
#: the oldest one), a task that finishes wakes the pump (``finish``) and new work wakes it too, so this
#: only bounds how late a slot freed without a finish (a lost task's marker expiring) is seen again and
#: how often leases are reaped while busy (every PumpConfig.reap_every ticks).
BUSY_MAX_S = 0.5
#: The longest the pump sleeps when nothing is due: bounds how late a lost task's slot, an expired
#: lease or a hold's probe is noticed, and costs a handful of round trips per second when idle.
IDLE_TICK_S = 1.0
#: Never sleep less than this between ticks (a due time a hair ahead would spin otherwise).
MIN_TICK_S = 0.002
#: The BLPOP's own timeout runs this much past the alarm: it only matters if the alarm failed.
ALARM_SLACK_S = 0.2
#: An alarm token nobody popped (the wait ended first) expires after this.
ALARM_TTL_MS = 1_000


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
    """One node's engine work: call :meth:`run_once` in a loop (a tick, then a wait for a wake-up).

    The pump sleeps until the next due time (a lingering group's, a scheduled request's), at most
    IDLE_TICK_S, and an enqueue or requeue that makes work due now wakes it at once (the wake list):
    no polling when idle, no timer between a request and its dispatch. While claimable work runs, a
    task that finishes its slot wakes it too (``finish``), so a busy pump does not poll either.
    """

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
        #: How long to wait (for a wake-up) before the next tick, as decided by the last tick.
        self.next_tick_s = 0.0
        self._dispatch = register(client, "dispatch")
        self._touch = register(client, "dispatch_touch")
        self._finish = register(client, "dispatch_finish")
        self.heartbeat = Heartbeat(client, keys)  # operators see this worker alive (imunban web)
        self.pause = Pause(client, keys)
        #: This pump's own alarm list (see :meth:`wait`); in the app's hash tag, like the wake list.
        self.pump_id = uuid.uuid4().hex[:12]
        self._alarm_key = keys.pump_alarm(self.pump_id)

    def run_once(self) -> float:
        """One tick, then wait for a wake-up or the next due time; returns the time waited (for tests)."""
        self.tick()
        return self.wait(self.next_tick_s)

    def wait(self, timeout_s: float) -> float:
        """Block until an enqueue or requeue wakes this pump (the wake list) or ``timeout_s`` passes.

        BLPOP, not a sleep: a request due now is dispatched within a round trip, not at the next timer.
        Redis serves a BLPOP *timeout* only at its next cron tick (``hz`` 10: up to 100 ms late), so a
        wait that ends at a due time is ended by this pump's own alarm: a timer that pushes a token to a
        list only this pump waits on, at the due time (a local duration, measured from the server clock).
        """
        timeout_s = max(MIN_TICK_S, timeout_s)
        alarm: threading.Timer | None = None
        if self.alarm_due(timeout_s):
            alarm = threading.Timer(timeout_s, self._ring)
            alarm.daemon = True
            alarm.start()
        try:
            with translated("pump wait"):
                block_s = timeout_s + ALARM_SLACK_S if alarm is not None else timeout_s
                woken = self.client.blpop([self.keys.wake, self._alarm_key], timeout=block_s)
        finally:
            if alarm is not None:
                alarm.cancel()
        return 0.0 if woken else timeout_s

    def alarm_due(self, timeout_s: float) -> bool:
        """Whether a wait this long ends at a due time (worth an alarm), not at the idle cap."""
        return timeout_s < IDLE_TICK_S

    def _ring(self) -> None:
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.lpush(self._alarm_key, 1)
            pipe.pexpire(self._alarm_key, ALARM_TTL_MS)  # a token nobody popped does not linger
            pipe.execute()
        except redis.exceptions.RedisError:
            pass  # the BLPOP's own timeout still ends the wait, only later

    def tick(self) -> int:
        """Promote, reap (every few ticks), then dispatch or probe (neither while paused); returns tasks submitted.

        Sets :attr:`next_tick_s`: soon while work is running, else until the next due time.
        """
        self._ticks += 1
        self.heartbeat.beat()
        self.scheduler.promote_all(max_rounds=self.config.promote_rounds)
        # The first tick reaps, then every reap_every-th (also when reap_every is 1).
        if (self._ticks - 1) % self.config.reap_every == 0:
            reaped = self.store.reap()
            if reaped:
                log.warning("app %r: returned %d request(s) whose lease expired (a worker died or stalled)",
                            self.keys.app, reaped, extra={"app": self.keys.app, "count": reaped})  # fmt: skip
            # Versions of requests ended longer ago than IMUNBAN_VERSION_MEMORY_S: keeps that memory bounded.
            self.scheduler.forget_versions()
            # Replies kept for replayed calls, left behind once delivery stops: the memory of a drain comes back.
            self.scheduler.forget_replies()
        if self.pause.active():
            # An operator's pause: no dispatch and no probe. Resuming wakes this pump (resume.lua).
            self.next_tick_s = IDLE_TICK_S
            return 0
        hold = self.hold.get()
        if hold is not None:
            submitted = self._probe()
            due_ms = max(hold.next_probe_ms, hold.probe_allowed_ms)  # hold_probe.lua keeps the floor too
            self.next_tick_s = IDLE_TICK_S if submitted else self._until_ms(due_ms)
            return submitted
        submitted = self.dispatch()
        self.next_tick_s = self._next_due_s()
        return submitted

    def _until_ms(self, at_ms: int) -> float:
        """Seconds from the server clock's now to ``at_ms``, within [MIN_TICK_S, IDLE_TICK_S]."""
        return min(IDLE_TICK_S, max(MIN_TICK_S, (at_ms - server_time_ms(self.client, self.keys.wake)) / 1000))

    def _next_due_s(self) -> float:
        """How long the pump may sleep: until the next claimable or scheduled time (one round trip; two while busy)."""
        # redis-py's cluster pipeline refuses TIME: on a Redis Cluster the clock is a round trip of its own.
        on_cluster = is_cluster(self.client)
        with translated("pump"):
            pipe = self.client.pipeline(transaction=False)
            if not on_cluster:
                pipe.time()
            pipe.zrange(self.keys.groups, 0, 0, withscores=True)
            pipe.zrange(self.keys.schedidx, 0, 0, withscores=True)
            *clock, groups, sched = pipe.execute()
        now_ms = (
            server_time_ms(self.client, self.keys.wake)
            if on_cluster
            else int(clock[0][0]) * 1000 + int(clock[0][1]) // 1000
        )
        heads = [float(head[0][1]) for head in (groups, sched) if head]
        if not heads:
            return IDLE_TICK_S
        wait_s = (min(heads) - now_ms) / 1000
        if wait_s > 0:
            return min(IDLE_TICK_S, max(MIN_TICK_S, wait_s))
        if sched and float(sched[0][1]) <= now_ms:
            return BUSY_TICK_S  # promotion is behind: promote more soon
        # Claimable work whose slots are all taken: the running tasks serve it and each wakes the pump
        # when it finishes. Sleep until the next group's claimable time (a lingering group must still be
        # dispatched on time) or the next scheduled one, within BUSY_MAX_S.
        with translated("pump"):
            later = self.client.zrange(
                self.keys.groups, f"({now_ms}", "+inf", byscore=True, offset=0, num=1, withscores=True
            )
        times = [float(head[0][1]) for head in (later, sched) if head]
        return min(BUSY_MAX_S, max(MIN_TICK_S, (min(times, default=math.inf) - now_ms) / 1000))

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
            self.submit(self.keys.app, str(marked[i]), int(marked[i + 1]), False)
        return len(marked) // 2

    def _probe(self) -> int:
        # The script picks the group probed longest ago among the first waiting ones (lingering
        # ones too), so probes rotate and one failing head batch cannot keep the hold forever.
        group_id = self.hold.try_probe(self.config.probe_scan_groups)
        if group_id is None:
            return 0
        log.info("probing the API while delivery of app %r is held (group %r)", self.keys.app, group_id,
                 extra={"app": self.keys.app, "group_id": group_id})  # fmt: skip
        self.submit(self.keys.app, group_id, -1, True)
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
        """A task is done with its slot: the group may be dispatched again at once (a waiting pump is woken)."""
        if slot < 0:
            return
        with translated("dispatch"):
            self._finish(keys=script_keys(self.keys, "dispatch_finish"), args=[marker_id(group_id, slot)])
