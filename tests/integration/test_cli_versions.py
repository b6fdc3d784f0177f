"""``--instruction-version`` and JSON Lines ``"version"`` on the command line, against a real redis-server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from helpers import Run
from imunban.keys import Keys, request_id
from imunban.stats import status

KEYS = Keys("imunban")


def test_enqueue_and_cancel_take_an_instruction_version(cli: Run, r: redis.Redis) -> None:
    """A lower --instruction-version is ignored and said so; a cancel's version is remembered."""
    assert cli("enqueue", "g", "alice", "--in", "1h", "--instruction-version", "5")[0] == 0
    rc, out, _ = cli("enqueue", "g", "alice", "--instruction-version", "4")
    assert rc == 0 and "1 ignored: a higher version was already applied" in out
    assert status(r, KEYS)["scheduled"] == 1
    assert cli("cancel", "g", "alice", "--instruction-version", "6")[1].startswith("cancelled 1 of 1")
    assert cli("enqueue", "g", "alice", "--instruction-version", "5")[0] == 0
    snapshot = status(r, KEYS)
    assert (snapshot["queued"], snapshot["scheduled"]) == (0, 0)
    assert snapshot["counters"]["stale_instructions"] == 2
    rc, out, _ = cli("status")
    assert rc == 0 and "stale_instructions" in out
    rc, out, _ = cli("trace", "g", "alice", "--json")
    assert rc == 0 and (json.loads(out)["version"], json.loads(out)["version_by_cancel"]) == (6, True)


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", str(2**63)])
def test_bad_instruction_version_is_refused_naming_the_option(cli: Run, r: redis.Redis, value: str) -> None:
    """A bad --instruction-version: exit 2, the option named on stderr, nothing stored."""
    for command in (["enqueue", "g", "m"], ["cancel", "g", "m"]):
        rc, _, err = cli(*command, "--instruction-version", value)
        assert rc == 2 and "--instruction-version" in err
    assert r.exists(KEYS.stats, KEYS.versions) == 0


def test_version_is_not_the_programs_version_option(cli: Run) -> None:
    """``--version`` is not taken by the instruction version (argparse refuses the abbreviation too)."""
    rc, _, err = cli("enqueue", "g", "m", "--version", "3")
    assert rc == 2 and "unrecognized arguments" in err


def test_jsonl_version_per_line_and_as_default(cli: Run, r: redis.Redis, tmp_path: Path) -> None:
    """``"version"`` on a line orders it; --instruction-version is the default for lines without one."""
    path = tmp_path / "in.jsonl"
    lines = [{"group_id": "g", "member": "a", "version": 9}, {"group_id": "g", "member": "b"}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert cli("enqueue", "--file", str(path), "--instruction-version", "3")[0] == 0
    assert r.hgetall(KEYS.versions) == {request_id("g", "a"): "9", request_id("g", "b"): "3"}
    path.write_text(json.dumps({"group_id": "g", "member": "a", "version": True}) + "\n")
    rc, _, err = cli("enqueue", "--file", str(path))
    assert rc == 2 and "version" in err and "line 1" in err
