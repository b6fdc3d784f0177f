"""The benchmark's code that touches the machine: its output files and plot, /proc, the redis-server binary."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from imunban.bench.config import BenchConfig, machine_info
from imunban.bench.report import build_rows, plot_drain, write_outputs
from imunban.bench.util import cpu_seconds

DRAIN: dict[str, Any] = {
    "requests": 40_000,
    "members_per_s": 3_700.0,
    "timeline": [
        {"t": 0, "calls": 100, "ok": 100, "members": 2_000, "rate_limited": 0},
        {"t": 1, "calls": 190, "ok": 190, "members": 3_800, "rate_limited": 0},
        {"t": 2, "calls": 60, "ok": 60, "members": 1_200, "rate_limited": 0},
    ],
}


def test_cpu_seconds_of_this_process_grows_with_cpu_burnt() -> None:
    """Burning 0.3 s of CPU moves this process's /proc reading by about 0.3 s, as the OS's own clock says."""
    pid = os.getpid()
    before, clock_before = cpu_seconds(pid), time.process_time()
    while time.process_time() < clock_before + 0.3:
        sum(i * i for i in range(1_000))
    after, clock_after = cpu_seconds(pid), time.process_time()
    assert before is not None and after is not None, "Linux: /proc/PID/stat is readable"
    assert after - before >= 0.2
    assert after - before == pytest.approx(clock_after - clock_before, abs=0.05)


def test_outputs_and_plot(tmp_path: Path) -> None:
    """results.json and results.md are written, the drain plot is a PNG, and no timeline means no plot."""
    results = {"command": "imunban bench --quick", "config": BenchConfig().to_json(), "scenarios": {"drain": DRAIN}}
    paths = write_outputs(results, build_rows(results), tmp_path)
    assert paths == [tmp_path / "results.json", tmp_path / "results.md"]
    assert json.loads((tmp_path / "results.json").read_text())["rows"][0]["scenario"] == "drain"
    assert "imunban bench --quick" in (tmp_path / "results.md").read_text()
    png = tmp_path / "drain.png"
    assert plot_drain(DRAIN, 190.0, png) is None  # matplotlib is in the [test] extra
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_drain({"timeline": []}, 190.0, tmp_path / "none.png") == "no drain timeline"
    assert not (tmp_path / "none.png").exists()


def test_machine_info_fields() -> None:
    """The machine description names cores, CPU, Python and the version of the redis-server it runs."""
    info = machine_info()
    assert {"nproc", "cpu_model", "python", "redis", "memory_gb"} <= set(info)
    assert info["nproc"] == os.cpu_count()
    assert info["redis"] != "unknown" and info["redis"][0].isdigit(), info["redis"]
