"""Settings name every bad variable in one run, and warn about an ``IMUNBAN_*`` name they do not know."""

from __future__ import annotations

import pytest

from imunban.errors import ConfigError
from imunban.settings import Settings


def test_every_bad_variable_is_named_in_one_error() -> None:
    """Several bad values: one ConfigError listing each variable (not the first alone)."""
    env = {
        "IMUNBAN_LOG_LEVEL": "loud",
        "IMUNBAN_LEASE_MS": "soon",
        "IMUNBAN_RATE_LIMIT": "0",
        "IMUNBAN_KEY_PREFIX": "a{b}",
        "IMUNBAN_REDIS_URL": "http://x",
        "IMUNBAN_WEB_VIEWER_TOKEN": "short",
    }
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    lines = str(info.value).splitlines()
    assert lines[0] == "6 settings are wrong:"
    for name in env:
        assert sum(name in line for line in lines[1:]) == 1, name


def test_one_bad_variable_keeps_its_own_message() -> None:
    """A single bad value reads as before: the message naming it, no list."""
    with pytest.raises(ConfigError, match=r"^IMUNBAN_LEASE_MS must be >= 1000, got 5$"):
        Settings.from_env({"IMUNBAN_LEASE_MS": "5"})


def test_a_worker_with_nothing_set_learns_every_missing_variable_at_once() -> None:
    """for_delivery with an empty environment: the SDKAppID, the secret key and the region, in one error."""
    assert Settings.from_env({}) == Settings()  # other commands need none of them
    with pytest.raises(ConfigError) as info:
        Settings.from_env({}, for_delivery=True)
    message = str(info.value)
    assert message.startswith("3 settings are wrong:")
    for name in ("IMUNBAN_SDKAPPID", "IMUNBAN_SECRET_KEY", "IMUNBAN_REGION"):
        assert name in message
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"IMUNBAN_LOG_FORMAT": "xml", "IMUNBAN_SDKAPPID": "1400000001"}, for_delivery=True)
    message = str(info.value)
    assert "IMUNBAN_LOG_FORMAT" in message and "IMUNBAN_SECRET_KEY" in message and "IMUNBAN_SDKAPPID" not in message


def test_a_complete_worker_environment_passes_for_delivery() -> None:
    """With SDKAppID, key and region set, for_delivery finds nothing missing."""
    env = {"IMUNBAN_SDKAPPID": "1400000001", "IMUNBAN_SECRET_KEY": "k", "IMUNBAN_REGION": "singapore"}
    assert Settings.from_env(env, for_delivery=True).single_app.sdkappid == 1400000001
