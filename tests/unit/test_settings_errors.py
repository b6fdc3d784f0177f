"""Settings name every bad variable in one run, and warn about an ``IMUNBAN_*`` name they do not know."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from imunban.envnames import unknown_variables
from imunban.errors import ConfigError
from imunban.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


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


def test_an_unknown_variable_is_named_with_the_closest_known_one() -> None:
    """IMUNBAN_RATE_LIMT (a typo) is reported with IMUNBAN_RATE_LIMIT; the recipes' Redis variables are not."""
    env = {"IMUNBAN_RATE_LIMT": "100", "IMUNBAN_ZZZ_QQQ": "1", "IMUNBAN_REDIS_PASSWORD": "p", "OTHER_RATE_LIMT": "1"}
    env |= {"IMUNBAN_RATE_LIMIT": "100", "IMUNBAN_WEB_VIEWER_TOKEN_FILE": ""}
    known = {"IMUNBAN_RATE_LIMIT", "IMUNBAN_WEB_VIEWER_TOKEN_FILE", "IMUNBAN_REDIS_URL"}
    assert unknown_variables(env, known) == [("IMUNBAN_RATE_LIMT", "IMUNBAN_RATE_LIMIT"), ("IMUNBAN_ZZZ_QQQ", None)]


def test_every_variable_settings_read_is_known(caplog: pytest.LogCaptureFixture) -> None:
    """Every IMUNBAN_* name the docs' tables list is read by Settings (or given to Redis by the recipes): no warning."""
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(IMUNBAN_[A-Z_]+)`", text, re.MULTILINE))
    with caplog.at_level(logging.WARNING, logger="imunban.envnames"):
        Settings.from_env(dict.fromkeys(documented, ""))
    assert documented and not caplog.records


def test_the_warning_is_logged_once_per_process_and_is_no_error(caplog: pytest.LogCaptureFixture) -> None:
    """An unknown variable is a warning, logged once however often settings are read; the settings still load."""
    env = {"IMUNBAN_CONCURENCY_TEST_ONCE": "4"}
    with caplog.at_level(logging.WARNING, logger="imunban.envnames"):
        for _ in range(3):
            assert Settings.from_env(env) == Settings()
    assert [r.getMessage() for r in caplog.records] == [
        "IMUNBAN_CONCURENCY_TEST_ONCE is not a variable imunban reads: ignored; did you mean IMUNBAN_CONCURRENCY?"
    ]
