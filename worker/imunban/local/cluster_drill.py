"""The Redis Cluster drills: a master SIGKILLed mid-drain, and one app's slot resharded mid-drain.

A :class:`~imunban.local.redis_cluster.RedisCluster` (3 masters, one replica each, a node noticed
dead after ``node_timeout_ms``) holds the state of two apps whose hash tags sit on different
masters; the Celery broker is a plain Redis of its own (kombu has no cluster transport). ``imunban
worker`` processes drain a backlog of both apps while one producer thread per app enqueues with
``IMUNBAN_DURABLE_REPLICAS=1`` and re-sends what was refused (intake is idempotent). Then:

- ``kill``: the master of app ``alpha`` is SIGKILLed; the cluster promotes its replica; the
  promoted node's script cache is flushed (NOSCRIPT must be handled); the old master is started
  again and rejoins as a replica (durable intake for alpha waits for it: WAIT needs a replica);
- ``reshard``: alpha's slot moves to another master (:func:`imunban.local.reshard.move_slot`) in
  small batches, so scripts meet ASK/TRYAGAIN for a while.

The report: acknowledged, lost (must be 0), refused intakes, duplicates, seconds from the kill (or
the move's start) to alpha's next delivery, and the longest pause in beta's deliveries (the app
left alone). Used by ``tests/e2e/test_cluster_drills.py`` and ``imunban bench --only cluster``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from imunban.errors import StoreError
from imunban.keys import Keys
from imunban.local.cluster import LocalCluster
from imunban.local.redis_cluster import RedisCluster
from imunban.local.redis_server import RedisServer
from imunban.local.reshard import move_slot
from imunban.sim.core import SimConfig

#: Two apps whose hash tags land on different masters of a 3-master cluster (tests/unit/test_cluster_slots.py).
AFFECTED, OTHER = "alpha", "beta"
DRILLS = ("kill", "reshard")


@dataclass
class ClusterDrillConfig:
    workers: int = 2
    #: Members per app loaded (durably) before the drill, two per group: a drain of backlog / 2 calls.
    backlog: int = 3_000
    #: Members enqueued per second per app by the producer threads, in batches of ``batch``.
    rate: float = 100.0
    batch: int = 10
    groups: int = 50
    rate_limit: float = 190.0
    node_timeout_ms: int = 1_000
    #: Seconds of delivery before the kill / the move, and after it before production stops.
    before_s: float = 2.0
    after_s: float = 4.0
    #: Keys per MIGRATE and the pause after each batch (the move's window of ASK/TRYAGAIN).
    reshard_batch: int = 10
    reshard_pause_s: float = 0.0
    drain_timeout_s: float = 60.0
    sim_latency_ms: int = 20


@dataclass
class ClusterDrillReport:
    drill: str = ""
    acknowledged: int = 0
    lost: int = 0
    refused: int = 0
    refused_by: Counter[str] = field(default_factory=Counter)
    #: The first refusal's message, for the report.
    refused_sample: str = ""
    duplicates: int = 0
    #: Seconds from the kill to the promoted replica serving alpha's slot (kill drill).
    kill_to_promotion_s: float | None = None
    #: Longest pause in alpha's deliveries from the kill (or the move's start) on, and when it ended:
    #: seconds from the event to alpha delivering again (calls in flight at the kill may end just after it).
    affected_max_gap_s: float | None = None
    resumed_s: float | None = None
    #: Longest pause between two of beta's deliveries around the event (must stay small).
    other_max_gap_s: float | None = None
    #: Seconds alpha's producer saw its intake refused after the event (DurabilityError, TRYAGAIN...).
    affected_intake_refused_s: float = 0.0
    #: The move: keys moved, batches, seconds the slot was migrating (reshard drill).
    moved_keys: int = 0
    migrating_s: float | None = None
    drained: bool = False
    lost_sample: list[str] = field(default_factory=list)


class _Producer(threading.Thread):
    """Enqueue ``batch`` members of one app at a steady rate; a refused batch is re-sent until acknowledged."""

    def __init__(self, cluster: LocalCluster, app: str, cfg: ClusterDrillConfig, report: ClusterDrillReport) -> None:
        super().__init__(name=f"drill-producer-{app}", daemon=True)
        self.producer = cluster.producer()
        self.app, self.cfg, self.report = app, cfg, report
        self.next = cfg.backlog
        self.acked: list[tuple[str, str]] = []
        self.refusals: list[float] = []  # monotonic times of refused sends
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        interval = self.cfg.batch / self.cfg.rate
        deadline = time.monotonic()
        while not self.stop.is_set():
            pairs = [_pair(self.app, self.next + i, self.cfg.groups) for i in range(self.cfg.batch)]
            self.next += self.cfg.batch
            while not self._send(pairs):
                if self.stop.wait(0.05):
                    return  # never acknowledged: not counted
            deadline += interval
            self.stop.wait(max(0.0, deadline - time.monotonic()))

    def _send(self, pairs: list[tuple[str, str]]) -> bool:
        try:
            self.producer.bulk({"group_id": g, "member": m, "app": self.app} for g, m in pairs)
        except StoreError as exc:
            with self.lock:
                self.report.refused += 1
                self.report.refused_by[type(exc).__name__] += 1
                self.report.refused_sample = self.report.refused_sample or f"{self.app}: {exc}"[:300]
                self.refusals.append(time.monotonic())
            return False
        with self.lock:
            self.acked += pairs
        return True


class _Sampler(threading.Thread):
    """Record when each app's simulator counted a new successful call (every 20 ms)."""

    def __init__(self, cluster: LocalCluster) -> None:
        super().__init__(name="drill-sampler", daemon=True)
        self.cluster = cluster
        self.deliveries: dict[str, list[float]] = {AFFECTED: [], OTHER: []}
        self.stop = threading.Event()

    def run(self) -> None:
        last = dict.fromkeys(self.deliveries, 0)
        while not self.stop.wait(0.02):
            now = time.monotonic()
            for app, times in self.deliveries.items():
                calls = int(self.cluster.sim_of(app).snapshot()["calls_ok"])
                if calls > last[app]:
                    times.append(now)
                    last[app] = calls


def _pair(app: str, i: int, groups: int) -> tuple[str, str]:
    return f"{app}-g{i % groups}", f"m{i}"


def run_cluster_drill(
    root: Path, drill: str, cfg: ClusterDrillConfig | None = None, *, log: Callable[[str], None] = lambda _: None
) -> ClusterDrillReport:
    """Run one drill (``kill`` or ``reshard``) under ``root``; every process it starts is stopped."""
    if drill not in DRILLS:
        raise ValueError(f"drill must be one of {', '.join(DRILLS)}")
    cfg = cfg or ClusterDrillConfig()
    report = ClusterDrillReport(drill=drill)
    state = RedisCluster(root / "state", masters=3, replicas=1, node_timeout_ms=cfg.node_timeout_ms)
    with state, RedisServer(root / "broker", appendonly=False) as broker:
        env = {"IMUNBAN_BROKER_URL": broker.url, "IMUNBAN_DURABLE_REPLICAS": "1", "IMUNBAN_LEASE_MS": "5000"}
        cluster = LocalCluster(
            root / "workers",
            workers=cfg.workers,
            redis_url=state.url,
            env=env,
            apps={AFFECTED: cfg.rate_limit, OTHER: cfg.rate_limit},
            sim_config=SimConfig(latency_ms=cfg.sim_latency_ms),
        )
        with cluster:
            log(f"cluster (3 masters + 3 replicas), broker and {cfg.workers} workers up")
            backlog = {app: [_pair(app, i, cfg.backlog // 2) for i in range(cfg.backlog)] for app in (AFFECTED, OTHER)}
            for app, pairs in backlog.items():
                cluster.producer().bulk({"group_id": g, "member": m, "app": app} for g, m in pairs)
            producers = {app: _Producer(cluster, app, cfg, report) for app in (AFFECTED, OTHER)}
            sampler = _Sampler(cluster)
            for thread in (*producers.values(), sampler):
                thread.start()
            try:
                _wait(lambda: all(sampler.deliveries.values()), 60, "first delivery of both apps")
                time.sleep(cfg.before_s)
                event_at = time.monotonic()
                if drill == "kill":
                    _kill(state, report, log)
                else:
                    _reshard(state, cfg, report, log)
                _wait(lambda: any(t > event_at for t in sampler.deliveries[AFFECTED]), 60, None)
                time.sleep(cfg.after_s)
            finally:
                for thread in producers.values():
                    thread.stop.set()
                    thread.join(timeout=30)
            report.drained = cluster.wait_drained(cfg.drain_timeout_s)
            sampler.stop.set()
            sampler.join(timeout=5)
            _timings(report, sampler, producers[AFFECTED], event_at)
            for app in (AFFECTED, OTHER):
                _tally(cluster, app, backlog[app] + producers[app].acked, report)
    return report


def _kill(state: RedisCluster, report: ClusterDrillReport, log: Callable[[str], None]) -> None:
    key = Keys("imunban", AFFECTED).stats
    killed_at = time.monotonic()
    old = state.kill_master(key)
    log(f"master :{old.port} of {AFFECTED!r} SIGKILLed")
    new = state.wait_promotion(key, old)
    report.kill_to_promotion_s = time.monotonic() - killed_at
    log(f"replica :{new.port} promoted after {report.kill_to_promotion_s:.2f}s")
    with new.client() as client:
        client.script_flush()  # a promoted node without the scripts: NOSCRIPT must be handled
    state.restart(old)
    log(f"old master :{old.port} back as a replica after {time.monotonic() - killed_at:.2f}s")


def _reshard(
    state: RedisCluster, cfg: ClusterDrillConfig, report: ClusterDrillReport, log: Callable[[str], None]
) -> None:
    slot = state.slot_of(Keys("imunban", AFFECTED).stats)
    source = state.master_of_slot(slot)
    target = next(node for node in state.live if node is not source and state.is_master(node))
    move = move_slot(
        state, slot, target, batch=cfg.reshard_batch, between_batches=lambda _: time.sleep(cfg.reshard_pause_s)
    )
    report.moved_keys, report.migrating_s = move.keys, move.migrating_s
    log(
        f"slot {slot} of {AFFECTED!r} moved :{source.port} -> :{target.port}: "
        f"{move.keys} keys in {move.migrating_s:.2f}s"
    )


def _timings(report: ClusterDrillReport, sampler: _Sampler, affected: _Producer, event_at: float) -> None:
    alpha = sampler.deliveries[AFFECTED]
    after = [t for t in alpha if t > event_at]
    if after:
        gap, end = max((b - a, b) for a, b in itertools.pairwise([event_at, *after]))
        report.affected_max_gap_s, report.resumed_s = gap, end - event_at
    beta = [t for t in sampler.deliveries[OTHER] if t > event_at - 1.0]
    if len(beta) > 1:
        report.other_max_gap_s = max(b - a for a, b in itertools.pairwise(beta))
    refusals = [t for t in affected.refusals if t >= event_at]
    if refusals:
        report.affected_intake_refused_s = refusals[-1] - event_at


def _tally(cluster: LocalCluster, app: str, acked: list[tuple[str, str]], report: ClusterDrillReport) -> None:
    sim = cluster.sim_of(app)
    report.acknowledged += len(acked)
    report.duplicates += int(sim.snapshot()["duplicate_unbans"])
    delivered: dict[str, frozenset[str]] = {}
    for group, member in acked:
        if group not in delivered:
            delivered[group] = sim.unbanned(group)
        if member not in delivered[group]:
            report.lost += 1
            if len(report.lost_sample) < 10:
                report.lost_sample.append(f"{app}/{group}/{member}")


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str | None) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            if what is None:
                return False
            raise StoreError(f"cluster drill: no {what} within {timeout_s:g}s")
        time.sleep(0.02)
    return True
