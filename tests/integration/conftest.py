"""Fixtures of the integration tier: the CLI run in-process against the session's redis-server."""

from __future__ import annotations

import pytest

from helpers import Run, cli_runner


@pytest.fixture
def cli(redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``imunban ARGS`` in-process with IMUNBAN_REDIS_URL set to the test server; returns (rc, out, err)."""
    monkeypatch.setenv("IMUNBAN_REDIS_URL", redis_url)
    return cli_runner(capsys)
