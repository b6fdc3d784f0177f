"""Redis Cluster end to end: a master SIGKILLed mid-drain, and one app's slot moved mid-drain.

The rig (imunban.local.redis_cluster) is 3 masters with one replica each, the broker a plain Redis;
the drills (imunban.local.cluster_drill) run two apps on different masters, `imunban worker`
processes delivering and one durable producer per app enqueuing. Short versions of `imunban bench
--only cluster`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from imunban.local.cluster_drill import ClusterDrillConfig, ClusterDrillReport, run_cluster_drill

SHORT = ClusterDrillConfig(backlog=1_000, before_s=1.0, after_s=2.0)


def assert_nothing_lost(report: ClusterDrillReport) -> None:
    assert report.drained, "the queue did not drain after the drill"
    assert report.acknowledged > 2_000
    assert report.lost == 0, report.lost_sample
    # The other app keeps delivering: no gap near the killed app's (its figure, ~0.1 s quiet, is the bench's to
    # report; a loaded CI machine stretched it to 1.1 s, so this only rules out a stall).
    assert report.other_max_gap_s is not None and report.other_max_gap_s < 3.0, "the other app stalled"


@pytest.mark.timeout(120)
def test_master_killed_mid_drain(tmp_path: Path) -> None:
    """Alpha's master SIGKILLed with IMUNBAN_DURABLE_REPLICAS=1: 0 acknowledged lost, alpha delivers ≤ 5 s after."""
    report = run_cluster_drill(tmp_path, "kill", SHORT)
    print(f"\ncluster kill drill: {report}")
    assert_nothing_lost(report)
    assert report.kill_to_promotion_s is not None
    assert report.resumed_s is not None and report.resumed_s <= 5.0


@pytest.mark.timeout(120)
def test_slot_resharded_mid_drain(tmp_path: Path) -> None:
    """Alpha's slot moved to another master while it drains and producers enqueue: 0 lost, delivery continues."""
    report = run_cluster_drill(tmp_path, "reshard", dataclasses.replace(SHORT, reshard_pause_s=0.01))
    print(f"\ncluster reshard drill: {report}")
    assert_nothing_lost(report)
    assert report.moved_keys > 100 and report.migrating_s is not None
    assert report.resumed_s is not None
