"""Order between producers end to end: versioned instructions sent through Celery in shuffled order.

A worker process consumes `imunban.unban` / `imunban.cancel` messages (sent with ``send_task`` by a
process that imports only celery) on its thread pool, so they take effect in no particular order;
the simulator records every unban. For every request the highest version must win.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import wait_for
from imunban.keys import Keys
from imunban.local.cluster import LocalCluster
from imunban.sim.core import SimConfig

GROUPS = ("vg-a", "vg-b", "vg-c")
MEMBERS_PER_GROUP = 12
VERSIONS = 4
PATIENCE_S = 25


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """One worker (thread pool of 8), the simulator and a Redis; always stopped."""
    c = LocalCluster(tmp_path / "cluster", workers=1, sim_config=SimConfig(latency_ms=5), appendonly=False)
    c.start()
    yield c
    c.stop()


def send(cluster: LocalCluster, calls: list[dict[str, Any]], cwd: Path) -> None:
    """``send_task`` each call from a fresh interpreter that imports celery and nothing of imunban."""
    script = textwrap.dedent(
        f"""
        import json, sys
        from celery import Celery
        app = Celery(broker={cluster.redis_url!r})
        for call in json.loads(sys.argv[1]):
            app.send_task(call.pop("name"), queue="imunban", **call)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(calls)], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def plan(rng: random.Random, base_s: int) -> tuple[list[dict[str, Any]], dict[tuple[str, str], Any]]:
    """Instructions with versions 1..VERSIONS per request, shuffled, and what the highest version says.

    The highest instruction is a cancel, an unban now or an unban at a later time; every lower one is
    an unban at a later time or a cancel, so no lower instruction can be delivered before the highest
    arrives (a call already on the wire may land, SPEC §2) and the outcome is exact.
    """
    calls: list[dict[str, Any]] = []
    expected: dict[tuple[str, str], Any] = {}
    for group in GROUPS:
        for i in range(MEMBERS_PER_GROUP):
            member = f"m{i}"
            top = ("cancel", "now", "later")[i % 3]
            for version in range(1, VERSIONS + 1):
                kind = top if version == VERSIONS else rng.choice(("cancel", "later"))
                version_ms = 1_700_000_000_000 + version  # e.g. the ban record's update time in ms
                kwargs: dict[str, Any] = {"group_id": group, "members": [member], "version": version_ms}
                if kind == "later":
                    kwargs["at"] = base_s + 3_600 + version
                calls.append({"name": "imunban.cancel" if kind == "cancel" else "imunban.unban", "kwargs": kwargs})
            expected[(group, member)] = (base_s + 3_600 + VERSIONS) * 1000 if top == "later" else top
    # Redelivered messages (acks-late after a crash): some lower versions arrive once more, late.
    redelivered = [c for c in calls if c["kwargs"]["version"] < 1_700_000_000_000 + VERSIONS]
    rng.shuffle(calls)
    calls += [json.loads(json.dumps(c)) for c in rng.sample(redelivered, 20)]
    return calls, expected


@pytest.mark.timeout(120)
def test_highest_version_wins_for_every_request_through_celery(cluster: LocalCluster, tmp_path: Path) -> None:
    """Shuffled versioned unban/cancel messages: every request ends as its highest version says."""
    rng = random.Random(20240610)
    calls, expected = plan(rng, int(time.time()))
    send(cluster, calls, tmp_path)
    keys, client = Keys(cluster.settings().key_prefix), cluster.client
    assert cluster.simulator is not None

    def state(group: str, member: str) -> Any:
        if member in cluster.simulator.unbanned(group):  # type: ignore[union-attr]
            return "now"
        due = client.zscore(keys.sched_group(group), member)
        return int(due) if due is not None else "cancel"

    def settled() -> bool:
        return client.llen("imunban") == 0 and all(state(g, m) == want for (g, m), want in expected.items())

    wait_for(settled, PATIENCE_S)
    wrong = {k: (state(*k), want) for k, want in expected.items() if state(*k) != want}
    assert not wrong, (wrong, client.llen("imunban"), (tmp_path / "cluster" / "worker-0.log").read_text()[-3000:])
    time.sleep(1.5)  # a late lower version, if any were applied, would show now
    assert {k: state(*k) for k in expected} == expected
    counters = cluster.status()["counters"]
    assert counters["stale_instructions"] > 0
    assert counters["rejected_messages"] == 0
