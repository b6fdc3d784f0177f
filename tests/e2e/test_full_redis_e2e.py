"""A full Redis end to end: `imunban worker` processes, a real redis-server at maxmemory, Celery messages in flight.

The drill (imunban.local.full_drill) fills Redis by intake (bulk enqueues until "Redis is full", then
Celery messages until Redis refuses them) while workers consume Celery messages accepted before; the
stored backlog must drain while intake is still refused, no worker may die, a worker started on the
full Redis must come up and deliver, every accepted request not delivered yet must still wait in the
broker's queue, and once maxmemory is raised every accepted request must reach the API.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imunban.local.full_drill import FullDrillConfig, run_full_drill


@pytest.mark.timeout(240)
def test_a_full_redis_loses_nothing_and_kills_no_worker(tmp_path: Path) -> None:
    """Intake fills Redis with Celery messages in flight: backlog drained while full, 0 lost, 0 workers died."""
    report = run_full_drill(tmp_path, FullDrillConfig(headroom_bytes=2 * 1024 * 1024), log=print)
    print(f"\nfull-Redis drill: {report}")  # the figures, for -s runs and the bench write-up
    assert len(report.fill_refusals) == 2 and min(report.fill_refusals) > 0, "Redis never refused a write: not full"
    assert report.celery_accepted > 300 and report.refused_enqueues == 2
    assert report.workers_died == 0
    assert report.delivered_while_full >= 1_000, "the stored backlog did not drain while intake was refused"
    assert report.late_worker_start_use >= 0.99, "the late worker did not start on a full Redis"
    assert report.late_worker_delivered >= 500, "a worker started on the full Redis did not deliver"
    assert report.unaccounted == 0, "an accepted request was neither delivered nor waiting in the queue"
    assert report.drained, "the queues did not drain once maxmemory was raised"
    assert report.lost == 0, f"accepted but never delivered: {report.lost_sample}"
    assert report.delivered == report.accepted
