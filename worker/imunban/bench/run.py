"""``imunban bench``: run every scenario one after another in this process tree, then report.

Scenarios (see :mod:`imunban.bench.scenarios`, :mod:`imunban.bench.naive`, :mod:`imunban.bench.redis_scenarios`):

1. ``drain``   a backlog of groups x members due now: members/s against 20 x the configured limit,
   members per call, rate-limit rejections, worker CPU (process tree) per API call, a per-second timeline;
2. ``naive``   the same kind of load as one Celery task per member through the same limiter;
3. ``latency`` due -> delivered p50/p99/p99.9 at 10/50/100 % load, from Celery, Python and scheduled
   (:mod:`imunban.bench.latency`); ``scattered`` scattered expiries against the oldest-first bound
   (:mod:`imunban.bench.scattered`); ``idle`` idle worker CPU and ``hog`` the drain beside a busy
   core (:mod:`imunban.bench.cpu`);
4. ``bulk``    Producer.bulk members/s against one ``apply_async`` per member;
5. ``scale``   N scheduled requests: Redis bytes each, enqueue and promotion rates empty vs full;
6. ``chaos``   API faults, worker SIGKILLs and a Redis restart: lost, duplicates, time to drain;
   ``full``    intake fills Redis with Celery messages in flight: accepted, delivered, lost, workers that
   died, delivered while full, a worker started on the full Redis (:mod:`imunban.bench.full`);
7. ``failover`` the Sentinel failover drill during a drain, and bulk enqueue with and without WAIT;
   ``cluster`` a Redis Cluster master killed and a slot moved mid-drain, bulk intake on a cluster
   (:mod:`imunban.bench.cluster`);
8. ``web``     the console's pages on a big store; ``apps`` two apps: A's backlog beside B's Celery
   trickle, then A held while B drains (:mod:`imunban.bench.apps`); ``fourapps`` four apps at full rate
   at once: members/s per app, rejections, worker cores (:mod:`imunban.bench.fourapps`); ``quota`` the API's
   quota drops from 200/s to 100/s mid-drain and the bench sets a live limit (:mod:`imunban.bench.quota`).

Ratios are measured side by side in the same run, because the absolute numbers of a shared or
noisy machine move from run to run.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from imunban.bench.apps import apps
from imunban.bench.cluster import cluster
from imunban.bench.config import BenchConfig, machine_info
from imunban.bench.cpu import hog, idle
from imunban.bench.failover import failover
from imunban.bench.fourapps import fourapps
from imunban.bench.full import full
from imunban.bench.latency import latency
from imunban.bench.naive import naive
from imunban.bench.quota import quota
from imunban.bench.redis_scenarios import bulk, scale
from imunban.bench.report import MISS, build_rows, plot_drain, print_table, write_outputs
from imunban.bench.scattered import scattered
from imunban.bench.scenarios import chaos, drain
from imunban.bench.util import Log, loadavg1
from imunban.bench.web import web

Scenario = Callable[[BenchConfig, Path, Log], dict[str, Any]]

RUNNERS: dict[str, Scenario] = {
    "drain": drain,
    "naive": naive,
    "latency": latency,
    "scattered": scattered,
    "idle": idle,
    "hog": hog,
    "bulk": bulk,
    "scale": scale,
    "chaos": chaos,
    "full": full,
    "failover": failover,
    "web": web,
    "apps": apps,
    "cluster": cluster,
    "fourapps": fourapps,
    "quota": quota,
}


def run_scenarios(cfg: BenchConfig, work_dir: Path, log: Log) -> dict[str, Any]:
    """Run the configured scenarios in order; a failing scenario is recorded and the rest still run."""
    results: dict[str, Any] = {}
    for name in cfg.scenarios:
        log(f"[bold]{name}[/bold] …")
        load_before = loadavg1()
        started = time.monotonic()
        try:
            data = RUNNERS[name](cfg, work_dir, log)
        except Exception as exc:  # one broken scenario must not hide the others' numbers
            log(f"[red]{name} failed:[/red] {exc}")
            data = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        data["wall_s"] = round(time.monotonic() - started, 2)
        # Other work on the machine moves the absolute numbers: keep the 1-minute load around each run.
        data["loadavg_1m"] = {"before": load_before, "after": loadavg1(), **data.get("loadavg_1m", {})}
        log(f"  {name} took {data['wall_s']:.1f} s")
        results[name] = data
    return results


def run_bench(
    cfg: BenchConfig,
    out_dir: Path,
    *,
    plot_path: Path | None = None,
    command: str = "imunban bench",
    console: Console | None = None,
    keep_work_dir: bool = False,
) -> dict[str, Any]:
    """Run, print the table, write results.json / results.md and the drain plot; return everything."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=150)  # a log file or a pipe: keep each table row on one line

    def log(message: str) -> None:
        console.print(message, highlight=False)

    results: dict[str, Any] = {"command": command, "machine": machine_info(), "config": cfg.to_json()}
    work_dir = Path(tempfile.mkdtemp(prefix="imunban-bench-"))
    started = time.monotonic()
    try:
        results["scenarios"] = run_scenarios(cfg, work_dir, log)
    finally:
        if keep_work_dir:
            log(f"work files kept in {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    results["wall_s"] = round(time.monotonic() - started, 1)
    rows = build_rows(results)
    print_table(rows, console)
    written = write_outputs(results, rows, out_dir)
    drain_result = results["scenarios"].get("drain")
    if drain_result and "error" not in drain_result:
        plot_path = plot_path or out_dir / "bench-drain.png"
        why_not = plot_drain(drain_result, cfg.rate_limit, plot_path)
        if why_not is None:
            written.append(plot_path)
        else:
            log(f"no plot: {why_not}")
    results["misses"] = [f"{r.scenario}: {r.metric}" for r in rows if r.verdict == MISS]
    log(f"took {results['wall_s']:.0f} s; wrote " + ", ".join(str(p) for p in written))
    return results
