"""Scattered scheduled expiries, where calls and not members are the limit (docs/semantics.md#targets).

Many groups, each with a trickle of single-member expiries (Poisson arrivals): too few members per
group to fill batches, too many groups to give each due member its own call. An oldest-first
policy that calls each group at most once per ``W`` seconds makes ``groups x (1 - e^(-λW)) / W``
calls per second (a group is called in a window when at least one of its members fell due in it);
the smallest ``W`` keeping that within the rate limit is the bound the lateness is held against.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from imunban import linger
from imunban.bench.config import BenchConfig
from imunban.bench.scenarios import cluster_for, ready
from imunban.bench.util import (
    Log,
    drained,
    last_outcome_id,
    percentile,
    read_outcomes,
    sim_window,
    wait_for,
    warm_up,
)

#: Seconds between enqueueing everything and the first due time.
LEAD_S = 3.0


def calls_per_s(groups: int, members_per_s_per_group: float, wait_s: float) -> float:
    """Calls/s of an oldest-first policy waiting ``wait_s`` per group: groups x (1 - e^(-λW)) / W."""
    return linger.calls_per_s([members_per_s_per_group] * groups, wait_s)


def oldest_first_bound(groups: int, members_per_s_per_group: float, rate_limit: float) -> float:
    """The smallest W (seconds) with groups x (1 - e^(-λW)) / W <= rate_limit; 0 when one call per member fits."""
    if groups <= 0 or members_per_s_per_group <= 0:
        return 0.0
    return linger.oldest_first_bound([members_per_s_per_group] * groups, rate_limit)


def poisson_expiries(
    rng: random.Random, groups: int, members_per_s: float, seconds: float, prefix: str
) -> list[tuple[float, str, str]]:
    """(offset s, group id, member) by offset: independent Poisson arrivals per group, ``members_per_s`` in all."""
    per_group = members_per_s / groups
    out: list[tuple[float, str, str]] = []
    for g in range(groups):
        t = rng.expovariate(per_group)
        n = 0
        while t < seconds:
            out.append((t, f"{prefix}{g:04d}", f"x{g:04d}_{n:05d}"))
            n += 1
            t += rng.expovariate(per_group)
    out.sort()
    return out


def scattered(cfg: BenchConfig, root: Path, log: Log) -> dict[str, Any]:
    """Enqueue scattered expiries up front (due over the window), then measure delivered - due per request."""
    rng = random.Random(cfg.seed + 7)
    prefix = "scat-"
    expiries = poisson_expiries(rng, cfg.scattered_groups, cfg.scattered_rate, cfg.scattered_s, prefix)
    lam = cfg.scattered_rate / cfg.scattered_groups
    bound = oldest_first_bound(cfg.scattered_groups, lam, cfg.rate_limit)
    with cluster_for(cfg, root / "scattered") as cluster:
        ready(cluster, log)
        warm_up(cluster)
        after = last_outcome_id(cluster)
        base = time.time() + LEAD_S
        cluster.producer().bulk({"group_id": g, "member": m, "at": base + t} for t, g, m in expiries)
        time.sleep(max(0.0, base - time.time()))
        before = cluster.sim_stats()
        time.sleep(max(0.0, base + cfg.scattered_s - time.time()))
        window = sim_window(before, cluster.sim_stats(), cfg.scattered_s)
        done = wait_for(lambda: drained(cluster), 60.0 + cfg.scattered_s, poll_s=0.1)
        outcomes = [o for o in read_outcomes(cluster, after=after) if o.get("group_id", "").startswith(prefix)]
    lateness = [int(o["at_ms"]) - int(o["due_ms"]) for o in outcomes if o.get("outcome") == "delivered"]
    p99 = percentile(lateness, 99)
    result = {
        "groups": cfg.scattered_groups,
        "members_per_s": cfg.scattered_rate,
        "members_per_s_per_group": lam,
        "seconds": cfg.scattered_s,
        "rate_limit": cfg.rate_limit,
        "requests": len(expiries),
        "delivered": len(lateness),
        "drained": done,
        "bound_s": bound,
        "p50_ms": percentile(lateness, 50),
        "p90_ms": percentile(lateness, 90),
        "p99_ms": p99,
        "p999_ms": percentile(lateness, 99.9),
        "max_ms": max(lateness) if lateness else None,
        "ratio": p99 / (1000 * bound) if p99 is not None and bound > 0 else None,
        # The ack is written after the API answered, which takes at least the simulator's latency:
        # an ack less than that after the due time means the call left before it.
        "early": sum(1 for v in lateness if v < cfg.latency_ms),
        "acked_before_due": sum(1 for v in lateness if v < 0),
        "calls_per_s": window["calls_per_s"],
        "members_per_call": window["members_per_call"],
    }
    log(
        f"  lateness p99 {p99} ms, bound W {1000 * bound:.0f} ms, ratio {result['ratio'] or 0:.2f}, "
        f"{result['delivered']} of {result['requests']} delivered, {result['early']} early"
    )
    return result
