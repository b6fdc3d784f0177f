"""The ``full`` scenario of ``imunban bench``: intake fills Redis while Celery messages are in flight.

It runs the full-Redis drill (:mod:`imunban.local.full_drill`) with the bench's workers: Celery messages
accepted before Redis fills, bulk intake until "Redis is full", Celery messages until Redis refuses
them, the stored backlog drained while intake is refused, every worker stopped and one started on a
full Redis, then maxmemory raised. Reported: accepted, delivered, lost, workers that died, what was
delivered while full, and how soon the worker started on the full Redis delivered.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from imunban.bench.config import BenchConfig
from imunban.bench.util import Log
from imunban.local.full_drill import FullDrillConfig, run_full_drill


def full(cfg: BenchConfig, root: Path, log: Log) -> dict[str, Any]:
    """Run the drill; return its figures."""
    drill = FullDrillConfig(
        workers=cfg.workers,
        concurrency=cfg.concurrency,
        headroom_bytes=cfg.full_headroom_bytes,
        sim_latency_ms=int(cfg.latency_ms),
    )
    report = run_full_drill(root / "full-drill", drill, log=lambda message: log(f"  {message}"))
    return {**dataclasses.asdict(report), "accepted": report.accepted, "headroom_bytes": cfg.full_headroom_bytes}
