"""A light command line: the operator and producer commands load neither Celery, kombu nor the simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

#: Modules a command that only reads or writes Redis must not load (each costs start-up time and memory).
HEAVY = ("celery", "kombu", "imunban_celery", "imunban.sim.core", "imunban.sim.server", "imunban.web", "uvicorn")

PROBE = """
import json, sys
from imunban.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"celery", "kombu", "imunban_celery", "uvicorn"}
               or m.startswith(("imunban.sim.core", "imunban.sim.server", "imunban.web")))
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["status", "--json"],
        ["enqueue", "g", "alice"],
        ["cancel", "g", "alice"],
        ["trace", "g", "alice"],
        ["dead", "list"],
        ["pause", "--reason", "deploy"],
        ["resume"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_a_command_in_a_fresh_process_loads_no_heavy_module(redis_url: str, argv: list[str]) -> None:
    """`imunban status` (and enqueue, cancel, trace, dead) run without importing Celery, kombu or the simulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMUNBAN_")}
    env["IMUNBAN_REDIS_URL"] = redis_url
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, done.stderr
    assert report["heavy"] == [], f"{' '.join(argv)} loaded {report['heavy']} ({HEAVY})"
