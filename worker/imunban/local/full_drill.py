"""The full-Redis drill: intake fills Redis while Celery messages are in flight; nothing is lost, no worker dies.

One redis-server (``noeviction``, ``maxmemory`` a few MB above what it uses at the start) holds the
state and the Celery broker, as in the default deployment; ``imunban worker`` processes deliver to
the simulator over loopback. The drill:

1. publishes Celery ``imunban.unban`` messages (kombu's raw envelope, as a client in any language
   does, docs/celery-contract.md) while the workers run;
2. fills Redis by intake: bulk enqueues until they are refused ("Redis is full", at the intake's
   share of maxmemory), then Celery messages until Redis itself refuses them (maxmemory);
3. watches the stored backlog drain while intake is still refused, and the workers stay up;
4. stops every worker (a warm shutdown: held messages go back to their queue), gives Redis room for
   a second backlog and fills it the same way, starts one worker on the full Redis and watches it
   deliver;
5. starts the other workers and waits for the stored backlog to drain: every accepted request not
   delivered yet must still wait in the broker's queue (nothing vanished while Redis was full);
6. raises maxmemory, as an operator would, waits until every queue is empty, and checks each accepted
   request against the simulator: accepted, delivered, lost, workers that died.

Used by ``tests/e2e/test_full_redis_e2e.py`` and ``imunban bench --only full``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from imunban.errors import StoreError
from imunban.keys import Keys
from imunban.local.cluster import LocalCluster
from imunban.memory import MemoryGauge
from imunban.sim.core import SimConfig
from imunban.store import EnqueueRefusedError

#: The public queue and kombu's record of unacknowledged messages (imunban_celery names them; the
#: local package does not import the Celery layer).
PUBLIC_QUEUE = "imunban"
UNACKED = "unacked"
#: Members per group: small enough that a group's ready set keeps Redis's compact encoding, so the
#: memory each request takes is steady and the fills are predictable.
PER_GROUP = 100


@dataclass
class FullDrillConfig:
    workers: int = 2
    concurrency: int = 4
    #: maxmemory is set this far above what Redis uses when the drill starts.
    headroom_bytes: int = 6 * 1024 * 1024
    #: Celery messages published (and accepted) before Redis fills, one member each.
    celery_before: int = 300
    #: The outcome stream's cap (IMUNBAN_OUTCOME_STREAM_MAXLEN): below it, delivered requests free memory.
    outcome_maxlen: int = 2_000
    sim_latency_ms: int = 20
    #: How long the drill watches the backlog drain while intake is refused, at most (step 3).
    full_watch_s: float = 60.0
    #: How long the worker started on a full Redis has to deliver this many members (step 4).
    late_worker_s: float = 60.0
    late_worker_members: int = 500
    drain_timeout_s: float = 120.0


@dataclass
class FullDrillReport:
    #: Requests the intake stored (bulk enqueues), and Celery messages the broker accepted (LPUSH).
    stored: int = 0
    celery_accepted: int = 0
    #: Enqueues refused as "Redis is full" and Celery messages Redis refused: the sender knows.
    refused_enqueues: int = 0
    refused_celery: int = 0
    delivered: int = 0
    lost: int = 0
    lost_sample: list[str] = field(default_factory=list)
    workers_started: int = 0
    workers_died: int = 0
    #: Members delivered between Redis filling up and intake being accepted again (step 3).
    delivered_while_full: int = 0
    seconds_full: float = 0.0
    #: The most used_memory / maxmemory seen meanwhile: delivery's own records (outcomes, replay records
    #: kept a minute) may pass maxmemory, by what the intake's reserve is meant to hold.
    peak_use_while_full: float = 0.0
    #: used_memory / maxmemory after each fill (running workers free some at once), and how many Celery
    #: messages Redis refused at the end of each fill (> 0: Redis was at maxmemory).
    fill_peaks: list[float] = field(default_factory=list)
    fill_refusals: list[int] = field(default_factory=list)
    #: Step 4: used_memory / maxmemory when the worker started, and what it delivered while intake was refused.
    late_worker_start_use: float = 0.0
    late_worker_delivered: int = 0
    late_worker_first_delivery_s: float | None = None
    #: Step 5, the stored backlog drained with Redis still full: used_memory / maxmemory, Celery messages
    #: still waiting in the broker, and accepted requests neither delivered nor waiting (must be 0).
    use_when_drained: float = 0.0
    waiting_in_queue: int = 0
    unaccounted: int = 0
    #: Step 6, maxmemory raised: everything delivered and every queue empty.
    drained: bool = False

    @property
    def accepted(self) -> int:
        return self.stored + self.celery_accepted


def envelope(group_id: str, member: str) -> str:
    """kombu's envelope of an ``imunban.unban`` task message (protocol 2), as docs/celery-contract.md shows it."""
    body = [[], {"group_id": group_id, "members": [member]}, {"callbacks": None, "errbacks": None, "chain": None}]
    task_id = str(uuid.uuid4())
    return json.dumps(
        {
            "body": base64.b64encode(json.dumps(body).encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"lang": "py", "task": "imunban.unban", "id": task_id, "root_id": task_id, "retries": 0},
            "properties": {
                "correlation_id": task_id,
                "delivery_mode": 2,
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
                "delivery_info": {"exchange": "", "routing_key": PUBLIC_QUEUE},
            },
        }
    )


class _Intake:
    """Sends requests the two ways producers do, and remembers each one that was accepted."""

    def __init__(self, cluster: LocalCluster, report: FullDrillReport) -> None:
        self.cluster = cluster
        self.producer = cluster.producer()
        self.client = cluster.client
        self.report = report
        self.accepted: list[tuple[str, str]] = []
        self._next = 0

    def _names(self, count: int, kind: str) -> list[tuple[str, str]]:
        first, self._next = self._next, self._next + count
        return [(f"{kind}{(first + i) // PER_GROUP}", f"u{first + i}") for i in range(count)]

    def publish(self, count: int, batch: int = 200) -> int:
        """Publish up to ``count`` Celery messages; stops at the first Redis refuses. Returns how many were accepted."""
        accepted = 0
        while accepted < count:
            pairs = self._names(min(batch, count - accepted), "c")
            pipe = self.client.pipeline(transaction=False)
            for group, member in pairs:
                pipe.lpush(PUBLIC_QUEUE, envelope(group, member))
            results = pipe.execute(raise_on_error=False)
            for pair, result in zip(pairs, results, strict=True):
                if isinstance(result, Exception):
                    self.report.refused_celery += 1
                else:
                    self.accepted.append(pair)
                    accepted += 1
            if any(isinstance(result, Exception) for result in results):
                break
        self.report.celery_accepted += accepted
        return accepted

    def enqueue_until_refused(self, chunk: int = 1_000) -> int:
        """Bulk-enqueue chunks of ``chunk`` members (each stored whole or not at all) until intake is refused."""
        stored = 0
        while True:
            pairs = self._names(chunk, "b")
            try:
                self.producer.bulk({"group_id": g, "member": m} for g, m in pairs)
            except EnqueueRefusedError as exc:
                self.report.refused_enqueues += 1
                if exc.result.stored:  # one chunk is stored whole or not at all
                    raise StoreError("a 1,000-member bulk enqueue was stored in part") from exc
                break
            self.accepted += pairs
            stored += len(pairs)
        self.report.stored += stored
        return stored

    def fill(self) -> float:
        """Fill Redis by intake: bulk enqueues until refused, then Celery messages until Redis refuses them."""
        self.enqueue_until_refused()
        refused = self.report.refused_celery
        self.publish(1_000_000)
        self.report.fill_refusals.append(self.report.refused_celery - refused)
        return self.use()

    def use(self) -> float:
        """used_memory / maxmemory now."""
        info = self.client.info("memory")
        return int(info["used_memory"]) / max(1, int(info["maxmemory"]))


def run_full_drill(
    root: Path, cfg: FullDrillConfig | None = None, *, log: Callable[[str], None] = lambda _: None
) -> FullDrillReport:
    """Run the whole drill under ``root`` and return its figures; every process it starts is stopped."""
    cfg = cfg or FullDrillConfig()
    report = FullDrillReport()
    env = {"IMUNBAN_OUTCOME_STREAM_MAXLEN": str(cfg.outcome_maxlen)}
    cluster = LocalCluster(
        root / "cluster",
        workers=cfg.workers,
        concurrency=cfg.concurrency,
        sim_config=SimConfig(latency_ms=cfg.sim_latency_ms),
        env=env,
        appendonly=False,
    )
    with cluster:
        report.workers_started = cfg.workers
        client = cluster.client
        settings = cluster.settings()
        gauge = MemoryGauge(client, Keys(settings.key_prefix).stats)
        fraction = settings.intake_memory_fraction
        client.config_set("maxmemory", int(client.info("memory")["used_memory"]) + cfg.headroom_bytes)
        intake = _Intake(cluster, report)
        log(f"{cfg.workers} workers up; maxmemory {cfg.headroom_bytes:,} bytes above use")

        # 1-2. Celery messages accepted while the workers run, then intake fills Redis.
        intake.publish(cfg.celery_before)
        report.fill_peaks.append(intake.fill())
        log(f"filled: {report.stored:,} stored, {report.celery_accepted:,} Celery messages accepted, "
            f"{report.fill_peaks[-1]:.0%} of maxmemory")  # fmt: skip

        # 3. The backlog drains while intake is refused.
        full_since, before = time.monotonic(), _delivered(cluster)
        while time.monotonic() - full_since < cfg.full_watch_s and _over(gauge, fraction) and _pending(cluster):
            _count_deaths(cluster, report)
            report.peak_use_while_full = max(report.peak_use_while_full, intake.use())
            time.sleep(0.1)
        report.seconds_full = time.monotonic() - full_since
        report.delivered_while_full = _delivered(cluster) - before
        log(f"{report.delivered_while_full:,} delivered in {report.seconds_full:.1f}s while intake was refused")

        # 4. Every worker stopped, Redis filled again, one worker started on the full Redis.
        _count_deaths(cluster, report)
        for index in range(len(cluster.workers)):
            cluster.stop_worker(index)
        # Room for a second backlog, as if memory had come back (delivery's replay records, kept a minute,
        # outweigh this small Redis's backlog: see docs/durability.md).
        client.config_set("maxmemory", int(client.info("memory")["used_memory"]) + cfg.headroom_bytes)
        report.fill_peaks.append(intake.fill())
        report.late_worker_start_use = intake.use()
        before, started = _delivered(cluster), time.monotonic()
        cluster.start_worker(0)
        report.workers_started += 1
        while time.monotonic() - started < cfg.late_worker_s:
            _count_deaths(cluster, report)
            delivered = _delivered(cluster) - before
            if delivered and report.late_worker_first_delivery_s is None:
                report.late_worker_first_delivery_s = time.monotonic() - started
            if delivered >= cfg.late_worker_members or not _over(gauge, fraction) or not _pending(cluster):
                break
            time.sleep(0.1)
        report.late_worker_delivered = _delivered(cluster) - before
        log(f"worker started at {report.late_worker_start_use:.0%} of maxmemory: first delivery after "
            f"{report.late_worker_first_delivery_s}s, {report.late_worker_delivered:,} delivered")  # fmt: skip

        # 5. The rest of the workers back: the stored backlog drains; what is not delivered yet must still be
        # waiting in the broker's queue (Redis still full), never gone.
        for index in range(1, len(cluster.workers)):
            cluster.start_worker(index)
            report.workers_started += 1
        _wait_store_drained(cluster, cfg.drain_timeout_s, lambda: _count_deaths(cluster, report))
        waiting = _waiting_members(client)
        report.waiting_in_queue = len(waiting)
        report.unaccounted = sum(1 for pair in _undelivered(cluster, intake.accepted) if pair not in waiting)
        report.use_when_drained = intake.use()
        log(f"backlog drained at {report.use_when_drained:.0%} of maxmemory: {report.waiting_in_queue} Celery "
            f"messages still queued, {report.unaccounted} accepted requests neither delivered nor queued")  # fmt: skip

        # 6. The operator raises maxmemory: everything accepted must be delivered and every queue emptied.
        client.config_set("maxmemory", 0)
        report.drained = _wait_empty(cluster, cfg.drain_timeout_s, lambda: _count_deaths(cluster, report))
        _count_deaths(cluster, report)
        _tally(cluster, intake.accepted, report)
        log(f"accepted {report.accepted:,}, delivered {report.delivered:,}, lost {report.lost}, "
            f"workers died {report.workers_died}")  # fmt: skip
    return report


def _over(gauge: MemoryGauge, fraction: float) -> bool:
    reading = gauge.reading(fresh=True)
    return reading is not None and reading.over(fraction)


def _pending(cluster: LocalCluster) -> bool:
    """Whether the store still holds requests to deliver (queued, scheduled or in flight)."""
    s = cluster.status()
    return bool(s["queued"] or s["scheduled"] or s["in_flight"])


def _delivered(cluster: LocalCluster) -> int:
    return int(cluster.sim_stats()["distinct_unbanned"])


def _count_deaths(cluster: LocalCluster, report: FullDrillReport) -> None:
    """A worker that exited by itself is a death; it is counted once and not restarted."""
    for index in cluster.exited():
        report.workers_died += 1
        cluster.workers[index] = None


def _wait_store_drained(cluster: LocalCluster, timeout_s: float, tick: Callable[[], None]) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tick()
        s = cluster.status()
        if s["queued"] == 0 and s["scheduled"] == 0 and s["in_flight"] == 0:
            return True
        time.sleep(0.2)
    return False


def _waiting_members(client: redis.Redis) -> set[tuple[str, str]]:
    """(group, member) of every imunban.unban message in the public queue or held unacknowledged."""
    raws = [*client.lrange(PUBLIC_QUEUE, 0, -1), *(json.loads(entry)[0] for entry in client.hvals(UNACKED))]
    waiting: set[tuple[str, str]] = set()
    for raw in raws:
        message = json.loads(raw) if isinstance(raw, str) else raw
        if message.get("headers", {}).get("task") != "imunban.unban":
            continue
        _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        waiting |= {(kwargs["group_id"], member) for member in kwargs["members"]}
    return waiting


def _undelivered(cluster: LocalCluster, accepted: list[tuple[str, str]]) -> list[tuple[str, str]]:
    assert cluster.simulator is not None
    unbanned: dict[str, frozenset[str]] = {}
    out = []
    for group, member in accepted:
        if group not in unbanned:
            unbanned[group] = cluster.simulator.unbanned(group)
        if member not in unbanned[group]:
            out.append((group, member))
    return out


def _wait_empty(cluster: LocalCluster, timeout_s: float, tick: Callable[[], None]) -> bool:
    """Until nothing is queued, scheduled, in flight, in the public queue or held unacknowledged."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tick()
        try:
            s = cluster.status()
            empty = not (cluster.client.llen(PUBLIC_QUEUE) or cluster.client.hlen(UNACKED))
        except (StoreError, redis.exceptions.RedisError):
            empty = False
        if empty and s["queued"] == 0 and s["scheduled"] == 0 and s["in_flight"] == 0:
            return True
        time.sleep(0.2)
    return False


def _tally(cluster: LocalCluster, accepted: list[tuple[str, str]], report: FullDrillReport) -> None:
    missing = _undelivered(cluster, accepted)
    report.lost = len(missing)
    report.delivered = len(accepted) - report.lost
    report.lost_sample = [f"{group}/{member}" for group, member in missing[:10]]
