"""The code stays clean: ruff and mypy --strict run as part of the suite, so CI enforces them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str) -> str:
    found = Path(sys.executable).parent / name
    if found.exists():
        return str(found)
    which = shutil.which(name)
    if which is None:
        pytest.fail(f"{name} is not installed; it is part of the [test] extra")
    return which


def test_ruff_clean() -> None:
    """ruff finds no lint error and no unformatted file."""
    ruff = _tool("ruff")
    for args in (["check", "worker", "tasks", "tests"], ["format", "--check", "worker", "tasks", "tests"]):
        result = subprocess.run([ruff, *args], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_clean() -> None:
    """mypy --strict passes on worker/ and tasks/."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "worker", "tasks"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_modules_stay_small() -> None:
    """Every module is under ~400 lines: one module, one responsibility."""
    too_long = {
        str(p.relative_to(ROOT)): n
        for p in list((ROOT / "worker").rglob("*.py")) + list((ROOT / "tasks").rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > 420
    }
    assert not too_long, too_long


def test_worker_package_does_not_import_celery() -> None:
    """worker/ is the engine: no Celery import anywhere in it."""
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "worker").rglob("*.py")
        if any(line.lstrip().startswith(("import celery", "from celery")) for line in p.read_text().splitlines())
    ]
    assert not offenders, offenders
