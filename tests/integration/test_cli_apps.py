"""The command line with several apps: --app on enqueue, cancel, trace, dead and status; imunban migrate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from helpers import Run, cli_runner
from imunban.errors import ConfigError
from imunban.keys import Keys
from imunban.settings import Settings
from imunban.stats import status
from imunban_celery.app import broker

APPS_TOML = """
[apps.cn]
sdkappid = 1400000001
base_url = "http://127.0.0.1:9"
secret_key = "cn-key"

[apps.intl]
sdkappid = 1400000002
base_url = "http://127.0.0.1:9"
secret_key = "intl-key"
"""


@pytest.fixture
def cli(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Run]:
    """Run ``imunban ARGS`` in-process against the test server with a two-app apps file."""
    path = tmp_path / "apps.toml"
    path.write_text(APPS_TOML, encoding="utf-8")
    monkeypatch.setenv("IMUNBAN_REDIS_URL", redis_url)
    monkeypatch.setenv("IMUNBAN_APPS_FILE", str(path))

    yield cli_runner(capsys)


def test_enqueue_and_cancel_go_to_the_app_named(cli: Run, r: redis.Redis) -> None:
    """--app selects the app's keys; the other app sees nothing."""
    assert cli("enqueue", "g1", "a", "b", "--app", "cn")[0] == 0
    assert cli("enqueue", "g1", "c", "--app", "intl")[0] == 0
    assert status(r, Keys("imunban", "cn"))["queued"] == 2 and status(r, Keys("imunban", "intl"))["queued"] == 1
    rc, out, _ = cli("cancel", "g1", "a", "--app", "cn")
    assert rc == 0 and "cancelled 1" in out
    assert status(r, Keys("imunban", "cn"))["queued"] == 1


def test_a_missing_or_unknown_app_is_refused_and_nothing_is_stored(cli: Run, r: redis.Redis, tmp_path: Path) -> None:
    """With two apps, --app is required; an unknown app names the known ones; a file line naming one is checked."""
    rc, _, err = cli("enqueue", "g1", "a")
    assert rc == 2 and "app: is required: this deployment serves several apps (cn, intl)" in err
    rc, _, err = cli("enqueue", "g1", "a", "--app", "eu")
    assert rc == 2 and "unknown app 'eu'" in err
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"group_id": "g", "member": "m", "app": "cn"}\n{"group_id": "g", "member": "n", "app": "eu"}\n')
    rc, _, err = cli("enqueue", "--file", str(lines))
    assert rc == 2 and err.startswith("imunban: error: line 2: app: unknown app 'eu' (known: cn, intl)")
    lines.write_text('{"group_id": "g", "member": "m"}\n{"group_id": "g", "member": "n", "app": "cn"}\n')
    rc, _, err = cli("enqueue", "--file", str(lines))  # no --app: line 1 names none
    assert rc == 2 and err.startswith("imunban: error: line 1: app: is required")
    assert r.dbsize() == 0


def test_a_file_names_apps_per_line_with_app_as_the_default(cli: Run, r: redis.Redis, tmp_path: Path) -> None:
    """JSON Lines carry "app"; --app fills it in for lines without one."""
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"group_id": "g", "member": "m1", "app": "intl"}\n{"group_id": "g", "member": "m2"}\n')
    rc, out, _ = cli("enqueue", "--file", str(lines), "--app", "cn")
    assert rc == 0 and "stored 2 requests" in out
    assert status(r, Keys("imunban", "cn"))["queued"] == 1 and status(r, Keys("imunban", "intl"))["queued"] == 1


def test_status_has_one_row_per_app_and_the_totals(cli: Run) -> None:
    """status --json: the totals, and apps: {NAME: {...}}; the table: one compact row per app, then all."""
    cli("enqueue", "g1", "a", "b", "--app", "cn")
    cli("enqueue", "g2", "c", "--app", "intl", "--in", "1h")
    rc, out, _ = cli("status", "--json")
    data = json.loads(out)
    assert rc == 0 and (data["queued"], data["scheduled"]) == (2, 1)
    assert data["apps"]["cn"]["queued"] == 2 and data["apps"]["intl"]["scheduled"] == 1
    rc, out, _ = cli("status", "--json", "--app", "intl")
    assert json.loads(out)["scheduled"] == 1 and "apps" not in json.loads(out)
    rc, out, _ = cli("status")
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]] for line in out.splitlines()
            if line.count("│") == 9}  # fmt: skip
    header = next(line for line in out.splitlines() if line.count("┃") == 9)
    assert [c.strip() for c in header.split("┃")[1:-1]] == [
        "app", "state", "backlog", "due", "oldest due", "dead", "hold/pause", "limit use",
    ]  # fmt: skip
    assert rows["cn"][0] in ("idle", "delivering", "stalled") and rows["cn"][1:3] == ["2", "2"]
    assert rows["intl"][1:3] == ["1", "0"] and rows["intl"][4:] == ["0", "-", "-"]
    assert rows["all"][1:3] == ["3", "2"]
    assert len(out.splitlines()) <= 15 and "totals since the store began" not in out
    rc, out, _ = cli("status", "--app", "cn")
    assert rc == 0 and "totals since the store began" in out  # one app in detail
    rc, out, _ = cli("status", "--check")
    assert rc == 2 and out.startswith("CRITICAL stalled (app cn)")  # --check as before: 2 due, no worker


def test_status_explain_gives_a_legend_for_every_counter(cli: Run) -> None:
    """status --explain: a line for every column of the apps table and every row of the detail, without Redis."""
    rc, out, _ = cli("status", "--explain")
    names = [line.split("  ")[0] for line in out.splitlines()]
    assert rc == 0
    for column in ("state", "backlog", "due (queued)", "oldest due", "dead", "hold/pause", "limit use", "in flight"):
        assert column in names


def test_trace_and_dead_take_the_app(cli: Run) -> None:
    cli("enqueue", "g1", "a", "--app", "intl")
    rc, out, _ = cli("trace", "g1", "a", "--app", "intl", "--json")
    assert rc == 0 and json.loads(out)["state"] == "ready"
    rc, out, _ = cli("trace", "g1", "a", "--app", "cn", "--json")
    assert json.loads(out)["state"] != "ready"
    assert cli("dead", "list", "--app", "cn", "--json") == (0, "[]\n", "")
    rc, _, err = cli("dead", "list")
    assert rc == 2 and "--app: is required" in err


def test_migrate_moves_an_old_store_under_the_app_named(cli: Run, r: redis.Redis) -> None:
    """imunban migrate --check says there is work; --app cn moves it there; a second run finds nothing."""
    old = Keys.single_app_layout("imunban")
    r.zadd(old.groups, {"g": 0})
    r.zadd(old.ready("g"), {"m": 0})
    r.hset(old.stats, mapping={"ready": 1, "enqueued": 1})
    assert cli("migrate", "--check")[0] == 1
    rc, _, err = cli("migrate")
    assert rc == 2 and "unknown app 'default'" in err  # no app 'default' in this apps file
    rc, out, _ = cli("migrate", "--app", "cn", "--json")
    assert rc == 0 and json.loads(out) == {"app": "cn", "renamed": 3, "merged": 0}
    assert status(r, Keys("imunban", "cn"))["queued"] == 1
    assert cli("migrate", "--app", "cn")[1].startswith("nothing to move")


@pytest.mark.parametrize("args", [["--check"], ["--check", "--json"], []])
def test_migrate_names_an_unknown_app_even_with_check(cli: Run, r: redis.Redis, args: list[str]) -> None:
    """migrate --app nope (also with --check) is refused naming the app, exit 2 like every bad --app; not "nothing"."""
    rc, out, err = cli("migrate", "--app", "nope", *args)
    assert (rc, out) == (2, "")
    assert err.startswith("imunban: error: --app: unknown app 'nope' (known: cn, intl)")
    assert r.dbsize() == 0


def test_the_broker_of_a_cluster_state_must_be_named() -> None:
    """A redis+cluster:// state Redis cannot carry Celery: IMUNBAN_BROKER_URL is required, and used."""
    cluster = "redis+cluster://127.0.0.1:7000"
    with pytest.raises(ConfigError, match="IMUNBAN_BROKER_URL"):
        broker(Settings(redis_url=cluster))
    assert broker(Settings(redis_url=cluster, broker_url="redis://127.0.0.1:6379/1")) == (
        "redis://127.0.0.1:6379/1",
        {},
    )
