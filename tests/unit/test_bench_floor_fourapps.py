"""The floor beside the drain's CPU per call, and the four-app scenario's rows (bench/floor.py, bench/fourapps.py)."""

from __future__ import annotations

from typing import Any

from imunban.bench.config import SCENARIOS, BenchConfig
from imunban.bench.floor import MAX_CALLS, floor_calls, ratio, round_trips_per_call
from imunban.bench.fourapps import APPS, _backlog, app_rate, fourapps_rows
from imunban.bench.report import INFO, MISS, OK, build_rows
from imunban.bench.run import RUNNERS


def test_round_trips_per_call_rounds_and_never_drops_below_one() -> None:
    """The bare loop makes the worker's script calls per API call, rounded, at least one."""
    assert round_trips_per_call(4_300, 1_000) == 4
    assert round_trips_per_call(3_600, 1_000) == 4
    assert round_trips_per_call(10, 1_000) == 1
    assert round_trips_per_call(500, 0) == 1


def test_floor_calls_bounded() -> None:
    """The bare loop makes as many calls as the drain, within [100, MAX_CALLS]."""
    assert floor_calls(20) == 100
    assert floor_calls(800) == 800
    assert floor_calls(10 * MAX_CALLS) == MAX_CALLS


def test_ratio_needs_both_figures() -> None:
    """The worker-to-floor ratio is None when either CPU figure is missing or the floor is zero."""
    assert ratio(0.002, 0.001) == 2.0
    assert ratio(None, 0.001) is None and ratio(0.002, None) is None and ratio(0.002, 0.0) is None


def test_drain_rows_show_the_floor_and_the_ratio() -> None:
    """The drain's rows carry the floor's CPU per call and the worker's ratio to it, or the floor's failure."""
    floor = {"cpu_s_per_call": 0.0005, "round_trips_per_call": 4, "threads": 4, "rate_per_s": 190.0}
    drain = {"worker_cpu_s_per_call": 0.0009, "members_per_call": 20.0, "floor": floor, "worker_to_floor": 1.8}
    rows = build_rows({"config": BenchConfig().to_json(), "scenarios": {"drain": drain}})
    cpu = next(r for r in rows if r.metric.startswith("worker CPU per API call"))
    assert cpu.verdict == OK and cpu.target == "≤ 1 ms per call"
    floor_row = next(r for r in rows if r.metric.startswith("floor:"))
    assert "4 EVALSHA" in floor_row.metric and floor_row.value == "0.50 ms / 0.03 ms" and floor_row.verdict == INFO
    assert next(r for r in rows if r.metric.startswith("worker CPU per call / floor")).value == "1.80x"
    failed = build_rows({"scenarios": {"drain": {**drain, "floor": {"error": "boom"}}}})
    assert next(r for r in failed if r.metric.startswith("floor:")).verdict == MISS


def _app(rate: float, rejected: int = 0) -> dict[str, Any]:
    return {"members_per_s": rate, "ratio_to_20x_limit": rate / 3_800, "rate_limited": rejected}


def test_fourapps_rows_verdicts() -> None:
    """Every app must reach 0.95 x 20 x limit, with 0 rejections and at most one core of workers."""
    apps = {a: _app(3_700) for a in APPS}
    good: dict[str, Any] = {
        "apps": apps, "workers": 2, "concurrency": 16, "rate_limited": 0,
        "worker_cores": 0.8, "worker_cpu_s_per_call": 0.001, "total_members_per_s": 14_800.0,
        "target_total_per_s": 15_200.0,
    }  # fmt: skip
    assert [r.verdict for r in fourapps_rows(good)] == [OK, INFO, INFO, OK, OK, INFO]
    slow = {**good, "apps": {**apps, "D": _app(3_000)}, "rate_limited": 3, "worker_cores": 1.2}
    assert [r.verdict for r in fourapps_rows(slow)] == [MISS, INFO, INFO, MISS, MISS, INFO]
    missing = {**good, "apps": {a: _app(3_700) for a in APPS[:3]}}
    assert fourapps_rows(missing)[0].verdict == MISS  # an app without a figure is not a pass


def test_fourapps_backlog_and_rate() -> None:
    """Backlogs come in groups of 100 of one app; an app's rate is its members over first-to-last call."""
    backlog = _backlog("B", 250)
    assert [len(r["members"]) for r in backlog] == [100, 100, 50] and {r["app"] for r in backlog} == {"B"}
    assert app_rate({"first_call_s": 10.0, "last_call_s": 12.0, "members_unbanned": 7_600}) == (2.0, 3_800.0)
    assert app_rate({"first_call_s": None, "last_call_s": None, "members_unbanned": 0}) == (None, None)


def test_fourapps_is_a_scenario() -> None:
    """`imunban bench --only fourapps` runs it; --quick shrinks its backlog."""
    assert "fourapps" in SCENARIOS and "fourapps" in RUNNERS
    assert BenchConfig.quick_config().fourapps_backlog < BenchConfig().fourapps_backlog
