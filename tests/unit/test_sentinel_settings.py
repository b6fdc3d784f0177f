"""redis+sentinel:// URLs, the sentinel password and durable intake settings; the broker they make."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import redis

from imunban.errors import ConfigError
from imunban.redis_url import SentinelUrl, parse_sentinel_url
from imunban.settings import Durability, Settings
from imunban_celery.app import broker, create_celery
from imunban_celery.guard import (
    GuardedRedisChannel,
    GuardedRedisTransport,
    GuardedSentinelChannel,
    GuardedSentinelTransport,
    stay_on_sentinels,
)


def test_parse_full_url() -> None:
    """Password, three sentinels, service and database are all read; the password stays out of repr."""
    parsed = parse_sentinel_url("redis+sentinel://:s%40cret@h1:26379,h2:26380,10.0.0.3:26381/mymaster/3")
    assert parsed == SentinelUrl((("h1", 26379), ("h2", 26380), ("10.0.0.3", 26381)), "mymaster", 3, None, "s@cret")
    assert "s@cret" not in repr(parsed)


def test_parse_minimal_url_defaults() -> None:
    """One sentinel, no password, no database: db 0; a host without a port gets the sentinel default."""
    assert parse_sentinel_url("redis+sentinel://h1/svc") == SentinelUrl((("h1", 26379),), "svc")
    assert parse_sentinel_url("redis+sentinel://u:p@[::1]:5000/svc/0") == SentinelUrl(
        (("::1", 5000),), "svc", 0, "u", "p"
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis+sentinel:///svc", "no sentinel"),
        ("redis+sentinel://:pw@/svc", "no sentinel"),
        ("redis+sentinel://h1:26379", "no service"),
        ("redis+sentinel://h1:26379/", "no service"),
        ("redis+sentinel://h1:port/svc", "port must be a number"),
        ("redis+sentinel://h1:0/svc", "port must be a number"),
        ("redis+sentinel://h1:70000/svc", "port must be a number"),
        ("redis+sentinel://h1:26379,,h2:26379/svc", "empty sentinel address"),
        ("redis+sentinel://:26379/svc", "has no host"),
        ("redis+sentinel://h1:26379/svc/x", "database must be a number"),
        ("redis+sentinel://h1:26379/svc/-1", "database must be a number"),
        ("redis+sentinel://h1:26379/svc/0/extra", "/SERVICE or /SERVICE/DB"),
        ("redis+sentinel://h1:26379/svc/", "/SERVICE or /SERVICE/DB"),
        ("redis+sentinel://pw@h1:26379/svc", "credentials"),
        ("redis+sentinel://h1:26379/svc?db=1", "query string"),
    ],
)
def test_malformed_url_names_the_variable(url: str, reason: str) -> None:
    """Every malformed sentinel URL is a ConfigError naming IMUNBAN_REDIS_URL and what is wrong, without the URL."""
    with pytest.raises(ConfigError, match=reason) as caught:
        Settings.from_env({"IMUNBAN_REDIS_URL": url})
    assert "IMUNBAN_REDIS_URL" in str(caught.value)
    assert "pw" not in str(caught.value).replace("password", "")


def test_sentinel_password_is_a_secret() -> None:
    """IMUNBAN_SENTINEL_PASSWORD is kept as a Secret, hidden from the settings' repr."""
    settings = Settings.from_env({"IMUNBAN_REDIS_URL": "redis+sentinel://h1/svc", "IMUNBAN_SENTINEL_PASSWORD": "hush"})
    assert settings.sentinel_password is not None and settings.sentinel_password.reveal() == "hush"
    assert "hush" not in repr(settings)


def test_durability_defaults_and_bounds() -> None:
    """Durable intake is off by default (0 replicas, 1000 ms); negative replicas and a 0 ms timeout are refused."""
    assert Settings.from_env({}).durability == Durability(0, 1_000)
    assert Settings.from_env({"IMUNBAN_DURABLE_REPLICAS": "2", "IMUNBAN_DURABLE_TIMEOUT_MS": "50"}).durability == (
        Durability(2, 50)
    )
    with pytest.raises(ConfigError, match="IMUNBAN_DURABLE_REPLICAS"):
        Settings.from_env({"IMUNBAN_DURABLE_REPLICAS": "-1"})
    with pytest.raises(ConfigError, match="IMUNBAN_DURABLE_TIMEOUT_MS"):
        Settings.from_env({"IMUNBAN_DURABLE_TIMEOUT_MS": "0"})  # WAIT 0 would block forever


def test_broker_for_a_sentinel_url() -> None:
    """The broker is kombu's sentinel transport: every sentinel, the db, the service, passwords only as options."""
    settings = Settings.from_env(
        {"IMUNBAN_REDIS_URL": "redis+sentinel://:pw@h1:1,h2:2/svc/4", "IMUNBAN_SENTINEL_PASSWORD": "spw"}
    )
    url, options = broker(settings)
    assert url == "sentinel://h1:1/4;sentinel://h2:2/4"
    assert options["master_name"] == "svc"
    assert options["primary_password"] == "pw"
    assert options["sentinel_kwargs"]["password"] == "spw"


def test_broker_for_a_plain_url_is_unchanged() -> None:
    """A redis:// URL is the broker URL itself, with no extra transport options."""
    assert broker(Settings.from_env({"IMUNBAN_REDIS_URL": "redis://h:6379/0"})) == ("redis://h:6379/0", {})


def test_celery_app_uses_the_guarded_sentinel_transport() -> None:
    """create_celery on a sentinel URL routes the broker through GuardedSentinelTransport with the service name."""
    app = create_celery(Settings.from_env({"IMUNBAN_REDIS_URL": "redis+sentinel://:pw@h1:1,h2:2/svc/4"}))
    assert app.conf.broker_transport == "imunban_celery.guard:GuardedSentinelTransport"
    options = app.conf.broker_transport_options
    assert options["master_name"] == "svc" and options["visibility_timeout"] == 300
    connection = app.connection_for_write()  # not connected: building it dials nothing
    assert [alt.split("/")[2] for alt in connection.alt] == ["h1:1", "h2:2"]
    assert "pw" not in connection.as_uri(include_password=True)


def test_readonly_is_a_connection_error_for_the_broker() -> None:
    """A READONLY reply (a demoted primary) makes the Celery consumer reconnect instead of dying (celery #7946)."""
    for transport in (GuardedRedisTransport, GuardedSentinelTransport):
        assert redis.exceptions.ReadOnlyError in transport.connection_errors


def test_kombu_failover_keeps_the_guarded_sentinel_transport() -> None:
    """kombu's "switch to the next URL" gets a bare hostname, which keeps our transport and the primary password."""
    app = create_celery(Settings.from_env({"IMUNBAN_REDIS_URL": "redis+sentinel://:pw@h1:1,h2:2/svc"}))
    connection = app.connection_for_write()
    connection.maybe_switch_next()
    assert connection.transport_cls == "imunban_celery.guard:GuardedSentinelTransport"
    assert connection.hostname == "h1" and len(connection.alt) == 2
    assert stay_on_sentinels(["sentinel://h9:5/0", "sentinel://h8:5/0"]).__next__() == "h9"


@pytest.mark.parametrize("channel_cls", [GuardedRedisChannel, GuardedSentinelChannel])
def test_ack_on_a_channel_whose_connection_closed_is_a_connection_error(channel_cls: type[GuardedRedisChannel]) -> None:
    """A late ack on a channel of a closed broker connection is a connection error, not the worker's death.

    After a failover, a pool thread may ack a message on a channel whose connection the consumer
    already closed; kombu then reads ``connection.client.hostname`` of None. An AttributeError there
    is "unrecoverable" for Celery and stopped the whole worker (seen in the failover drill under load).
    """
    channel = channel_cls.__new__(channel_cls)  # a real one would dial the broker in __init__
    channel.connection = SimpleNamespace(client=None)  # what the consumer's reset leaves behind
    with pytest.raises(redis.exceptions.ConnectionError):
        channel._connparams()
    assert redis.exceptions.ConnectionError in GuardedSentinelTransport.connection_errors
