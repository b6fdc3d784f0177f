"""Secrets on demand: with key files nobody can read, every command that does not sign a call still works.

The console, ``status``, ``enqueue``, ``cancel``, ``trace``, ``dead`` and ``migrate`` never call the
API, so they must not need the apps' secret keys; a worker (and the simulator) must refuse to start,
naming the apps file, the app and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from helpers import Run, cli_runner
from imunban.deployment import open_deployment
from imunban.errors import ConfigError
from imunban.runtime import prepare_worker
from imunban.settings import Settings
from imunban.web.app import create_app

APPS_TOML = """
[apps.cn]
sdkappid = 1400000001
region = "china"
secret_key_file = "keys/cn.key"

[apps.intl]
sdkappid = 1400000002
base_url = "http://127.0.0.1:9"
secret_key_file = "keys/intl.key"
"""


@pytest.fixture
def apps_file(tmp_path: Path) -> Path:
    """Two apps whose key files do not exist (a console host never gets them)."""
    path = tmp_path / "apps.toml"
    path.write_text(APPS_TOML, encoding="utf-8")
    return path


@pytest.fixture
def cli(
    redis_url: str, apps_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Run]:
    monkeypatch.setenv("IMUNBAN_REDIS_URL", redis_url)
    monkeypatch.setenv("IMUNBAN_APPS_FILE", str(apps_file))
    yield cli_runner(capsys)


def test_operator_commands_work_without_readable_key_files(cli: Run, r: redis.Redis) -> None:
    """status, enqueue, cancel, trace, dead list and migrate --check run; nothing asks for a key."""
    assert cli("enqueue", "g1", "alice", "bob", "--app", "cn")[0] == 0
    assert cli("cancel", "g1", "bob", "--app", "cn")[0] == 0
    rc, out, err = cli("status", "--json")
    assert rc == 0, err
    assert json.loads(out)["apps"]["cn"]["queued"] == 1
    assert cli("status", "--app", "intl")[0] == 0
    rc, out, _ = cli("trace", "g1", "alice", "--app", "cn", "--json")
    assert rc == 0 and json.loads(out)["state"] == "ready"
    assert cli("dead", "list", "--app", "intl", "--json") == (0, "[]\n", "")
    assert cli("migrate", "--check")[0] == 0


def test_worker_refuses_naming_the_file_the_app_and_the_field(cli: Run, apps_file: Path) -> None:
    """imunban worker reads every key at start: an unreadable one stops it with one line that says where."""
    rc, _, err = cli("worker")
    assert rc == 2
    assert "IMUNBAN_APPS_FILE" in err and str(apps_file) in err
    assert "app 'cn'" in err and "field 'secret_key_file'" in err and "cn.key" in err


def test_simulator_refuses_too(cli: Run) -> None:
    """imunban simulate signs with the keys as well: it needs them, and says which one it cannot read."""
    rc, _, err = cli("simulate", "--port", "0")
    assert rc == 2 and "field 'secret_key_file'" in err


def test_console_status_works_without_readable_key_files(redis_url: str, apps_file: Path, r: redis.Redis) -> None:
    """The console's /api/status and pages answer for both apps; no key is read."""
    settings = Settings.from_env({"IMUNBAN_REDIS_URL": redis_url, "IMUNBAN_APPS_FILE": str(apps_file)})
    client = TestClient(create_app(open_deployment(settings, client=r), sample=False), base_url="http://127.0.0.1:8321")
    response = client.get("/api/status")
    assert response.status_code == 200 and set(response.json()["apps"]) == {"cn", "intl"}
    assert client.get("/?app=intl").status_code == 200


def test_delivery_reads_the_key_when_first_used(redis_url: str, apps_file: Path, r: redis.Redis) -> None:
    """An app's delivery half (limiter, API client) is built on first use, and that is when the key is read."""
    settings = Settings.from_env({"IMUNBAN_REDIS_URL": redis_url, "IMUNBAN_APPS_FILE": str(apps_file)})
    deployment = open_deployment(settings, client=r)
    assert deployment.app("cn").store is not None  # the data half needs no key
    (apps_file.parent / "keys").mkdir()
    (apps_file.parent / "keys" / "intl.key").write_text("intl-key\n", encoding="utf-8")
    assert deployment.app("intl").deliverer.api is not None
    with pytest.raises(ConfigError, match="field 'secret_key_file'"):
        deployment.app("cn").deliverer  # noqa: B018


def test_a_worker_builds_every_apps_delivery_half_at_start(redis_url: str, apps_file: Path, r: redis.Redis) -> None:
    """prepare_worker reads the keys and builds each app's limiter and API client before the first task runs."""
    keys = apps_file.parent / "keys"
    keys.mkdir()
    for name in ("cn", "intl"):
        (keys / f"{name}.key").write_text(f"{name}-key\n", encoding="utf-8")
    settings = Settings.from_env({"IMUNBAN_REDIS_URL": redis_url, "IMUNBAN_APPS_FILE": str(apps_file)})
    deployment = open_deployment(settings, client=r)
    prepare_worker(deployment)
    assert all(app.built_delivery for app in deployment)
