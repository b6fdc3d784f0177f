"""Settings from IMUNBAN_* variables: every variable parsed, errors name it, the secret never shows."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest

from imunban.errors import ConfigError
from imunban.settings import REGIONS, LingerPolicy, Secret, Settings

KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"


def test_defaults_from_an_empty_environment() -> None:
    """No variables at all gives the documented defaults (embedded Redis, no credentials yet)."""
    s = Settings.from_env({})
    assert s == Settings()
    assert (s.redis_url, s.sdkappid, s.secret_key, s.identifier) == (None, None, None, "administrator")
    assert s.rate_limit_per_s == 190.0 < 200
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
        "IMUNBAN_MAX_LINGER_MS": "400",
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
        sdkappid=1400000000,
        identifier="ops_admin",
        secret_key=Secret(KEY),
        region="singapore",
        base_url="http://127.0.0.1:8080",
        rate_limit_per_s=150.5,
        key_prefix="stage:imunban",
        linger_ms=100,
        max_linger_ms=400,
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
    assert s.api_urls() == ("http://127.0.0.1:8080",)
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
        ("MAX_LINGER_MS", "50"),
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
    ],
)
def test_bad_value_error_names_the_variable(name: str, value: str) -> None:
    """A malformed value raises ConfigError whose message names the full variable."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env({f"IMUNBAN_{name}": value})
    assert f"IMUNBAN_{name}" in str(info.value)


def test_max_linger_defaults_to_at_least_the_linger() -> None:
    """Without IMUNBAN_MAX_LINGER_MS the cap is 750 ms, or the linger itself when that is longer."""
    assert Settings.from_env({"IMUNBAN_LINGER_MS": "100"}).max_linger_ms == 750
    assert Settings.from_env({"IMUNBAN_LINGER_MS": "900"}).max_linger_ms == 900


@pytest.mark.parametrize("linger_ms", [0, 100, 150, 300, 750, 900, 60_000])
def test_linger_policy_in_code_caps_like_the_settings(linger_ms: int) -> None:
    """A LingerPolicy built in code (a Producer's) and the workers' Settings apply one cap rule."""
    settings = Settings.from_env({"IMUNBAN_LINGER_MS": str(linger_ms)})
    assert LingerPolicy(linger_ms).cap_ms == settings.linger.cap_ms == max(750, linger_ms)
    assert LingerPolicy(linger_ms).script_arg == settings.linger.script_arg == f"{linger_ms}:{max(750, linger_ms)}"


def test_linger_policy_cap_is_never_below_the_linger() -> None:
    """An explicit cap is kept unless it is shorter than the linger; the default bound is 1000 ms."""
    assert LingerPolicy(300, 500).script_arg == "300:500"
    assert LingerPolicy(300, 100).cap_ms == 300
    assert LingerPolicy().script_arg == Settings().linger.script_arg == "1000:1000"
    assert Settings.from_env({"IMUNBAN_LINGER_MS": "100", "IMUNBAN_MAX_LINGER_MS": "400"}).linger == LingerPolicy(
        100, 400
    )


def test_every_region_maps_to_primary_and_backup() -> None:
    """Each region name gives its primary then its backup domain, over HTTPS."""
    for region, (primary, backup) in REGIONS.items():
        s = Settings.from_env({"IMUNBAN_REGION": region.upper()})
        assert s.api_urls() == (f"https://{primary}", f"https://{backup}")
    assert Settings.from_env({"IMUNBAN_REGION": "china"}).api_urls()[1] == "https://adminapi.my-imcloud.com"


def test_no_region_nor_base_url_is_an_error_naming_both() -> None:
    """Asking for API URLs without a region or base URL names both variables."""
    with pytest.raises(ConfigError, match=r"IMUNBAN_REGION.*IMUNBAN_BASE_URL"):
        Settings().api_urls()


def test_require_credentials_names_what_is_missing() -> None:
    """Missing SDKAppID or secret key is an error naming the variable(s)."""
    with pytest.raises(ConfigError, match="IMUNBAN_SDKAPPID"):
        Settings.from_env({"IMUNBAN_SECRET_KEY": KEY}).require_credentials()
    with pytest.raises(ConfigError, match="IMUNBAN_SECRET_KEY or IMUNBAN_SECRET_KEY_FILE"):
        Settings.from_env({"IMUNBAN_SDKAPPID": "1"}).require_credentials()
    appid, identifier, secret = Settings.from_env(
        {"IMUNBAN_SDKAPPID": "1", "IMUNBAN_SECRET_KEY": KEY}
    ).require_credentials()
    assert (appid, identifier, secret.reveal()) == (1, "administrator", KEY)


# -- the secret ----------------------------------------------------------------------------------


def test_secret_key_file_is_read_and_stripped(tmp_path: Path) -> None:
    """IMUNBAN_SECRET_KEY_FILE supplies the key from a file, trailing newline removed."""
    path = tmp_path / "key"
    path.write_text(KEY + "\n", encoding="utf-8")
    s = Settings.from_env({"IMUNBAN_SECRET_KEY_FILE": str(path)})
    assert s.secret_key is not None and s.secret_key.reveal() == KEY


@pytest.mark.parametrize("content", [None, "", "  \n", b"\xff\xfe\x00"])
def test_unusable_secret_key_file_names_the_variable(tmp_path: Path, content: str | bytes | None) -> None:
    """A missing, empty or non-text key file is an error naming IMUNBAN_SECRET_KEY_FILE."""
    path = tmp_path / "key"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"IMUNBAN_SECRET_KEY_FILE": str(path)})
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
    assert s.secret_key is not None
    for text in (repr(s), str(s), repr(s.secret_key), str(s.secret_key), f"{s.secret_key}", f"{s!r}"):
        assert KEY not in text
    assert "sdkappid=1" in repr(s)


def test_pickling_a_secret_is_refused() -> None:
    """A Secret (and so a Settings holding one) cannot be pickled or copied into a message."""
    secret = Secret(KEY)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        pickle.dumps(Settings(secret_key=secret))
    with pytest.raises(TypeError):
        copy.deepcopy(secret)


def test_secret_equality_and_hash() -> None:
    """Secrets compare and hash by value without revealing it."""
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b") and Secret("a") != "a"
    assert hash(Secret("a")) == hash(Secret("a"))
