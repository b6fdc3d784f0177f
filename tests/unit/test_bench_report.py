"""The benchmark's report and measuring code on tiny, made-up inputs: no file, no process, no timing."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest

from imunban.bench import util
from imunban.bench.config import SCENARIOS, BenchConfig
from imunban.bench.report import MISS, OK, build_rows, markdown_table
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


#: /proc/PID/stat of a process whose name holds spaces and parentheses; utime 250 and stime 50 ticks.
PROC_STAT = "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 1 0 100 0 0\n"


def test_cpu_seconds_parses_a_proc_stat_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """utime + stime (fields 14 and 15, counted after the last ')') in clock ticks, as seconds."""
    opened: list[str] = []

    def fake_open(path: str, *args: object, **kwargs: object) -> io.StringIO:
        opened.append(path)
        return io.StringIO(PROC_STAT)

    monkeypatch.setattr(util, "open", fake_open, raising=False)
    assert cpu_seconds(4242) == pytest.approx(300 / os.sysconf("SC_CLK_TCK"))
    assert opened == ["/proc/4242/stat"]


def test_cpu_seconds_of_a_vanished_process_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that cannot be read (gone, or no /proc) gives None, and so does a total that includes it."""

    def gone(path: str, *args: object, **kwargs: object) -> io.StringIO:
        raise FileNotFoundError(path)

    monkeypatch.setattr(util, "open", gone, raising=False)
    assert cpu_seconds(4242) is None
    assert util.cpu_total([1, 4242]) is None


def test_rows_verdicts() -> None:
    """Targets met read ok, misses read MISS, a failed scenario is one MISS row, skipped ones vanish."""
    rows = build_rows(
        _results(
            drain=DRAIN,
            naive={"members_per_s": 190.0, "window_s": 20.0},
            latency={"windows": [{"load": 0.1, "source": "scheduled", "members_per_s": 380.0, "p99_ms": 150}]},
            bulk={"bulk_members_per_s": 80_000.0, "apply_async_per_s": 1_600.0, "ratio": 50.0},
            scale={"scheduled": 10, "bytes_per_request": 120.0, "enqueue_ratio_full_to_empty": 0.5},
            chaos={"error": "RuntimeError: boom"},
        )
    )
    verdict = {(r.scenario, r.metric): r.verdict for r in rows}
    assert verdict[("drain", "ratio to 20 x configured limit")] == OK
    assert verdict[("naive", "imunban / naive, same run")] == OK  # 3,700 / 190 = 19.5
    assert verdict[("latency", "10 % load (380/s), scheduled: p50 / p99 / p99.9 (from the due time)")] == MISS
    assert verdict[("bulk", "bulk / apply_async, same run")] == OK
    assert verdict[("scale", "enqueue/s: empty → full (median paired ratio)")] == MISS
    assert (
        verdict[("scale", "promotion/s: empty → full (median paired ratio)")] == MISS
    )  # not measured counts as missed
    assert verdict[("chaos", "scenario failed")] == MISS
    assert "| drain | members per call | 20.00 | ≥ 19.5 | ok |" in markdown_table(rows)


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
