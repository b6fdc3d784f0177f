"""The benchmark's scale scenario, shrunk: it starts its own redis-server and fills it."""

from __future__ import annotations

from pathlib import Path

from imunban.bench.config import BenchConfig
from imunban.bench.redis_scenarios import scale


def test_scale_scenario_tiny(tmp_path: Path) -> None:
    """The scale scenario on 2,000 requests stores them all and promotes every due slice."""
    cfg = BenchConfig(scheduled=2_000, scale_slice=300, repeats=1)
    result = scale(cfg, tmp_path, lambda _: None)
    assert result["scheduled"] == 2_000
    assert result["bytes_per_request"] > 0
    assert result["empty"]["promote_per_s"] > 0 and result["full"]["promote_per_s"] > 0
