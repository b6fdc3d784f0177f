"""The pure parts of the latency, scattered, CPU and profile instruments of ``imunban bench`` (issue 12)."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from imunban.bench.config import BenchConfig
from imunban.bench.cpu import idle_percent
from imunban.bench.engine_rows import hog_rows, idle_rows, latency_rows, scattered_rows
from imunban.bench.latency import poisson_events, summarize
from imunban.bench.profile import frame_name, top_frames, top_markdown
from imunban.bench.report import MISS, OK, build_rows
from imunban.bench.scattered import calls_per_s, oldest_first_bound, poisson_expiries
from imunban.bench.util import descendants, parse_stat

# -- the oldest-first bound W -------------------------------------------------------------------------


def test_bound_matches_the_issue() -> None:
    """4,000 expiries over 15 s across 300 groups at 190 calls/s: W is about 0.81 s (the issue says about 0.82)."""
    w = oldest_first_bound(300, 4_000 / 15 / 300, 190.0)
    assert w == pytest.approx(0.811, abs=0.002)
    assert calls_per_s(300, 4_000 / 15 / 300, w) == pytest.approx(190.0, rel=1e-6)


def test_bound_is_the_smallest_w_within_the_limit() -> None:
    """At W the calls/s are within the limit; a little less W exceeds it."""
    lam = 266 / 300
    w = oldest_first_bound(300, lam, 190.0)
    assert calls_per_s(300, lam, w) <= 190.0 + 1e-9
    assert calls_per_s(300, lam, w * 0.99) > 190.0


def test_bound_is_monotonic() -> None:
    """W grows with the arrival rate and the number of groups, and shrinks as the limit rises."""
    by_rate = [oldest_first_bound(300, lam, 190.0) for lam in (0.7, 0.8, 0.9, 1.2, 2.0, 5.0)]
    assert by_rate == sorted(by_rate) and len(set(by_rate)) == len(by_rate)
    by_groups = [oldest_first_bound(g, 0.9, 190.0) for g in (250, 300, 500, 1_000)]
    assert by_groups == sorted(by_groups) and len(set(by_groups)) == len(by_groups)
    by_limit = [oldest_first_bound(300, 0.9, r) for r in (50.0, 100.0, 150.0, 190.0)]
    assert by_limit == sorted(by_limit, reverse=True) and len(set(by_limit)) == len(by_limit)


def test_bound_is_zero_when_a_call_per_member_fits() -> None:
    """No waiting is needed when groups x λ is within the limit (or nothing arrives)."""
    assert oldest_first_bound(100, 1.0, 190.0) == 0.0
    assert oldest_first_bound(300, 0.0, 190.0) == 0.0
    assert oldest_first_bound(0, 5.0, 190.0) == 0.0
    assert calls_per_s(300, 0.5, 0.0) == 150.0


def test_bound_under_heavy_load_tends_to_groups_over_limit() -> None:
    """When every group has a member due in every window, W approaches groups / limit."""
    assert oldest_first_bound(300, 1_000.0, 190.0) == pytest.approx(300 / 190, rel=1e-3)


# -- arrivals -------------------------------------------------------------------------------------------


def test_poisson_expiries_shape() -> None:
    """Per-group Poisson arrivals: sorted, inside the window, unique members, about the asked rate."""
    expiries = poisson_expiries(random.Random(1), 300, 266.0, 30.0, "scat-")
    times = [t for t, _, _ in expiries]
    assert times == sorted(times) and times[0] >= 0 and times[-1] < 30.0
    assert len({m for _, _, m in expiries}) == len(expiries)
    assert len(expiries) == pytest.approx(266 * 30, rel=0.05)
    assert len({g for _, g, _ in expiries}) == 300 and all(g.startswith("scat-") for _, g, _ in expiries)


def test_poisson_events_shape() -> None:
    """Events of 1-20 new members for random groups, ascending in time, about the asked members/s."""
    events = poisson_events(random.Random(2), 380.0, 60.0, 500, "l010p-")
    assert [e.t for e in events] == sorted(e.t for e in events) and events[-1].t < 60.0
    assert all(1 <= len(e.members) <= 20 for e in events)
    members = [m for e in events for m in e.members]
    assert len(set(members)) == len(members)
    assert len(members) == pytest.approx(380 * 60, rel=0.08)
    assert poisson_events(random.Random(2), 380.0, 60.0, 500, "l010p-") == events  # seeded: repeatable


def test_summarize_percentiles() -> None:
    """p50 / p99 / p99.9 / max of a known list, with a key prefix; empty gives None."""
    out = summarize(list(range(1, 1_001)), "send_")
    assert (out["send_p50_ms"], out["send_p99_ms"], out["send_p999_ms"], out["send_max_ms"]) == (500, 990, 999, 1_000)
    assert summarize([])["p99_ms"] is None


# -- CPU of a process tree ------------------------------------------------------------------------------

STAT = "4242 (my (odd) proc) S 17 4242 4242 0 -1 4194560 1234 0 0 0 250 50 7 3 20 0 1 0 100 0 0\n"


def test_parse_stat_counts_own_and_reaped_children() -> None:
    """Parent pid and utime + stime + cutime + cstime, read after the last ')' of the name."""
    assert parse_stat(STAT) == (17, 310)


def test_descendants_walk_the_whole_tree() -> None:
    """Roots first, then children and grandchildren; other trees and cycles are left out."""
    parents = {10: 1, 11: 10, 12: 10, 13: 11, 20: 1, 21: 20, 30: 31, 31: 30}
    assert descendants([10], parents) == [10, 11, 13, 12]
    assert sorted(descendants([10, 20], parents)) == [10, 11, 12, 13, 20, 21]
    assert descendants([30], parents) == [30, 31]
    assert descendants([99], parents) == [99]


def test_idle_percent() -> None:
    """CPU seconds over wall seconds as % of one core; a missing reading gives None."""
    assert idle_percent(10.0, 10.1, 20.0) == pytest.approx(0.5)
    assert idle_percent(None, 1.0, 20.0) is None and idle_percent(1.0, 2.0, 0.0) is None


# -- profile summary ------------------------------------------------------------------------------------

RAW = [
    "<module> (imunban/__main__.py:3);run (imunban/pump.py:40);claim (imunban/store.py:90) 30",
    "<module> (imunban/__main__.py:3);run (imunban/pump.py:41);sleep (imunban/pump.py:70) 10",
    "<module> (imunban/__main__.py:3);deliver (imunban/delivery.py:12);post (requests/api.py:5) 60",
    "garbage line",
]


def test_top_frames_own_and_total() -> None:
    """Own samples go to the leaf; total counts each function once per stack; line numbers merge."""
    top = top_frames(RAW)
    assert top.samples == 100
    assert top.own[0] == ("post (requests/api.py)", 60)
    total = dict(top.total)
    assert total["<module> (imunban/__main__.py)"] == 100
    assert total["run (imunban/pump.py)"] == 40
    assert frame_name("f (/a/b/c/mod.py:12)") == "f (c/mod.py)" and frame_name("thread") == "thread"
    text = top_markdown(top, "worker 0")
    assert "| `post (requests/api.py)` | 60 | 60.0 |" in text and text.startswith("worker 0 — 100 samples")


# -- verdict rows ---------------------------------------------------------------------------------------


def _window(load: float, source: str, p99: float, delivered: int = 100, **extra: Any) -> dict[str, Any]:
    return {"load": load, "source": source, "members_per_s": 3_800 * load, "requests": 100,
            "delivered": delivered, "p50_ms": p99 / 2, "p99_ms": p99, "p999_ms": p99 + 10, **extra}  # fmt: skip


def test_latency_rows_target_p99_at_ten_and_fifty_percent_from_the_send() -> None:
    """10 % load rows carry p99 <= 50 ms, 50 % rows <= 100 ms (and all delivered), measured from the send; the
    due-based figures follow as reference; other loads are information; the burst row checks its bound."""
    rows = latency_rows(
        {
            "windows": [
                _window(0.1, "celery", 45, measured_from="send", due_p50_ms=20, due_p99_ms=40, due_p999_ms=41),
                _window(0.1, "python", 120, measured_from="send"),
                _window(0.1, "scheduled", 30, delivered=99, measured_from="requested due time"),
                _window(0.5, "python", 90, measured_from="send"),
                _window(1.0, "python", 5_000, measured_from="send"),
            ],
            "burst": {"members": 2000, "delivered": 2000, "bound_s": 0.609, "last_s": 0.55, "early": 0},
        }
    )
    verdicts = [(r.metric.split(":")[0], r.verdict) for r in rows]
    assert verdicts == [
        ("10 % load (380/s), celery", OK),
        ("10 % load, celery", ""),
        ("10 % load (380/s), python", MISS),
        ("10 % load (380/s), scheduled", MISS),
        ("50 % load (1,900/s), python", OK),
        ("100 % load (3,800/s), python", ""),
        ("burst of 2,000 due in the same instant", OK),
    ]
    assert "(from send)" in rows[0].metric and rows[1].value == "20 / 40 / 41 ms"
    assert rows[0].value == "22 / 45 / 55 ms" and "99 of 100 delivered" in rows[3].value


def test_scattered_idle_hog_rows() -> None:
    """Ratio <= 1.25, none early, all delivered; idle <= 0.5 % of a core; hog drain >= 0.95."""
    scattered = {"groups": 300, "members_per_s": 266.0, "rate_limit": 190.0, "requests": 10, "delivered": 10,
                 "bound_s": 0.81, "p99_ms": 900, "ratio": 1.11, "early": 0}  # fmt: skip
    assert [r.verdict for r in scattered_rows(scattered) if r.verdict] == [OK, OK, OK]
    late = scattered_rows({**scattered, "ratio": 2.06, "early": 3, "delivered": 9})
    assert [r.verdict for r in late if r.verdict] == [MISS, MISS, MISS]
    assert [r.verdict for r in idle_rows({"seconds": 20, "pct_of_core": [0.3, 0.6], "max_pct": 0.6})] == [MISS, ""]
    assert idle_rows({"seconds": 20, "pct_of_core": [0.2, 0.3], "max_pct": 0.3})[0].verdict == OK
    hog = hog_rows({"members_per_s": 3_400.0, "ratio_to_20x_limit": 3_400 / 3_800}, 190.0)
    assert [r.verdict for r in hog[:2]] == [MISS, MISS] and hog[0].target == "≥ 3,610"


def test_build_rows_includes_the_new_scenarios_and_drain_cpu_target() -> None:
    """The table has rows for every new scenario, and the drain's CPU per call has its 1 ms target (issue 20)."""
    results = {
        "config": BenchConfig().to_json(),
        "scenarios": {
            "drain": {"worker_cpu_s_per_call": 0.0034, "members_per_call": 20.0},
            "latency": {"windows": [_window(0.1, "python", 50)]},
            "scattered": {"error": "RuntimeError: boom"},
            "idle": {"max_pct": 0.2, "pct_of_core": [0.2]},
            "hog": {"ratio_to_20x_limit": 0.97},
        },
    }
    rows = build_rows(results)
    assert {r.scenario for r in rows} == {"drain", "latency", "scattered", "idle", "hog"}
    cpu = next(r for r in rows if r.metric.startswith("worker CPU per API call"))
    assert cpu.verdict == MISS and cpu.value == "3.40 ms / 0.17 ms" and cpu.target == "≤ 1 ms per call"
    assert math.isclose(BenchConfig.quick_config().latency_s, 3.0)


def test_cli_profile_and_new_scenarios() -> None:
    """--profile takes optional seconds (10 by default); --only accepts the new scenario names."""
    from imunban.cli import build_parser
    from imunban.cli.bench import config_from_args

    assert build_parser().parse_args(["bench", "--profile"]).profile == 10.0
    assert build_parser().parse_args(["bench", "--profile", "5"]).profile == 5.0
    assert build_parser().parse_args(["bench"]).profile is None
    args = build_parser().parse_args(["bench", "--quick", "--only", "latency,scattered,idle,hog"])
    assert config_from_args(args).scenarios == ("latency", "scattered", "idle", "hog")
