"""The "quota" scenario of ``imunban bench``: the API's quota drops mid-drain and an operator sets a live limit.

A backlog drains at the configured limit against a simulator enforcing QUOTA_BEFORE calls per sliding
second; after DROP_AFTER_S the simulator's quota drops to QUOTA_AFTER (a quota cut, a smaller
package): calls beyond it are answered 60007. REACT_S later the bench, as an operator would, runs the
equivalent of ``imunban limit LIVE_LIMIT`` (0.95 of the new quota). Reported from the simulator's
per-second timeline: 60007 answers between the drop and the live limit, how long after the live limit
the last one came (every worker applies it within 1 s), and the calls/s delivered after it against the
new quota (target >= 0.9 x QUOTA_AFTER). The adaptive limit (AIMD on 60007) is not built: without it,
the rejections before the operator acts are the cost.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from imunban.bench.config import BenchConfig
from imunban.bench.scenarios import cluster_for, ready
from imunban.bench.util import Log, drained, wait_for, warm_up
from imunban.bench.verdict import INFO, Row, check, num
from imunban.pause import Actor

QUOTA_BEFORE, QUOTA_AFTER = 200, 100
#: The live limit the operator sets: 0.95 of the new quota, as the configured 190 is of 200.
LIVE_LIMIT = 95.0
DROP_AFTER_S, REACT_S, AFTER_S = 4.0, 2.0, 12.0
#: Seconds after the live limit that are left out of the steady rate (the change applies within 1 s).
SETTLE_S = 2
#: Target: calls/s after the live limit against the new quota.
QUOTA_RATIO = 0.9
BENCH = Actor("bench", "bench", "imunban bench")


def quota(cfg: BenchConfig, root: Path, log: Log) -> dict[str, Any]:
    """Drain, drop the simulator's quota, set the live limit, and read the timeline (see the module docstring)."""
    folder = root / "quota"
    folder.mkdir(parents=True, exist_ok=True)
    per_s = 20 * cfg.rate_limit
    members = int(per_s * DROP_AFTER_S + 20 * QUOTA_AFTER * (REACT_S + AFTER_S) + per_s)  # still draining at the end
    with cluster_for(cfg, folder) as cluster:
        ready(cluster, log)
        warm_up(cluster)
        sim, engine = cluster.simulator, cluster.deployment.app(None)
        assert sim is not None
        sim.configure(rate_limit=QUOTA_BEFORE)
        sim.reset()
        cluster.producer().bulk(
            {"group_id": f"quota-{g:05d}", "members": [f"u{m:03d}" for m in range(100)]} for g in range(members // 100)
        )
        time.sleep(DROP_AFTER_S)
        drop_s = time.time()
        sim.configure(rate_limit=QUOTA_AFTER)
        time.sleep(REACT_S)
        set_s = time.time()
        engine.limit.set(LIVE_LIMIT, BENCH)
        time.sleep(AFTER_S)
        timeline = sim.snapshot()["timeline"]
        end_s = time.time()
        sim.configure(rate_limit=QUOTA_BEFORE)
        engine.limit.reset(BENCH)
        wait_for(lambda: drained(cluster), 120.0, poll_s=0.2)
    result = summarize(timeline, drop_s, set_s, end_s)
    log(f"  60007 between drop and limit: {result['rejected_before_limit']}; last 60007 "
        f"{result['last_rejection_after_limit_s']} s after the limit; after it {result['calls_ok_per_s']} calls/s "
        f"({result['ratio_to_new_quota']} of {QUOTA_AFTER})")  # fmt: skip
    return result


def summarize(timeline: list[dict[str, Any]], drop_s: float, set_s: float, end_s: float) -> dict[str, Any]:
    """The figures of one run from the simulator's per-wall-second timeline."""
    before = sum(r["rate_limited"] for r in timeline if int(drop_s) <= r["t"] < int(set_s))
    after = [r for r in timeline if r["t"] >= int(set_s)]
    rejected_after = [r["t"] for r in after if r["rate_limited"]]
    steady = [r for r in after if int(set_s) + SETTLE_S <= r["t"] < int(end_s)]
    rate = sum(r["ok"] for r in steady) / len(steady) if steady else None
    return {
        "quota_before": QUOTA_BEFORE,
        "quota_after": QUOTA_AFTER,
        "live_limit": LIVE_LIMIT,
        "react_s": REACT_S,
        "rejected_before_limit": before,
        "rejected_after_limit": sum(r["rate_limited"] for r in after),
        # The timeline has whole seconds: the last second with a 60007, from the second the limit was set.
        "last_rejection_after_limit_s": (max(rejected_after) + 1 - set_s) if rejected_after else 0.0,
        "calls_ok_per_s": rate,
        "ratio_to_new_quota": None if rate is None else round(rate / QUOTA_AFTER, 3),
        "steady_seconds": len(steady),
    }


def quota_rows(q: dict[str, Any]) -> list[Row]:
    """Rejections stop within seconds of the live limit; the drain goes on at >= 0.9 of the new quota."""
    return [
        Row("quota", f"60007 answers in the {num(q.get('react_s'), 'g')} s before the live limit "
            f"({num(q.get('quota_before'))} → {num(q.get('quota_after'))} calls/s)",
            num(q.get("rejected_before_limit")), "", INFO),
        Row("quota", f"last 60007 after `imunban limit {num(q.get('live_limit'), 'g')}` / 60007 after it",
            f"{num(q.get('last_rejection_after_limit_s'), '.1f')} s / {num(q.get('rejected_after_limit'))}",
            "≤ 2 s (within seconds)", check(q.get("last_rejection_after_limit_s"), lambda s: s <= 2.0)),
        Row("quota", f"calls/s after the live limit ({num(q.get('steady_seconds'))} s)",
            f"{num(q.get('calls_ok_per_s'), '.1f')} ({num(q.get('ratio_to_new_quota'), '.3f')})",
            f"≥ {QUOTA_RATIO:g} x {num(q.get('quota_after'))}",
            check(q.get("ratio_to_new_quota"), lambda r: r >= QUOTA_RATIO)),
    ]  # fmt: skip
