"""The benchmark's report and measuring code on tiny inputs; no timing is asserted anywhere."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from imunban.bench.config import SCENARIOS, BenchConfig, machine_info
from imunban.bench.report import MISS, OK, build_rows, markdown_table, plot_drain, write_outputs
from imunban.bench.util import cpu_seconds, latencies_ms, percentile, sim_window
from imunban.cli import build_parser
from imunban.cli.bench import config_from_args


def _results(**scenarios: Any) -> dict[str, Any]:
    return {"command": "imunban bench --quick", "config": BenchConfig().to_json(), "scenarios": scenarios}


DRAIN = {
    "requests": 40_000,
    "members_per_s": 3_700.0,
    "ratio_to_20x_limit": 3_700.0 / 3_800.0,
    "members_per_call": 20.0,
    "rate_limited": 0,
    "max_calls_in_1s": 190,
    "worker_cpu_s_per_call": 0.004,
    "timeline": [
        {"t": 0, "calls": 100, "ok": 100, "members": 2_000, "rate_limited": 0},
        {"t": 1, "calls": 190, "ok": 190, "members": 3_800, "rate_limited": 0},
        {"t": 2, "calls": 60, "ok": 60, "members": 1_200, "rate_limited": 0},
    ],
}


def test_percentile_nearest_rank() -> None:
    """Nearest-rank percentiles of a known list; empty input gives None."""
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7], 99) == 7
    assert percentile([], 50) is None


def test_latencies_only_delivered_of_the_prefix() -> None:
    """Latency is at_ms - due_ms of delivered outcomes whose group has the prefix."""
    outcomes = [
        {"outcome": "delivered", "group_id": "lat-i-1", "due_ms": "1000", "at_ms": "1250"},
        {"outcome": "dead", "group_id": "lat-i-2", "due_ms": "1000", "at_ms": "9000"},
        {"outcome": "delivered", "group_id": "warmup-0", "due_ms": "1000", "at_ms": "5000"},
    ]
    assert latencies_ms(outcomes, "lat-i-") == [250]


def test_sim_window_rates() -> None:
    """Calls, members and rates between two simulator snapshots."""
    before = {"calls": 10, "calls_ok": 10, "members_unbanned": 200}
    after = {"calls": 30, "calls_ok": 30, "members_unbanned": 600}
    window = sim_window(before, after, 2.0)
    assert window["calls_per_s"] == 10
    assert window["members_per_s"] == 200
    assert window["members_per_call"] == 20


def test_cpu_seconds_of_this_process() -> None:
    """/proc stat parsing returns a non-negative number on Linux."""
    seconds = cpu_seconds(os.getpid())
    if seconds is None:
        pytest.skip("no /proc on this platform")
    assert seconds >= 0


def test_rows_verdicts() -> None:
    """Targets met read ok, misses read MISS, a failed scenario is one MISS row, skipped ones vanish."""
    rows = build_rows(
        _results(
            drain=DRAIN,
            naive={"members_per_s": 190.0, "window_s": 20.0},
            latency={"immediate": {"p50_ms": 200, "p99_ms": 400}, "scheduled": {"p50_ms": 300, "p99_ms": 1_500}},
            bulk={"bulk_members_per_s": 80_000.0, "apply_async_per_s": 1_600.0, "ratio": 50.0},
            scale={"scheduled": 10, "bytes_per_request": 120.0, "enqueue_ratio_full_to_empty": 0.5},
            chaos={"error": "RuntimeError: boom"},
        )
    )
    verdict = {(r.scenario, r.metric): r.verdict for r in rows}
    assert verdict[("drain", "ratio to 20 x configured limit")] == OK
    assert verdict[("naive", "imunban / naive, same run")] == OK  # 3,700 / 190 = 19.5
    assert verdict[("latency", "scheduled: due → delivered p50 / p99")] == MISS
    assert verdict[("bulk", "bulk / apply_async, same run")] == OK
    assert verdict[("scale", "enqueue/s: empty → full (median paired ratio)")] == MISS
    assert (
        verdict[("scale", "promotion/s: empty → full (median paired ratio)")] == MISS
    )  # not measured counts as missed
    assert verdict[("chaos", "scenario failed")] == MISS
    assert "| drain | members per call | 20.00 | ≥ 19.5 | ok |" in markdown_table(rows)


def test_outputs_and_plot(tmp_path: Path) -> None:
    """results.json and results.md are written; the plot is a PNG when matplotlib is there."""
    results = _results(drain=DRAIN)
    paths = write_outputs(results, build_rows(results), tmp_path)
    assert json.loads((tmp_path / "results.json").read_text())["rows"][0]["scenario"] == "drain"
    assert "imunban bench --quick" in (tmp_path / "results.md").read_text()
    assert len(paths) == 2
    png = tmp_path / "drain.png"
    why_not = plot_drain(DRAIN, 190.0, png)
    if why_not is not None:
        pytest.skip(why_not)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_drain({"timeline": []}, 190.0, tmp_path / "none.png") == "no drain timeline"


def test_cli_config() -> None:
    """--quick, --only, --skip-naive and --scheduled shape the configuration."""
    args = build_parser().parse_args(["bench", "--quick", "--skip-naive", "--scheduled", "2000", "--rate-limit", "150"])
    cfg = config_from_args(args)
    assert cfg.quick and cfg.scheduled == 2_000 and cfg.scale_slice == 400
    assert "naive" not in cfg.scenarios
    assert cfg.drain_target_per_s == 3_000
    only = config_from_args(build_parser().parse_args(["bench", "--only", "bulk,scale"]))
    assert only.scenarios == ("bulk", "scale") and not only.quick
    assert BenchConfig().scenarios == SCENARIOS
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--only", "nope"])


def test_machine_info_fields() -> None:
    """The machine description names cores, CPU, Python and Redis."""
    info = machine_info()
    assert {"nproc", "cpu_model", "python", "redis"} <= set(info)


@pytest.mark.slow
def test_scale_scenario_tiny(tmp_path: Path) -> None:
    """The scale scenario on 2,000 requests stores them all and promotes every due slice."""
    from imunban.bench.redis_scenarios import scale

    cfg = BenchConfig(scheduled=2_000, scale_slice=300, repeats=1)
    result = scale(cfg, tmp_path, lambda _: None)
    assert result["scheduled"] == 2_000
    assert result["bytes_per_request"] > 0
    assert result["empty"]["promote_per_s"] > 0 and result["full"]["promote_per_s"] > 0
