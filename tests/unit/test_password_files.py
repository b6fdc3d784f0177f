"""IMUNBAN_REDIS_PASSWORD_FILE and IMUNBAN_SENTINEL_PASSWORD_FILE: named at start, read when connecting, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from imunban.errors import ConfigError
from imunban.redis_url import url_has_password
from imunban.secret import Secret
from imunban.settings import Settings


def test_files_are_named_at_start_and_read_when_asked(tmp_path: Path) -> None:
    """Settings keeps the paths only; redis_password() and sentinel_auth() read the files each time they are called."""
    redis_file, sentinel_file = tmp_path / "redis_password", tmp_path / "sentinel_password"
    settings = Settings.from_env(
        {
            "IMUNBAN_REDIS_URL": "redis://redis:6379/0",
            "IMUNBAN_REDIS_PASSWORD_FILE": str(redis_file),
            "IMUNBAN_SENTINEL_PASSWORD_FILE": str(sentinel_file),
        }
    )
    assert settings.redis_password_file == redis_file and settings.sentinel_password_file == sentinel_file
    redis_file.write_text("hunter2hunter2\n")
    sentinel_file.write_text("s3ntinel")
    assert settings.redis_password() == Secret("hunter2hunter2")
    assert settings.sentinel_auth() == Secret("s3ntinel")
    assert "hunter2" not in repr(settings) and "s3ntinel" not in repr(settings)


def test_unreadable_or_empty_file_names_the_variable(tmp_path: Path) -> None:
    """A missing or empty password file is a ConfigError naming the variable, when a client connects."""
    settings = Settings.from_env({"IMUNBAN_REDIS_PASSWORD_FILE": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match=r"^IMUNBAN_REDIS_PASSWORD_FILE: cannot read"):
        settings.redis_password()
    (tmp_path / "empty").write_text("\n")
    settings = Settings.from_env({"IMUNBAN_SENTINEL_PASSWORD_FILE": str(tmp_path / "empty")})
    with pytest.raises(ConfigError, match=r"^IMUNBAN_SENTINEL_PASSWORD_FILE: .* is empty"):
        settings.sentinel_auth()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"IMUNBAN_REDIS_URL": "redis://:pw@redis:6379/0"}, "IMUNBAN_REDIS_URL carries a password too"),
        ({"IMUNBAN_REDIS_URL": "redis+sentinel://:pw@s1:26379/svc"}, "IMUNBAN_REDIS_URL carries a password too"),
        ({"IMUNBAN_REDIS_URL": "redis+cluster://:pw@c1:6379"}, "IMUNBAN_REDIS_URL carries a password too"),
        ({"IMUNBAN_BROKER_URL": "redis://u:pw@broker:6379/0"}, "IMUNBAN_BROKER_URL carries a password too"),
    ],
)
def test_a_password_given_twice_is_refused(env: dict[str, str], message: str) -> None:
    """A URL with a password and IMUNBAN_REDIS_PASSWORD_FILE together: an error naming both, not a silent choice."""
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"IMUNBAN_REDIS_PASSWORD_FILE": "/run/secrets/redis_password", **env})


def test_sentinel_password_given_twice_is_refused() -> None:
    """IMUNBAN_SENTINEL_PASSWORD and its _FILE are exclusive."""
    with pytest.raises(
        ConfigError, match="set only one of IMUNBAN_SENTINEL_PASSWORD and IMUNBAN_SENTINEL_PASSWORD_FILE"
    ):
        Settings.from_env({"IMUNBAN_SENTINEL_PASSWORD": "x", "IMUNBAN_SENTINEL_PASSWORD_FILE": "/f"})


def test_sentinel_auth_falls_back_to_the_inline_password() -> None:
    """Without the file, sentinel_auth() is IMUNBAN_SENTINEL_PASSWORD (or None)."""
    assert Settings.from_env({"IMUNBAN_SENTINEL_PASSWORD": "abc"}).sentinel_auth() == Secret("abc")
    assert Settings.from_env({}).sentinel_auth() is None and Settings.from_env({}).redis_password() is None


@pytest.mark.parametrize(
    ("url", "has"),
    [
        ("redis://redis:6379/0", False),
        ("redis://:pw@redis:6379/0", True),
        ("redis://user@redis:6379/0", False),
        ("rediss://user:pw@redis:6380", True),
        ("redis+sentinel://s1:26379,s2/svc/0", False),
        ("redis+sentinel://:pw@s1:26379,s2/svc/0", True),
        ("redis+cluster://c1:6379,c2", False),
        ("unix:///run/redis.sock?db=1", False),
        ("unix:///run/redis.sock?password=pw", True),
    ],
)
def test_url_has_password(url: str, has: bool) -> None:
    """Which URLs carry a password of their own."""
    assert url_has_password(url) is has


def test_celery_broker_gets_the_file_password(tmp_path: Path) -> None:
    """The Celery broker uses the file's password: broker_password on a plain URL, primary_password on Sentinel."""
    from imunban_celery.app import broker, create_celery

    secret = tmp_path / "redis_password"
    secret.write_text("brokerpass")
    plain = Settings.from_env({"IMUNBAN_REDIS_URL": "redis://redis:6379/0", "IMUNBAN_REDIS_PASSWORD_FILE": str(secret)})
    assert create_celery(plain).conf.broker_password == "brokerpass"
    sentinel = Settings.from_env(
        {"IMUNBAN_REDIS_URL": "redis+sentinel://s1:26379/svc/0", "IMUNBAN_REDIS_PASSWORD_FILE": str(secret)}
    )
    url, options = broker(sentinel)
    assert "brokerpass" not in str(url) and options["primary_password"] == "brokerpass"
