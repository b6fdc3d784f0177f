"""The apps file: one [apps.NAME] table per app, every mistake a ConfigError naming the app and the field."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from imunban.apps import AppConfig, Apps, Credentials, parse_apps, parse_apps_file
from imunban.errors import ConfigError, ValidationError
from imunban.keys import Keys
from imunban.settings import Secret, Settings

GOOD = """
[apps.cn]
sdkappid = 1400000001
region = "china"
secret_key = "cn-key-0123456789"

[apps.intl]
sdkappid = 1400000002
base_url = "http://127.0.0.1:8080/"
identifier = "ops_admin"
secret_key_file = "intl.key"
rate_limit = 50
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "apps.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_gives_each_app_its_fields_and_defaults(tmp_path: Path) -> None:
    """Fields are read, defaults filled in, a relative key file is found beside the apps file."""
    (tmp_path / "intl.key").write_text("intl-secret\n", encoding="utf-8")
    cn, intl = parse_apps_file(write(tmp_path, GOOD))
    assert cn == AppConfig("cn", 1400000001, "administrator", Secret("cn-key-0123456789"), None, "china", None, 190.0)
    assert intl.base_url == "http://127.0.0.1:8080" and intl.region is None
    assert (intl.identifier, intl.rate_limit_per_s, intl.secret_key_file) == ("ops_admin", 50.0, tmp_path / "intl.key")
    assert intl.credentials() == Credentials(1400000002, "ops_admin", Secret("intl-secret"))


def test_settings_from_env_name_the_file_and_apps_reads_it(tmp_path: Path) -> None:
    """IMUNBAN_APPS_FILE selects the file; each app carries its own credentials, address and limit."""
    (tmp_path / "intl.key").write_text("intl-secret", encoding="utf-8")
    path = write(tmp_path, GOOD)
    settings = Settings.from_env({"IMUNBAN_APPS_FILE": str(path), "IMUNBAN_CONCURRENCY": "3"})
    apps = settings.apps()
    assert apps.names == ["cn", "intl"] and len(apps) == 2
    intl = apps.by_name["intl"]
    assert intl.credentials() == (1400000002, "ops_admin", Secret("intl-secret"))
    assert intl.api_urls() == ("http://127.0.0.1:8080",) and intl.rate_limit_per_s == 50.0
    assert settings.concurrency == 3  # everything else is the deployment's
    assert apps.by_name["cn"].keys("imunban") == Keys("imunban", "cn")


def test_without_a_file_the_single_app_variables_are_app_default() -> None:
    """Existing deployments keep working: IMUNBAN_SDKAPPID & co. become the one app 'default'."""
    env = {"IMUNBAN_SDKAPPID": "1400000009", "IMUNBAN_SECRET_KEY": "k", "IMUNBAN_REGION": "tokyo"}
    (app,) = Settings.from_env(env).apps()
    assert (app.name, app.sdkappid, app.region, app.rate_limit_per_s) == ("default", 1400000009, "tokyo", 190.0)
    assert app.keys("imunban") == Keys("imunban")


def test_a_key_file_is_read_only_when_a_call_is_signed(tmp_path: Path) -> None:
    """An unreadable key file parses (status, the console need no key); credentials() names file, app and field."""
    path = write(tmp_path, '[apps.a]\nsdkappid = 1\nregion = "china"\nsecret_key_file = "missing.key"\n')
    (app,) = parse_apps_file(path)
    with pytest.raises(ConfigError) as caught:
        app.credentials()
    message = str(caught.value)
    assert "IMUNBAN_APPS_FILE" in message and str(path) in message and "app 'a'" in message
    assert "field 'secret_key_file': cannot read" in message and "missing.key" in message


def test_the_single_app_key_file_is_read_only_when_a_call_is_signed(tmp_path: Path) -> None:
    """IMUNBAN_SECRET_KEY_FILE is named at start and read by credentials(), naming the variable."""
    settings = Settings.from_env({"IMUNBAN_SDKAPPID": "1", "IMUNBAN_SECRET_KEY_FILE": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match="IMUNBAN_SECRET_KEY_FILE: cannot read"):
        settings.single_app.credentials()
    (tmp_path / "key").write_text("k3y\n", encoding="utf-8")
    settings = Settings.from_env({"IMUNBAN_SDKAPPID": "1", "IMUNBAN_SECRET_KEY_FILE": str(tmp_path / "key")})
    assert settings.single_app.credentials() == (1, "administrator", Secret("k3y"))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('sdkappid = 1\nregion = "china"\nsecret_key = "k"\nregoin = "x"', "app 'a': unknown field 'regoin'"),
        ('sdkappid = 1\nsecret_key = "k"', "app 'a': set exactly one of the fields 'region' and 'base_url'"),
        (
            'sdkappid = 1\nregion = "china"\nbase_url = "http://x"\nsecret_key = "k"',
            "app 'a': set exactly one of the fields 'region' and 'base_url'",
        ),
        ('sdkappid = 1\nregion = "mars"\nsecret_key = "k"', "app 'a': field 'region' must be one of"),
        ('sdkappid = 1\nbase_url = "ftp://x"\nsecret_key = "k"', "app 'a': field 'base_url' must be an http"),
        ('sdkappid = 1\nbase_url = "http://"\nsecret_key = "k"', "app 'a': field 'base_url' must be an http"),
        ('region = "china"\nsecret_key = "k"', "app 'a': field 'sdkappid' is required"),
        ('sdkappid = "14"\nregion = "china"\nsecret_key = "k"', "app 'a': field 'sdkappid' must be a positive"),
        ('sdkappid = 0\nregion = "china"\nsecret_key = "k"', "app 'a': field 'sdkappid' must be a positive"),
        ('sdkappid = 1\nregion = "china"', "app 'a': set exactly one of the fields 'secret_key' and 'secret_key_file'"),
        (
            'sdkappid = 1\nregion = "china"\nsecret_key = "k"\nsecret_key_file = "f"',
            "app 'a': set exactly one of the fields 'secret_key' and 'secret_key_file'",
        ),
        ('sdkappid = 1\nregion = "china"\nsecret_key = "k"\nrate_limit = 201', "app 'a': field 'rate_limit' must be"),
        ('sdkappid = 1\nregion = "china"\nsecret_key = "k"\nrate_limit = 0', "app 'a': field 'rate_limit' must be"),
        ('sdkappid = 1\nregion = "china"\nsecret_key = "k"\nidentifier = "a b"', "app 'a': field 'identifier'"),
    ],
)
def test_each_mistake_names_the_app_and_the_field(tmp_path: Path, table: str, message: str) -> None:
    """A bad table is refused with the file, the app and the field in the message."""
    path = write(tmp_path, f"[apps.a]\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        parse_apps_file(path)
    assert message in str(caught.value) and "IMUNBAN_APPS_FILE" in str(caught.value)


@pytest.mark.parametrize("name", ["1cn", "c n", "cn.x", "a{b}", "x" * 33, "ü"])
def test_an_unsafe_app_name_is_refused(name: str) -> None:
    """App names go into keys, labels and URLs: a letter then letters, digits, '_' or '-'."""
    with pytest.raises(ConfigError, match="is not a safe identifier"):
        parse_apps({"apps": {name: {"sdkappid": 1, "region": "china", "secret_key": "k"}}})


def test_a_duplicate_sdkappid_is_refused_naming_both_apps() -> None:
    """Two tables for one SDKAppID would split its one limit in two."""
    table = {"sdkappid": 7, "region": "china", "secret_key": "k"}
    with pytest.raises(ConfigError, match="apps 'a' and 'b' have the same sdkappid 7"):
        parse_apps({"apps": {"a": table, "b": dict(table)}})


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({}, "no apps"),
        ({"apps": {}}, "no apps"),
        ({"app": {}}, "unknown top-level key 'app'"),
        ({"apps": {"a": 1}}, "must be a table"),
    ],
)
def test_a_file_without_app_tables_is_refused(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_apps(doc)


def test_unreadable_or_malformed_files_are_refused(tmp_path: Path) -> None:
    """A missing file and a TOML syntax error both name IMUNBAN_APPS_FILE."""
    with pytest.raises(ConfigError, match="IMUNBAN_APPS_FILE: cannot read"):
        parse_apps_file(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        parse_apps_file(write(tmp_path, "[apps.a\n"))


def test_secrets_stay_out_of_repr_and_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Neither repr of an app, nor of its settings, nor an error about another field shows the key."""
    caplog.set_level(logging.DEBUG)
    (app,) = parse_apps({"apps": {"a": {"sdkappid": 1, "region": "china", "secret_key": "s3cr3t-value"}}})
    assert "s3cr3t" not in repr(app) and "s3cr3t" not in repr(Settings(single_app=app))
    with pytest.raises(ConfigError) as caught:
        parse_apps({"apps": {"a": {"sdkappid": 1, "region": "x", "secret_key": "s3cr3t-value"}}})
    assert "s3cr3t" not in str(caught.value)


def test_resolve_the_app_of_a_request() -> None:
    """One app: 'app' may be left out. Several: it is required, and an unknown name is refused."""
    one = Apps([AppConfig("default", 1)])
    assert one.resolve(None).name == "default" and one.resolve("default").name == "default"
    two = Apps([AppConfig("cn", 1), AppConfig("intl", 2)])
    assert two.resolve("intl").sdkappid == 2
    with pytest.raises(ValidationError, match="app: is required: this deployment serves several apps"):
        two.resolve(None)
    with pytest.raises(ValidationError, match="app: unknown app 'eu'"):
        two.resolve("eu")
    with pytest.raises(ValidationError, match="app: must be a string"):
        two.resolve(3)


def test_key_prefix_with_braces_is_refused_and_cluster_durability_accepted() -> None:
    """A brace in the prefix would break the hash tag; IMUNBAN_DURABLE_REPLICAS works with a cluster (WAIT per node)."""
    with pytest.raises(ConfigError, match="IMUNBAN_KEY_PREFIX must not contain"):
        Settings.from_env({"IMUNBAN_KEY_PREFIX": "a{b}"})
    env = {"IMUNBAN_REDIS_URL": "redis+cluster://127.0.0.1:7000", "IMUNBAN_DURABLE_REPLICAS": "1"}
    assert Settings.from_env(env).durable_replicas == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://", "names no cluster node"),
        ("redis+cluster://h:1/0", "takes no path"),
        ("redis+cluster://h:x", "port must be a number"),
        ("redis+cluster://:pw@h:1,,h:2", "empty node address"),
    ],
)
def test_malformed_cluster_urls_name_the_variable(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Settings.from_env({"IMUNBAN_REDIS_URL": url})
    assert "IMUNBAN_REDIS_URL" in str(caught.value) and "pw" not in str(caught.value)


def test_cluster_url_and_broker_url_are_read() -> None:
    """A cluster URL with its seed nodes; the broker on its own (Sentinel) Redis."""
    settings = Settings.from_env(
        {
            "IMUNBAN_REDIS_URL": "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
            "IMUNBAN_BROKER_URL": "redis+sentinel://s1:26379/mymaster",
        }
    )
    assert settings.redis_url == "redis+cluster://127.0.0.1:7000,127.0.0.1:7001"
    assert settings.broker_url == "redis+sentinel://s1:26379/mymaster"
    with pytest.raises(ConfigError, match="IMUNBAN_BROKER_URL must start with"):
        Settings.from_env({"IMUNBAN_BROKER_URL": "redis+cluster://h:1"})
    with pytest.raises(ConfigError, match="IMUNBAN_BROKER_URL names no service"):
        Settings.from_env({"IMUNBAN_BROKER_URL": "redis+sentinel://h:1"})
