"""``imunban demo``: the main job end to end on this machine, with nothing to prepare.

It runs on the embedded Redis (or ``IMUNBAN_REDIS_URL`` when set), in a logical database of its
own, so neither the store nor the Celery queues of a real deployment on that server are touched.
It starts the API simulator (30 ms latency, 1 % HTTP 502, 1 % 10002, one poison member) and two
``imunban worker`` processes, enqueues a burst of event-driven unbans across 300 groups plus
expiries scheduled over the next 15 s, shows the drain live, then a summary.

Exit status: 0 only when every request but the poison one was delivered and the poison one was
dead-lettered with 10004; 1 otherwise (or on timeout); 130 when interrupted. Everything it
started (workers, simulator, the embedded Redis if it was not running, its database) it stops and
removes, also on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import random
import shutil
import signal
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, cast

from rich.console import Console

from imunban.deadletter import DeadLetters
from imunban.demo.db import DemoDatabase, safe_url
from imunban.demo.view import LiveView, PlainView, Row, Sample, View, summary_table
from imunban.keys import Keys
from imunban.linger import oldest_first_bound
from imunban.local import embedded
from imunban.local.cluster import LocalCluster
from imunban.settings import API_LIMIT_PER_S, Settings
from imunban.sim.core import SimConfig

GROUPS = 300
PER_GROUP = 20  # one full call per group in the burst
HIGH_EVERY = 10  # every 10th event-driven unban is high priority (a person is waiting)
DUPLICATE_EVENTS = 600  # the same event sent twice: deduplicated on enqueue
SCHEDULED = 4_000
SPREAD_S = 15.0
POISON = "poison-1"
POISON_CODE = 10004
TIMEOUT_S = 50.0
POLL_S = 0.25
KEY_PREFIX = "imunban-demo"
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def sim_config(seed: int | None = None) -> SimConfig:
    return SimConfig(
        latency_ms=30,
        latency_jitter_ms=10,
        http_502_rate=0.01,
        error_10002_rate=0.01,
        poison_members=frozenset({POISON}),
        rate_limit=int(API_LIMIT_PER_S),
        seed=seed,
    )


# -- the workload -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """The events to enqueue and, per group, the members that must end up unbanned."""

    burst: list[dict[str, Any]]
    scheduled: list[dict[str, Any]]
    expected: dict[str, frozenset[str]]
    poison_group: str

    @property
    def expected_total(self) -> int:
        return sum(len(members) for members in self.expected.values())


def make_plan(now_s: float, rng: random.Random) -> Plan:
    """A burst of 6,000 unbans (one group's full batch holds the poison member), 600 repeats of
    them, and 4,000 expiries due uniformly over the next 15 s in groups of skewed popularity."""
    groups = [f"room-{g:04d}" for g in range(GROUPS)]
    poison_group = groups[-1]  # the quietest room: its one full batch is all from the burst
    expected: dict[str, set[str]] = {g: set() for g in groups}
    burst: list[dict[str, Any]] = []
    for g, group in enumerate(groups):
        for m in range(PER_GROUP):
            member = POISON if group == poison_group and m == PER_GROUP - 1 else f"u{g:04d}-{m:02d}"
            # The poison group stays all normal so that the poison member sits in one full batch.
            high = group != poison_group and (g + m) % HIGH_EVERY == 0
            burst.append({"group_id": group, "member": member, "priority": "high" if high else "normal"})
            if member != POISON:
                expected[group].add(member)
    burst += rng.sample(burst, DUPLICATE_EVENTS)
    rng.shuffle(burst)
    scheduled: list[dict[str, Any]] = []
    for i in range(SCHEDULED):
        group = groups[int(GROUPS * rng.random() ** 2)]  # a few busy rooms, a long tail of quiet ones
        member = f"x{i:05d}"
        scheduled.append({"group_id": group, "member": member, "at": now_s + SPREAD_S * (i + 1) / SCHEDULED})
        expected[group].add(member)
    return Plan(burst, scheduled, {g: frozenset(m) for g, m in expected.items()}, poison_group)


# -- signals ------------------------------------------------------------------------------------


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP back until the block is done (they are delivered then)."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP interrupt like Ctrl-C while the block runs; the old handlers come back after."""
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    for sig in SIGNALS:
        signal.signal(sig, _interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore_signals() -> None:
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


# -- the run ------------------------------------------------------------------------------------


def run_demo(*, workers: int = 2, timeout_s: float = TIMEOUT_S, seed: int | None = None, plain: bool = False) -> int:
    """Run the demo; returns the exit status (0 delivered as required, 1 not, 130 interrupted)."""
    settings = Settings.from_env()
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 120)  # logs and pipes: keep each progress line on one line
    demo = Demo(settings, console, workers=workers, timeout_s=timeout_s, seed=seed)
    return demo.run(live=console.is_terminal and not plain)


class Demo:
    """One run: start everything on an exit stack, drive the workload, summarise, stop everything."""

    def __init__(
        self, settings: Settings, console: Console, *, workers: int, timeout_s: float, seed: int | None
    ) -> None:
        self.settings = settings
        self.console = console
        self.n_workers = workers
        self.timeout_s = timeout_s
        self.seed = seed
        self.limit = settings.single_app.rate_limit_per_s
        self.stack = ExitStack()
        self.started_redis = False

    def run(self, *, live: bool) -> int:
        code = 130
        with _signals_interrupt():
            root = Path(tempfile.mkdtemp(prefix="imunban-demo-"))
            try:
                code = self._run(root, live)
            except KeyboardInterrupt:
                self.console.print("\n[yellow]interrupted[/]: stopping everything the demo started")
            finally:
                _ignore_signals()  # a second Ctrl-C must not cut the clean-up short
                self.stack.close()
                if code == 1:
                    self.console.print(f"worker logs kept in {root}")
                else:
                    shutil.rmtree(root, ignore_errors=True)
        redis_text = " (and the redis-server it had to start)" if self.started_redis else ""
        self.console.print(f"stopped everything the demo started{redis_text}")
        return code

    def _base_redis(self) -> str:
        """IMUNBAN_REDIS_URL, else the embedded server (stopped again at the end if the demo starts it)."""
        settings = self.settings
        if settings.redis_url is not None:
            return settings.redis_url
        with _signals_deferred():  # no Ctrl-C between starting the server and noting that we did
            _, running = embedded.status(settings.data_dir)
            url = embedded.ensure_running(settings.data_dir)
            if running is None:
                self.started_redis = True
                self.stack.callback(embedded.stop, settings.data_dir)
        return url

    def _start(self, root: Path) -> tuple[LocalCluster, DemoDatabase]:
        base_url = self._base_redis()
        database = self.stack.enter_context(DemoDatabase(base_url))
        cluster = LocalCluster(
            root,
            workers=self.n_workers,
            sim_config=sim_config(self.seed),
            env={"IMUNBAN_KEY_PREFIX": KEY_PREFIX, "IMUNBAN_RATE_LIMIT": f"{self.limit:g}"},
            redis_url=database.url,
        )
        self.stack.callback(cluster.stop)
        cluster.start()
        redis_text = f"redis-server pid {database.server_pid()}" if self.started_redis else "redis"
        self.console.print(
            f"[bold]imunban demo[/]: {redis_text} at {safe_url(base_url)} (database {database.db}), "
            f"workers pid {', '.join(str(p.pid) for p in cluster.workers if p)}, simulator at {cluster.api_url}\n"
            f"simulator: 30±10 ms per call, 1% HTTP 502, 1% ErrorCode 10002, poison member {POISON!r}, "
            f"{API_LIMIT_PER_S:g} calls/s; imunban's limit {self.limit:g} calls/s (IMUNBAN_RATE_LIMIT)",
            soft_wrap=True,
        )
        return cluster, database

    def _run(self, root: Path, live: bool) -> int:
        cluster, database = self._start(root)
        plan = make_plan(time.time(), random.Random(self.seed))
        view: View = (LiveView if live else PlainView)(
            self.console, expected=plan.expected_total, limit_per_s=self.limit
        )
        self.stack.callback(view.close)
        elapsed_s, timed_out = _drive(cluster, database, plan, view, self.timeout_s)
        view.close()
        rows, passed = _summarise(cluster, plan, elapsed_s, timed_out, self.limit)
        self.console.print(summary_table(rows))
        if passed:
            self.console.print(
                f"[green]PASS[/]: all {plan.expected_total:,} requests delivered; "
                f"{POISON!r} dead-lettered with {POISON_CODE}"
            )
            return 0
        self.console.print("[bold red]FAIL[/]: see the rows marked FAIL")
        return 1


def _drive(
    cluster: LocalCluster, database: DemoDatabase, plan: Plan, view: View, timeout_s: float
) -> tuple[float, bool]:
    """Enqueue the plan, then poll until nothing is queued, scheduled or in flight (or the timeout)."""
    producer = cluster.producer()
    started = time.monotonic()
    producer.bulk(plan.burst)
    producer.bulk(plan.scheduled)
    while True:
        elapsed = time.monotonic() - started
        status = cluster.status()
        view.update(Sample(elapsed, status, cluster.sim_stats()))
        database.refresh()
        if status["queued"] == 0 and status["scheduled"] == 0 and status["in_flight"] == 0:
            return elapsed, False
        if elapsed > timeout_s:
            return elapsed, True
        time.sleep(POLL_S)


def _summarise(
    cluster: LocalCluster, plan: Plan, elapsed_s: float, timed_out: bool, limit: float
) -> tuple[list[Row], bool]:
    """The summary rows and whether the run passed (everything delivered, the poison member dead)."""
    assert cluster.simulator is not None
    status, sim = cluster.status(), cluster.sim_stats()
    counters = status["counters"]
    missing = sum(len(members - cluster.simulator.unbanned(g)) for g, members in plan.expected.items())
    dead = DeadLetters(cluster.client, Keys(KEY_PREFIX)).list(limit=1_000)
    poison_ok = [(d.group_id, d.member, d.code) for d in dead] == [(plan.poison_group, POISON, POISON_CODE)]
    dead_text = ", ".join(f"{d.member} in {d.group_id} ({d.code})" for d in dead[:3]) or "none"
    delivered_ok = missing == 0 and not timed_out
    ok_calls = sim["calls_ok"] or 1
    rows: list[Row] = [
        ("events enqueued", events_text(plan), None),
        ("deduplicated on enqueue", f"{counters['deduplicated']:,}", None),
        ("delivered (distinct)", f"{plan.expected_total - missing:,} / {plan.expected_total:,}", delivered_ok),
        ("dead letters", f"{len(dead)}: {dead_text}", poison_ok),
        ("elapsed, first enqueue to drained", f"{elapsed_s:.1f} s" + (" (TIMED OUT)" if timed_out else ""), None),
        ("API calls (successful)", f"{sim['calls']:,} ({sim['calls_ok']:,})", None),
        ("members per successful call", f"{sim['members_unbanned'] / ok_calls:.1f}", None),
        ("most calls in any 1 s window", f"{sim['max_calls_in_1s']} (paced at {limit:g}/s)", None),
        ("rate-limit rejections (60007)", f"{sim['rate_limited']}", None),
        ("failed calls by code", _codes(sim), None),
        ("members retried", f"{counters['retried']:,}", None),
        ("duplicate unbans (at-least-once)", f"{sim['duplicate_unbans']:,}", None),
        ("scheduled: due -> delivered", _lateness(cluster, plan, limit), None),
    ]
    return rows, delivered_ok and poison_ok


def events_text(plan: Plan) -> str:
    """The summary's "events enqueued": the burst's distinct unbans, their repeats and the expiries (as README says)."""
    unbans, repeats, expiries = len(plan.burst) - DUPLICATE_EVENTS, DUPLICATE_EVENTS, len(plan.scheduled)
    return f"{unbans + repeats + expiries:,} ({unbans:,} unbans + {repeats:,} repeats, {expiries:,} expiries)"


def _codes(sim: dict[str, Any]) -> str:
    failed = {f"HTTP {k}": v for k, v in sim["http_status"].items() if k != "200"}
    failed.update({k: v for k, v in sim["codes"].items() if k != "0"})
    return ", ".join(f"{k}: {v}" for k, v in failed.items()) or "none"


def _lateness(cluster: LocalCluster, plan: Plan, limit: float) -> str:
    """Percentiles of delivered minus due for the scheduled expiries, beside the oldest-first bound W.

    W is what an oldest-first policy can do at best when calls, not members, are the limit: the
    smallest wait per group with sum over groups of (1 - e^(-λW)) / W <= the limit (λ: each group's
    expiries per second in this plan). Retries and the burst at the start count in the lateness.
    """
    entries = cast(list[tuple[str, dict[str, str]]], cluster.client.xrange(Keys(KEY_PREFIX).outcomes))
    delivered = [f for _, f in entries if f["member"].startswith("x") and f["outcome"] == "delivered"]
    late = [int(f["at_ms"]) - int(f["due_ms"]) for f in delivered]
    # The policy's own lateness, the one to hold against W: expiries due once the burst has drained
    # (before that they queue behind it, oldest first) and delivered at the first try (the injected
    # faults send a few percent through a retry with a backoff of a second or more).
    burst_end_ms = max((int(f["at_ms"]) for _, f in entries if not f["member"].startswith("x")), default=0)
    first = [
        int(f["at_ms"]) - int(f["due_ms"])
        for f in delivered
        if f.get("attempts") == "1" and int(f["due_ms"]) > burst_end_ms
    ]
    if len(late) < 2 or len(first) < 2:
        return "-"
    cuts, first_p99 = statistics.quantiles(late, n=100), statistics.quantiles(first, n=100)[98]
    per_group = Counter(str(item["group_id"]) for item in plan.scheduled)
    bound_ms = oldest_first_bound([n / SPREAD_S for n in per_group.values()], limit) * 1000
    text = f"p50 {cuts[49]:,.0f} ms, p99 {cuts[98]:,.0f} ms; after the burst, first tries p99 {first_p99:,.0f} ms"
    return text + (f", bound W {bound_ms:,.0f} ms (ratio {first_p99 / bound_ms:.2f})" if bound_ms > 0 else "")
