"""A command or a worker that cannot reach Redis says so in one line naming the variable, and exits 2."""

from __future__ import annotations

import fakeredis
import pytest

from helpers import cli_runner
from imunban.deployment import open_deployment
from imunban.errors import StoreError
from imunban.runtime import prepare_worker
from imunban.settings import Settings


@pytest.mark.parametrize("argv", [["status"], ["trace", "g", "m"], ["dead", "list"], ["enqueue", "g", "m"]])
def test_an_unreachable_redis_is_one_line_naming_the_variable(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No traceback and no "time failed": the variable, the address and the reason."""
    monkeypatch.setenv("IMUNBAN_REDIS_URL", "redis://127.0.0.1:1/0")
    rc, out, err = cli_runner(capsys)(*argv)
    assert rc == 2 and out == ""
    assert err.startswith("imunban: error: IMUNBAN_REDIS_URL: cannot reach Redis") and "127.0.0.1:1" in err
    assert len(err.strip().splitlines()) == 1


def test_a_worker_that_cannot_reach_redis_stops_with_one_line() -> None:
    """prepare_worker (every worker's start) checks Redis first: a StoreError naming the variable."""
    server = fakeredis.FakeServer()
    server.connected = False
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    settings = Settings.from_env({"IMUNBAN_SDKAPPID": "1", "IMUNBAN_SECRET_KEY": "k", "IMUNBAN_BASE_URL": "http://x"})
    with pytest.raises(StoreError, match="IMUNBAN_REDIS_URL: cannot reach Redis"):
        prepare_worker(open_deployment(settings, client=client))
