"""The simulator serves several apps at once: each checks its own key and admin and keeps its own counters."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from imunban.api import ApiClient
from imunban.apps import AppConfig, Apps
from imunban.errors import HoldError, RateLimitedError
from imunban.secret import Secret
from imunban.sim.multi import MultiSimulator
from imunban.sim.server import SimConfig, SimulatorServer

APPS = Apps(
    [
        AppConfig("cn", 1400000001, "admin_cn", Secret("key-of-cn-0123456789"), base_url="http://x"),
        AppConfig("intl", 1400000002, "admin_intl", Secret("key-of-intl-0123456789"), base_url="http://x"),
    ]
)


@pytest.fixture
def served() -> Iterator[tuple[MultiSimulator, str]]:
    sim = MultiSimulator.for_apps(APPS, configs={"intl": SimConfig(rate_limit=2)})
    with SimulatorServer(sim) as server:
        yield sim, server.url


def client(name: str, url: str, **changes: Any) -> ApiClient:
    """An API client with app ``name``'s credentials, some of them changed."""
    return ApiClient(dataclasses.replace(APPS.by_name[name], **changes), base_urls=[url])


def test_each_call_reaches_its_own_app(served: tuple[MultiSimulator, str]) -> None:
    """Calls signed by each app land in that app's simulator only."""
    sim, url = served
    client("cn", url).unban("@TGS#a", ["u1", "u2"])
    client("intl", url).unban("@TGS#b", ["u3"])
    assert sim["cn"].unbanned("@TGS#a") == {"u1", "u2"} and sim["cn"].unbanned("@TGS#b") == frozenset()
    assert sim["intl"].unbanned("@TGS#b") == {"u3"} and sim["intl"].unbanned("@TGS#a") == frozenset()
    stats = requests.get(f"{url}/_stats", timeout=5).json()
    assert stats["apps"]["cn"]["calls_ok"] == 1 and stats["apps"]["intl"]["calls_ok"] == 1
    assert requests.get(f"{url}/_apps/intl/_stats", timeout=5).json()["members_unbanned"] == 1


def test_another_apps_key_or_admin_is_refused(served: tuple[MultiSimulator, str]) -> None:
    """A call with cn's SDKAppID but intl's key fails the signature check; the wrong admin lacks permission."""
    sim, url = served
    with pytest.raises(HoldError):
        client("cn", url, secret_key=Secret("key-of-intl-0123456789")).unban("@TGS#a", ["u1"])
    with pytest.raises(HoldError) as caught:
        client("cn", url, identifier="admin_intl").unban("@TGS#a", ["u1"])
    assert caught.value.code in (60010, 70003, 70013)
    assert sim["cn"].snapshot()["calls_ok"] == 0


def test_an_unknown_sdkappid_gets_60006(served: tuple[MultiSimulator, str]) -> None:
    sim, url = served
    with pytest.raises(HoldError) as caught:
        client("cn", url, sdkappid=1499999999).unban("@TGS#a", ["u1"])
    assert caught.value.code == 60006 and sim.snapshot()["unknown_app_calls"] == 1


def test_each_app_has_its_own_limit(served: tuple[MultiSimulator, str]) -> None:
    """intl allows 2 calls/s here; cn's default 200 is untouched by intl's calls."""
    sim, url = served
    intl = client("intl", url)
    intl.unban("@TGS#b", ["u1"])
    intl.unban("@TGS#b", ["u2"])
    with pytest.raises(RateLimitedError):
        intl.unban("@TGS#b", ["u3"])
    client("cn", url).unban("@TGS#a", ["u1"])
    assert sim["cn"].snapshot()["rate_limited"] == 0 and sim["intl"].snapshot()["rate_limited"] == 1
