"""`imunban demo` as a user runs it: a subprocess with its own embedded Redis and workers, start to finish."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import wait_for


def _imunban() -> list[str]:
    script = Path(sys.executable).parent / "imunban"
    return [str(script)] if script.exists() else [sys.executable, "-m", "imunban"]


def _env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return {**os.environ, "IMUNBAN_DATA_DIR": str(tmp_path / "data"), "TMPDIR": str(tmp_path / "tmp"), "COLUMNS": "200"}


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] != "Z"  # a zombie has exited; only its parent has not collected it yet


def _child_pids(output: str) -> list[int]:
    header = re.search(r"redis-server pid (\d+) .*workers pid ([\d, ]+)", output)
    assert header, output
    return [int(header.group(1))] + [int(p) for p in header.group(2).replace(",", " ").split()]


def _assert_all_stopped(pids: list[int], env: dict[str, str], tmp_path: Path) -> None:
    assert wait_for(lambda: not any(_alive(p) for p in pids), 5, poll_s=0.1), [p for p in pids if _alive(p)]
    status = subprocess.run([*_imunban(), "redis", "status"], env=env, capture_output=True, text=True, check=True)
    assert "not running" in status.stdout


@pytest.fixture
def demo_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A private data dir (so a private embedded Redis) and temp dir; the embedded Redis stopped afterwards."""
    env = _env(tmp_path)
    yield env
    subprocess.run([*_imunban(), "redis", "stop"], env=env, capture_output=True, timeout=30)


def test_demo_delivers_and_cleans_up(demo_env: dict[str, str], tmp_path: Path) -> None:
    """`imunban demo` exits 0 within a minute and leaves no process, database or log directory behind."""
    started = time.monotonic()
    result = subprocess.run([*_imunban(), "demo"], env=demo_env, capture_output=True, text=True, timeout=90)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert took < 60
    assert "PASS" in result.stdout and "FAIL" not in result.stdout
    assert re.search(r"rate-limit rejections \(60007\)\s*│\s*0\s*│", result.stdout), result.stdout
    _assert_all_stopped(_child_pids(result.stdout), demo_env, tmp_path)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_demo_exit_status_reflects_delivery(demo_env: dict[str, str], tmp_path: Path) -> None:
    """A run that cannot finish (a 2 s timeout) exits 1, keeps the worker logs, and still stops everything."""
    result = subprocess.run(
        [*_imunban(), "demo", "--timeout", "2"], env=demo_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL" in result.stdout and "TIMED OUT" in result.stdout
    assert "worker logs kept in" in result.stdout
    _assert_all_stopped(_child_pids(result.stdout), demo_env, tmp_path)


def test_demo_sigint_stops_everything(demo_env: dict[str, str], tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) mid-run: exit 130, every worker and the Redis it started are gone."""
    proc = subprocess.Popen(
        [*_imunban(), "demo"], env=demo_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    output = ""
    try:
        for line in proc.stdout:  # wait until it is delivering, so workers and Redis are up
            output += line
            if re.search(r"delivered [1-9]", line):
                break
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    output += rest
    assert proc.returncode == 130, output
    assert "interrupted" in output
    _assert_all_stopped(_child_pids(output), demo_env, tmp_path)
    assert list((tmp_path / "tmp").iterdir()) == []
