"""The failover drill: workers drain and producers enqueue while the Redis primary is SIGKILLed, again and again.

A :class:`~imunban.local.sentinel.SentinelRig` (1 primary, 2 replicas, 3 sentinels, AOF on) holds
the state and the broker; a :class:`~imunban.local.cluster.LocalCluster` runs ``imunban worker``
processes on it through ``redis+sentinel://``, each calling the simulator through its own
:class:`~imunban.local.drill_intake.Tap`. Python, CLI and Celery producers enqueue throughout with
``IMUNBAN_DURABLE_REPLICAS=1`` and re-send what was refused (intake is idempotent). The script cache
is flushed, then the current primary is killed ``failovers`` times, ``interval_s`` apart; after each
promotion the killed node comes back as a replica of the new primary. For each failover the report
gives the promotion time, when each worker called the API and beat again, the refused intakes and
the duplicates; overall what was acknowledged and lost, every state the app showed (``stalled``
must never be one), workers that died. Used by ``tests/e2e/test_failover.py`` and ``imunban bench
--only failover``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import cast

import redis

from imunban.errors import StoreError
from imunban.health import add_states
from imunban.keys import Keys
from imunban.local.cluster import LocalCluster
from imunban.local.drill_intake import CeleryIntake, CliIntake, Pair, PythonIntake, Tap, new_names
from imunban.local.redis_server import RedisServer
from imunban.local.sentinel import SentinelRig
from imunban.sim.core import SimConfig
from imunban.state import Thresholds

PASSWORD = "drill-primary-pw"
SENTINEL_PASSWORD = "drill-sentinel-pw"


@dataclass
class DrillConfig:
    workers: int = 2
    #: Members loaded (durably) before the drill: the drain the failovers interrupt.
    backlog: int = 2_000
    #: The Python producer: ``batch`` members every ``batch / rate`` s.
    rate: float = 200.0
    batch: int = 10
    groups: int = 50
    #: The CLI producer (one process per call) and the Celery producer: ``*_batch`` members every ``*_every_s``.
    cli_every_s: float = 2.0
    cli_batch: int = 5
    celery_every_s: float = 0.25
    celery_batch: int = 5
    failovers: int = 3
    #: Seconds between two kills; the first comes 4 s after the first delivery (SCRIPT FLUSH halfway).
    interval_s: float = 9.0
    #: Production after the last promotion, then the drain.
    after_last_s: float = 4.0
    #: The longest the drill waits for every worker to call the API and beat again after a promotion.
    resume_timeout_s: float = 20.0
    #: The watcher's IMUNBAN_STALL_AFTER_S: a claim silence this long while work is due shows as ``stalled``.
    stall_after_s: int = 10
    drain_timeout_s: float = 60.0
    sim_latency_ms: int = 20


@dataclass
class FailoverFigures:
    """One kill: seconds from the kill to the promotion, then from the promotion to each worker's return."""

    killed_port: int
    promoted_port: int
    kill_to_promotion_s: float
    #: Per worker (index order): seconds from the promotion to its first API call, and to its first heartbeat.
    first_delivery_s: list[float | None] = field(default_factory=list)
    heartbeat_s: list[float | None] = field(default_factory=list)
    #: Per worker: seconds from the promotion until its Celery consumer was connected again (its log says so).
    consumer_s: list[float | None] = field(default_factory=list)
    #: Seconds from the promotion until the killed node was back, in sync, as a replica.
    rejoined_s: float | None = None
    #: Intakes refused from this kill to the next (re-sent by their producer), and unbans sent twice.
    refused: int = 0
    duplicates: int = 0

    @property
    def worst_delivery_s(self) -> float | None:
        """The last worker's return to the API after the promotion (None: one never came back)."""
        return None if None in self.first_delivery_s else max(cast(list[float], self.first_delivery_s), default=None)


@dataclass
class DrillReport:
    acknowledged: int = 0
    acknowledged_by: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    refused: int = 0
    refused_by: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    delivered_calls: int = 0
    failovers: list[FailoverFigures] = field(default_factory=list)
    #: How often the watcher saw each state (``unreadable``: Redis did not answer, mid-failover), and why
    #: it said ``stalled`` if it ever did.
    states_seen: Counter[str] = field(default_factory=Counter)
    stalled_reasons: list[str] = field(default_factory=list)
    #: Acknowledged but lost, by producer (python, cli, celery).
    lost_by: Counter[str] = field(default_factory=Counter)
    workers_died: int = 0
    drained: bool = False
    #: Errors that reached a producer or a worker log and mention NOSCRIPT (must be 0).
    noscript_errors: int = 0
    lost_sample: list[str] = field(default_factory=list)

    @property
    def kill_to_promotion_s(self) -> float:
        return max((f.kill_to_promotion_s for f in self.failovers), default=0.0)

    @property
    def promotion_to_delivery_s(self) -> float | None:
        """The worst, over every failover and every worker, of the promotion → first API call."""
        worst = [f.worst_delivery_s for f in self.failovers]
        return None if not worst or None in worst else max(cast(list[float], worst))

    @property
    def kill_to_delivery_s(self) -> float | None:
        pairs = [(f.kill_to_promotion_s, f.worst_delivery_s) for f in self.failovers]
        if not pairs or any(d is None for _, d in pairs):
            return None
        return max(k + cast(float, d) for k, d in pairs)


class _StateWatch(threading.Thread):
    """Reads the app's state twice a second, as ``imunban status`` would, and counts each one seen."""

    def __init__(self, cluster: LocalCluster, keys: list[Keys], stall_after_s: int, report: DrillReport) -> None:
        super().__init__(name="drill-state", daemon=True)
        self.cluster, self.keys, self.report = cluster, keys, report
        self.limits = Thresholds(stall_after_ms=stall_after_s * 1000)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                states = add_states(self.cluster.client, self.keys, self.cluster.status(), self.limits)
            except StoreError:
                self.report.states_seen["unreadable"] += 1
                continue
            for state in states.values():
                self.report.states_seen[state.state] += 1
                if state.state == "stalled":
                    self.report.stalled_reasons.append(state.reason)


def run_drill(
    root: Path, cfg: DrillConfig | None = None, *, log: Callable[[str], None] = lambda _: None
) -> DrillReport:
    """Run the whole drill under ``root`` and return its figures; every process it starts is stopped."""
    cfg = cfg or DrillConfig()
    report = DrillReport()
    taps: dict[int, Tap] = {}

    def tap_env(index: int) -> dict[str, str]:
        if index not in taps:
            assert cluster.simulator is not None
            taps[index] = Tap(cluster.simulator)
            taps[index].server.start()
        return {"IMUNBAN_BASE_URL": taps[index].server.url}

    with SentinelRig(root / "rig", password=PASSWORD, sentinel_password=SENTINEL_PASSWORD) as rig:
        env = {
            "IMUNBAN_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
            "IMUNBAN_DURABLE_REPLICAS": "1",
            # A lease lost with the primary comes back within seconds, not the default 30.
            "IMUNBAN_LEASE_MS": "5000",
        }
        cluster = LocalCluster(
            root / "cluster",
            workers=cfg.workers,
            redis_url=rig.url(),
            env=env,
            sim_config=SimConfig(latency_ms=cfg.sim_latency_ms),
            worker_env=tap_env,
        )
        try:
            with cluster:
                _run(rig, cluster, [taps[i] for i in range(cfg.workers)], cfg, report, log)
                report.noscript_errors += sum(
                    path.read_text(errors="replace").count("NOSCRIPT")
                    for path in (root / "cluster").glob("worker-*.log")
                )
        finally:
            for tap in taps.values():
                tap.server.stop()
    return report


def _run(
    rig: SentinelRig, cluster: LocalCluster, taps: list[Tap], cfg: DrillConfig, report: DrillReport,
    log: Callable[[str], None],
) -> None:  # fmt: skip
    log(f"rig and {cfg.workers} workers up")
    backlog = [(f"g{i % cfg.groups}", f"m{i}") for i in range(cfg.backlog)]
    cluster.producer().bulk({"group_id": g, "member": m} for g, m in backlog)
    names = new_names(cfg.backlog, cfg.groups)
    intakes = [
        PythonIntake(names, cfg.batch, cfg.batch / cfg.rate, cluster.producer()),
        CliIntake(names, cfg.cli_batch, cfg.cli_every_s, cluster.env()),
        CeleryIntake(names, cfg.celery_batch, cfg.celery_every_s, cluster.client),
    ]
    watch = _StateWatch(cluster, [app.keys for app in cluster.deployment], cfg.stall_after_s, report)
    for intake in intakes:
        intake.start()
    kills: list[float] = []
    duplicates_at: list[int] = []
    try:
        _wait(lambda: _calls(cluster) > 0, 60, "first delivery")
        watch.start()  # from the first delivery: workers still starting are not a stall
        time.sleep(2.0)
        rig.current_primary().client().script_flush()
        log("script cache flushed on the primary")
        time.sleep(2.0)
        for number in range(1, cfg.failovers + 1):
            if kills:
                time.sleep(max(0.0, kills[-1] + cfg.interval_s - time.monotonic()))
            duplicates_at.append(_duplicates(cluster))
            kills.append(time.monotonic())
            figures = _failover(rig, cluster, taps, cfg, kills[-1])
            report.failovers.append(figures)
            log(f"failover {number}: :{figures.killed_port} killed, :{figures.promoted_port} promoted after "
                f"{figures.kill_to_promotion_s:.2f}s; workers called the API again after "
                f"{_seconds(figures.first_delivery_s)}, beat after {_seconds(figures.heartbeat_s)}, consumers "
                f"connected after {_seconds(figures.consumer_s)}; "
                f"old primary back as a replica after {_seconds([figures.rejoined_s])}")  # fmt: skip
        time.sleep(cfg.after_last_s)
    finally:
        stops = [intake.stop for intake in intakes] + [watch.stop]
        for stop in stops:
            stop.set()
        for thread in (*intakes, watch):
            if thread.is_alive():
                thread.join(timeout=90)
    report.drained = cluster.wait_drained(cfg.drain_timeout_s)
    report.workers_died = len(cluster.exited())
    duplicates_at.append(_duplicates(cluster))
    for index, figures in enumerate(report.failovers):
        figures.duplicates = duplicates_at[index + 1] - duplicates_at[index]
        until = kills[index + 1] if index + 1 < len(kills) else float("inf")
        figures.refused = sum(1 for i in intakes for at, _ in i.refusals if kills[index] <= at < until)
    for intake in intakes:
        report.refused_by[intake.kind] += len(intake.refusals)
        report.noscript_errors += sum(1 for _, why in intake.refusals if "NOSCRIPT" in why or "NoScript" in why)
        report.acknowledged_by[intake.kind] = len(intake.acked)
    report.refused = sum(report.refused_by.values())
    acked = [(pair, "backlog") for pair in backlog] + [(pair, i.kind) for i in intakes for pair in i.acked]
    _tally(cluster, acked, report)


def _failover(
    rig: SentinelRig, cluster: LocalCluster, taps: list[Tap], cfg: DrillConfig, killed_at: float
) -> FailoverFigures:
    """Kill the primary, wait for the promotion, bring the old one back as a replica, watch every worker return."""
    old = rig.kill_primary()
    new = rig.wait_promotion(old)
    # Heartbeats and worker logs carry the wall clock of this host (the server's TIME, the log's timestamp).
    promoted_at, promoted_ms = time.monotonic(), time.time() * 1000
    killed_ms = promoted_ms - (promoted_at - killed_at) * 1000
    figures = FailoverFigures(old.port, new.port, promoted_at - killed_at)
    pids = [str(proc.pid) if proc is not None else "-" for proc in cluster.workers]
    keys = next(iter(cluster.deployment)).keys
    beats: list[float | None] = [None] * len(taps)
    rejoined = threading.Thread(target=_rejoin, args=(rig, old, new, figures, promoted_at), daemon=True)
    rejoined.start()
    deadline = promoted_at + cfg.resume_timeout_s
    while time.monotonic() < deadline:
        now = time.monotonic()
        try:
            ticks = cast(dict[str, str], cluster.client.hgetall(keys.workers))
        except redis.exceptions.RedisError:  # the drill's own read failed mid-failover: read again
            ticks = {}
        for index, pid in enumerate(pids):
            tick = next((int(ms) for worker, ms in ticks.items() if worker.endswith(f":{pid}")), 0)
            if beats[index] is None and tick > promoted_ms:
                beats[index] = now - promoted_at
        if None not in beats and all(tap.first_call_after(promoted_at) is not None for tap in taps):
            break
        time.sleep(0.05)
    firsts = [tap.first_call_after(promoted_at) for tap in taps]
    figures.first_delivery_s = [None if at is None else at - promoted_at for at in firsts]
    figures.heartbeat_s = beats
    rejoined.join(timeout=60)
    logs = [cluster.root / f"worker-{index}.log" for index in range(len(taps))]
    figures.consumer_s = [_connected_after(path, killed_ms, promoted_ms) for path in logs]
    return figures


def _connected_after(log: Path, killed_ms: float, promoted_ms: float) -> float | None:
    """Seconds from the promotion to the first "Connected to" of this worker's consumer after the kill."""
    for line in log.read_text(errors="replace").splitlines():
        if "celery.worker.consumer.connection: Connected to" not in line:
            continue
        try:
            at_ms = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp() * 1000
        except ValueError:
            continue
        if at_ms > killed_ms:
            return (at_ms - promoted_ms) / 1000
    return None


def _rejoin(rig: SentinelRig, old: RedisServer, new: RedisServer, figures: FailoverFigures, promoted_at: float) -> None:
    """The killed node restarts as a replica of the new primary: WAIT 1 has two replicas again."""
    rig.rejoin(old, new)
    rig.wait_replicas(len(rig.nodes) - 1)
    figures.rejoined_s = time.monotonic() - promoted_at


def _seconds(values: list[float | None]) -> str:
    return ", ".join("never" if v is None else f"{v:.2f}s" for v in values)


def _tally(cluster: LocalCluster, acked: list[tuple[Pair, str]], report: DrillReport) -> None:
    assert cluster.simulator is not None
    stats = cluster.sim_stats()
    report.acknowledged = len(acked)
    report.duplicates = int(stats["duplicate_unbans"])
    report.delivered_calls = int(stats["calls_ok"])
    delivered: dict[str, frozenset[str]] = {}
    for (group, member), kind in acked:
        if group not in delivered:
            delivered[group] = cluster.simulator.unbanned(group)
        if member not in delivered[group]:
            report.lost += 1
            report.lost_by[kind] += 1
            if len(report.lost_sample) < 10:
                report.lost_sample.append(f"{group}/{member}")


def _calls(cluster: LocalCluster) -> int:
    return int(cluster.sim_stats()["calls_ok"])


def _duplicates(cluster: LocalCluster) -> int:
    return int(cluster.sim_stats()["duplicate_unbans"])


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise StoreError(f"failover drill: no {what} within {timeout_s:g}s")
        time.sleep(0.02)
