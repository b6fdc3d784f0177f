"""Settings from IMUNBAN_* variables: every variable parsed, errors name it, the secret never shows."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import fakeredis
import pytest

from imunban.apps import AppConfig
from imunban.deployment import open_deployment
from imunban.errors import ConfigError
from imunban.settings import REGIONS, LingerPolicy, Secret, Settings

KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"


def test_defaults_from_an_empty_environment() -> None:
    """No variables at all gives the documented defaults (embedded Redis, no credentials yet)."""
    s = Settings.from_env({})
    assert s == Settings()
    app = s.single_app
    assert (s.redis_url, app.sdkappid, app.secret_key, app.identifier) == (None, None, None, "administrator")
    assert app.rate_limit_per_s == 190.0 < 200
    assert s.metrics_host == "127.0.0.1"


def test_every_variable_is_parsed() -> None:
    """Each IMUNBAN_* variable lands in its field, converted to its type."""
    env = {
        "IMUNBAN_REDIS_URL": "redis://:pw@127.0.0.1:6380/2",
        "IMUNBAN_SDKAPPID": "1400000000",
        "IMUNBAN_IDENTIFIER": "ops_admin",
        "IMUNBAN_SECRET_KEY": KEY,
        "IMUNBAN_REGION": "Singapore",
        "IMUNBAN_BASE_URL": "http://127.0.0.1:8080/",
        "IMUNBAN_RATE_LIMIT": "150.5",
        "IMUNBAN_KEY_PREFIX": "stage:imunban",
        "IMUNBAN_LINGER_MS": "100",
        "IMUNBAN_LEASE_MS": "20000",
        "IMUNBAN_MAX_ATTEMPTS": "5",
        "IMUNBAN_MAX_AGE_S": "3600",
        "IMUNBAN_BACKOFF_BASE_MS": "200",
        "IMUNBAN_BACKOFF_CAP_MS": "60000",
        "IMUNBAN_CONCURRENCY": "16",
        "IMUNBAN_CONNECT_TIMEOUT_S": "2.5",
        "IMUNBAN_READ_TIMEOUT_S": "4",
        "IMUNBAN_METRICS_PORT": "9464",
        "IMUNBAN_METRICS_HOST": "0.0.0.0",
        "IMUNBAN_LOG_FORMAT": "JSON",
        "IMUNBAN_LOG_LEVEL": "debug",
        "IMUNBAN_OUTCOME_STREAM_MAXLEN": "5000",
        "IMUNBAN_DATA_DIR": "/var/lib/imunban",
        "IMUNBAN_INTAKE_MEMORY_FRACTION": "0.8",
    }
    s = Settings.from_env(env)
    assert s == Settings(
        redis_url="redis://:pw@127.0.0.1:6380/2",
        single_app=AppConfig(
            "default",
            sdkappid=1400000000,
            identifier="ops_admin",
            secret_key=Secret(KEY),
            region="singapore",
            base_url="http://127.0.0.1:8080",
            rate_limit_per_s=150.5,
        ),
        key_prefix="stage:imunban",
        linger_ms=100,
        lease_ms=20_000,
        max_attempts=5,
        max_age_s=3_600,
        backoff_base_ms=200,
        backoff_cap_ms=60_000,
        concurrency=16,
        connect_timeout_s=2.5,
        read_timeout_s=4.0,
        metrics_port=9464,
        metrics_host="0.0.0.0",
        log_format="json",
        log_level="DEBUG",
        outcome_stream_maxlen=5_000,
        data_dir="/var/lib/imunban",
        intake_memory_fraction=0.8,
    )
    assert s.single_app.api_urls() == ("http://127.0.0.1:8080",)
    assert s.durability.intake_memory_fraction == 0.8


def test_blank_values_count_as_unset() -> None:
    """An empty or all-space variable is the same as an unset one."""
    assert Settings.from_env({"IMUNBAN_SDKAPPID": "  ", "IMUNBAN_REGION": ""}) == Settings()


def test_variables_without_the_prefix_are_ignored() -> None:
    """Only IMUNBAN_* variables are read."""
    assert Settings.from_env({"SDKAPPID": "1", "REDIS_URL": "redis://x"}) == Settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REDIS_URL", "http://localhost:6379"),
        ("SDKAPPID", "abc"),
        ("SDKAPPID", "0"),
        ("SDKAPPID", "1.5"),
        ("IDENTIFIER", "admin istrator"),
        ("IDENTIFIER", "a" * 33),
        ("IDENTIFIER", "\u7ba1\u7406\u5458"),
        ("REGION", "mars"),
        ("BASE_URL", "ftp://example.com"),
        ("BASE_URL", "http://"),
        ("RATE_LIMIT", "0"),
        ("RATE_LIMIT", "-5"),
        ("RATE_LIMIT", "201"),
        ("RATE_LIMIT", "nan"),
        ("RATE_LIMIT", "inf"),
        ("RATE_LIMIT", "fast"),
        ("KEY_PREFIX", "has space"),
        ("KEY_PREFIX", "caf\u00e9"),
        ("LINGER_MS", "-1"),
        ("LINGER_MS", "soon"),
        ("LEASE_MS", "999"),
        ("MAX_ATTEMPTS", "0"),
        ("MAX_AGE_S", "0"),
        ("BACKOFF_BASE_MS", "0"),
        ("BACKOFF_CAP_MS", "x"),
        ("CONCURRENCY", "0"),
        ("CONNECT_TIMEOUT_S", "0"),
        ("READ_TIMEOUT_S", "3"),
        ("READ_TIMEOUT_S", "2.9"),
        ("METRICS_PORT", "-1"),
        ("METRICS_PORT", "70000"),
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "verbose"),
        ("OUTCOME_STREAM_MAXLEN", "0"),
        ("INTAKE_MEMORY_FRACTION", "0"),
        ("INTAKE_MEMORY_FRACTION", "1.5"),
        ("INTAKE_MEMORY_FRACTION", "90%"),
        ("TRACE_TTL_S", "0"),
        ("TRACE_TTL_S", "7d"),
        ("TRACE_TTL_S", str(11 * 365 * 86_400)),
    ],
)
def test_bad_value_error_names_the_variable(name: str, value: str) -> None:
    """A malformed value raises ConfigError whose message names the full variable."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env({f"IMUNBAN_{name}": value})
    assert f"IMUNBAN_{name}" in str(info.value)


def test_trace_ttl_defaults_to_seven_days_and_reaches_every_store() -> None:
    """IMUNBAN_TRACE_TTL_S (default 604800) is what each app's store passes to the scripts that write trace records."""
    assert Settings().trace_ttl_s == 604_800
    settings = Settings.from_env({"IMUNBAN_TRACE_TTL_S": "3600"})
    assert settings.trace_ttl_s == 3600
    deployment = open_deployment(settings, client=fakeredis.FakeRedis(decode_responses=True))
    assert deployment.app().store.trace_ttl_ms == 3_600_000


def test_linger_policy_in_code_and_from_settings_agree() -> None:
    """A LingerPolicy built in code (a Producer's) and the workers' Settings pass one bound to the scripts."""
    assert LingerPolicy().script_arg == Settings().linger.script_arg == "1000"
    assert Settings.from_env({"IMUNBAN_LINGER_MS": "150"}).linger == LingerPolicy(150)


def test_every_region_maps_to_primary_and_backup() -> None:
    """Each region name gives its primary then its backup domain, over HTTPS."""
    for region, (primary, backup) in REGIONS.items():
        s = Settings.from_env({"IMUNBAN_REGION": region.upper()})
        assert s.single_app.api_urls() == (f"https://{primary}", f"https://{backup}")
    china = Settings.from_env({"IMUNBAN_REGION": "china"}).single_app
    assert china.api_urls()[1] == "https://adminapi.my-imcloud.com"


def test_no_region_nor_base_url_is_an_error_naming_both() -> None:
    """Asking for API URLs without a region or base URL names both variables."""
    with pytest.raises(ConfigError, match=r"IMUNBAN_REGION.*IMUNBAN_BASE_URL"):
        Settings().single_app.api_urls()


def test_credentials_name_what_is_missing() -> None:
    """Missing SDKAppID or secret key is an error naming the variable(s)."""
    with pytest.raises(ConfigError, match="IMUNBAN_SDKAPPID"):
        Settings.from_env({"IMUNBAN_SECRET_KEY": KEY}).single_app.credentials()
    with pytest.raises(ConfigError, match="IMUNBAN_SECRET_KEY or IMUNBAN_SECRET_KEY_FILE"):
        Settings.from_env({"IMUNBAN_SDKAPPID": "1"}).single_app.credentials()
    appid, identifier, secret = Settings.from_env(
        {"IMUNBAN_SDKAPPID": "1", "IMUNBAN_SECRET_KEY": KEY}
    ).single_app.credentials()
    assert (appid, identifier, secret.reveal()) == (1, "administrator", KEY)


# -- the secret ----------------------------------------------------------------------------------


def test_secret_key_file_is_read_and_stripped(tmp_path: Path) -> None:
    """IMUNBAN_SECRET_KEY_FILE supplies the key from a file, trailing newline removed."""
    path = tmp_path / "key"
    path.write_text(KEY + "\n", encoding="utf-8")
    s = Settings.from_env({"IMUNBAN_SDKAPPID": "1", "IMUNBAN_SECRET_KEY_FILE": str(path)})
    assert s.single_app.credentials().secret.reveal() == KEY


@pytest.mark.parametrize("content", [None, "", "  \n", b"\xff\xfe\x00"])
def test_unusable_secret_key_file_names_the_variable(tmp_path: Path, content: str | bytes | None) -> None:
    """A missing, empty or non-text key file is an error naming IMUNBAN_SECRET_KEY_FILE (when a call is signed)."""
    path = tmp_path / "key"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    settings = Settings.from_env({"IMUNBAN_SDKAPPID": "1", "IMUNBAN_SECRET_KEY_FILE": str(path)})
    with pytest.raises(ConfigError) as info:
        settings.single_app.credentials()
    assert "IMUNBAN_SECRET_KEY_FILE" in str(info.value)
    assert KEY not in str(info.value)


def test_secret_key_and_file_together_is_an_error(tmp_path: Path) -> None:
    """Setting both IMUNBAN_SECRET_KEY and IMUNBAN_SECRET_KEY_FILE is refused, naming both."""
    path = tmp_path / "key"
    path.write_text(KEY, encoding="utf-8")
    with pytest.raises(ConfigError, match="IMUNBAN_SECRET_KEY and IMUNBAN_SECRET_KEY_FILE") as info:
        Settings.from_env({"IMUNBAN_SECRET_KEY": KEY, "IMUNBAN_SECRET_KEY_FILE": str(path)})
    assert KEY not in str(info.value)


def test_secret_never_in_repr_or_str_of_settings() -> None:
    """Neither repr() nor str() of Settings or of the Secret shows the key."""
    s = Settings.from_env({"IMUNBAN_SDKAPPID": "1", "IMUNBAN_SECRET_KEY": KEY})
    secret = s.single_app.secret_key
    assert secret is not None
    for text in (repr(s), str(s), repr(secret), str(secret), f"{secret}", f"{s!r}", repr(s.single_app)):
        assert KEY not in text
    assert "sdkappid=1" in repr(s)


def test_pickling_a_secret_is_refused() -> None:
    """A Secret (and so a Settings holding one) cannot be pickled or copied into a message."""
    secret = Secret(KEY)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        pickle.dumps(Settings(single_app=AppConfig("default", secret_key=secret)))
    with pytest.raises(TypeError):
        copy.deepcopy(secret)


def test_secret_equality_and_hash() -> None:
    """Secrets compare and hash by value without revealing it."""
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b") and Secret("a") != "a"
    assert hash(Secret("a")) == hash(Secret("a"))


# -- malformed Redis URLs: one line naming the variable and the problem, never a traceback later ---------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://127.0.0.1:63x9/0", "port"),
        ("redis://127.0.0.1:99999/0", "port"),
        ("redis://127.0.0.1:0/0", "port"),
        ("redis://:s3cret@127.0.0.1:6379/1x", "database"),
        ("redis://127.0.0.1:6379/-1", "database"),
        ("redis://127.0.0.1:6379/0/extra", "database"),
        ("redis://127.0.0.1:6379/0?socket_timeout=soon", "socket_timeout"),
        ("redis://127.0.0.1:6379/0?colour=blue", "colour"),
        ("redis:///0", "host"),
        ("unix://", "path"),
    ],
)
def test_a_malformed_redis_url_is_refused_naming_the_variable(url: str, problem: str) -> None:
    """IMUNBAN_REDIS_URL and IMUNBAN_BROKER_URL are checked at start: the variable, the problem, no password."""
    for variable in ("IMUNBAN_REDIS_URL", "IMUNBAN_BROKER_URL"):
        with pytest.raises(ConfigError) as info:
            Settings.from_env({variable: url})
        message = str(info.value)
        assert message.startswith(variable) and problem in message and "s3cret" not in message


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://:pw@redis.internal:6380/15?socket_timeout=2.5&health_check_interval=10",
        "rediss://user:pw@h/3",
        "redis://h",
        "unix:///run/redis.sock?db=2",
    ],
)
def test_well_formed_redis_urls_pass(url: str) -> None:
    assert Settings.from_env({"IMUNBAN_REDIS_URL": url}).redis_url == url
