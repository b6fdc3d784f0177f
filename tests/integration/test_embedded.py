"""The embedded default: with IMUNBAN_REDIS_URL unset, commands share one imunban-managed redis-server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from helpers import Run, cli_runner
from imunban.local import embedded


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A private IMUNBAN_DATA_DIR; the embedded server started in it is always stopped afterwards."""
    folder = tmp_path / "imunban-data"
    yield folder
    embedded.stop(str(folder))


@pytest.fixture
def cli(data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``imunban ARGS`` in-process with IMUNBAN_REDIS_URL unset and IMUNBAN_DATA_DIR private."""
    monkeypatch.setenv("IMUNBAN_DATA_DIR", str(data_dir))

    return cli_runner(capsys)


def test_first_command_starts_it_second_reuses_it_stop_stops_it(cli: Run, data_dir: Path) -> None:
    """First use starts the server (and says where it lives); later commands reuse it; `redis stop` stops it."""
    assert cli("redis", "status")[1].startswith("embedded redis: not running")
    rc, out, err = cli("enqueue", "g", "a", "--in", "1h")
    assert rc == 0 and "1 scheduled" in out
    assert "started the embedded Redis server at redis://127.0.0.1:" in err
    assert str(data_dir / "redis") in err and "imunban redis stop" in err
    _, url = embedded.status(str(data_dir))
    assert url is not None

    rc, out, err = cli("status", "--json")
    assert (rc, err) == (0, "")  # reused: no second start message
    assert json.loads(out)["scheduled"] == 1
    assert embedded.status(str(data_dir))[1] == url
    assert cli("redis", "status")[1].startswith(f"embedded redis: running at {url}")

    rc, out, _ = cli("redis", "stop")
    assert rc == 0 and out.startswith("embedded redis stopped")
    assert embedded.status(str(data_dir))[1] is None
    assert cli("redis", "stop")[1].startswith("embedded redis was not running")


def test_data_survives_a_stop_aof_on_loopback_only(cli: Run, data_dir: Path) -> None:
    """The server keeps data with AOF in the data directory, binds loopback, and keeps it across restarts."""
    cli("enqueue", "g", "a", "b", "--in", "2h")
    _, url = embedded.status(str(data_dir))
    assert url is not None
    with redis.Redis.from_url(url, decode_responses=True) as client:
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        assert client.config_get("dir")["dir"] == str((data_dir / "redis").resolve())
    cli("redis", "stop")
    rc, out, err = cli("status", "--json")
    assert rc == 0 and "started the embedded Redis server" in err
    assert json.loads(out)["scheduled"] == 2


def test_redis_command_with_url_set(cli: Run, monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    """With IMUNBAN_REDIS_URL set, `imunban redis` says it does not manage that server."""
    monkeypatch.setenv("IMUNBAN_REDIS_URL", redis_url)
    assert cli("redis", "stop")[1].startswith("IMUNBAN_REDIS_URL is set")


def test_stale_port_file_is_ignored(cli: Run, data_dir: Path) -> None:
    """A port file left by a dead server does not fool status; the next command starts a fresh one."""
    folder = data_dir / "redis"
    folder.mkdir(parents=True)
    (folder / embedded.PORT_FILE).write_text("1")
    assert embedded.status(str(data_dir))[1] is None
    rc, _, err = cli("enqueue", "g", "a")
    assert rc == 0 and "started the embedded Redis server" in err


def test_producer_from_env_uses_the_embedded_default(cli: Run, data_dir: Path) -> None:
    """Producer.from_env() with IMUNBAN_REDIS_URL unset writes to the embedded server, as imunban.enqueue() does."""
    from imunban import Producer
    from imunban.settings import Settings

    for producer, member in ((Producer.from_env(), "a"), (Producer.from_env(Settings(data_dir=str(data_dir))), "b")):
        assert producer.enqueue("g", [member], at="2099-01-01T00:00Z").scheduled == 1
        producer.deployment.client.close()
    rc, out, _ = cli("status", "--json")
    assert rc == 0 and json.loads(out)["scheduled"] == 2
