"""Parse ``redis+sentinel://`` and ``redis+cluster://`` URLs.

``redis+sentinel://[[user]:password@]host:port[,host:port...]/SERVICE[/DB]``: which sentinels to ask,
for which service, with which password. The password (and user) is the primary's and replicas'; the
sentinels' own password is ``IMUNBAN_SENTINEL_PASSWORD``.

``redis+cluster://[[user]:password@]host:port[,host:port...]``: seed nodes of a Redis Cluster (state
only: the Celery broker then lives on ``IMUNBAN_BROKER_URL``). A cluster has one database, so no path.
``redis://``, ``rediss://`` and ``unix://`` URLs are checked too (:func:`check_plain_url`). Pure text
handling, so :mod:`imunban.settings` can refuse a malformed URL before anything connects.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import parse_qsl, unquote

import redis
from redis.connection import URL_QUERY_ARGUMENT_PARSERS

from imunban.errors import ConfigError

SENTINEL_SCHEME = "redis+sentinel://"
CLUSTER_SCHEME = "redis+cluster://"
#: The port a cluster node listens on unless told otherwise.
DEFAULT_CLUSTER_PORT = 6379
#: The port a sentinel listens on unless told otherwise.
DEFAULT_SENTINEL_PORT = 26379
_VARIABLE = "IMUNBAN_REDIS_URL"
_FORM = "redis+sentinel://[:password@]host:port[,host:port...]/SERVICE[/DB]"
_CLUSTER_FORM = "redis+cluster://[:password@]host:port[,host:port...]"


@dataclass(frozen=True)
class SentinelUrl:
    """What a ``redis+sentinel://`` URL says. ``password`` never shows in ``repr``."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ClusterUrl:
    """What a ``redis+cluster://`` URL says: seed nodes and credentials. ``password`` never shows in ``repr``."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def is_sentinel_url(url: str | None) -> bool:
    return url is not None and url.startswith(SENTINEL_SCHEME)


def is_cluster_url(url: str | None) -> bool:
    return url is not None and url.startswith(CLUSTER_SCHEME)


def parse_cluster_url(url: str, *, variable: str = _VARIABLE) -> ClusterUrl:
    """The seed nodes of ``url``; ConfigError naming ``variable`` (without the password) if malformed."""
    if not url.startswith(CLUSTER_SCHEME):
        raise _bad(f"must start with {CLUSTER_SCHEME}", variable, _CLUSTER_FORM)
    rest = url[len(CLUSTER_SCHEME) :]
    if "?" in rest or "#" in rest or "/" in rest.rstrip("/"):
        raise _bad("takes no path, query string or fragment (a cluster has one database)", variable, _CLUSTER_FORM)
    username, password, netloc = _credentials(rest.rstrip("/"), variable, _CLUSTER_FORM)
    if not netloc:
        raise _bad("names no cluster node host:port", variable, _CLUSTER_FORM)
    nodes = tuple(
        _host_port(part, variable=variable, form=_CLUSTER_FORM, default_port=DEFAULT_CLUSTER_PORT, what="node")
        for part in netloc.split(",")
    )
    return ClusterUrl(nodes, username, password)


def _credentials(netloc: str, variable: str, form: str) -> tuple[str | None, str | None, str]:
    """(user, password, rest) of ``[[user]:password@]rest``."""
    if "@" not in netloc:
        return None, None, netloc
    credentials, _, netloc = netloc.rpartition("@")
    user, colon, secret = credentials.partition(":")
    if not colon:
        raise _bad("credentials must be ':password@' or 'user:password@'", variable, form)
    return unquote(user) or None, unquote(secret) or None, netloc


def parse_sentinel_url(url: str, *, variable: str = _VARIABLE) -> SentinelUrl:
    """The parts of ``url``; ConfigError naming ``variable`` (without the password) if malformed."""

    def _bad(reason: str) -> ConfigError:
        return _bad_url(reason, variable, _FORM)

    if not url.startswith(SENTINEL_SCHEME):
        raise _bad(f"must start with {SENTINEL_SCHEME}")
    rest = url[len(SENTINEL_SCHEME) :]
    if "?" in rest or "#" in rest:
        raise _bad("takes no query string or fragment")
    netloc, slash, path = rest.partition("/")
    username, password, netloc = _credentials(netloc, variable, _FORM)
    if not netloc:
        raise _bad("names no sentinel host:port")
    sentinels = tuple(_host_port(part, variable=variable) for part in netloc.split(","))
    segments = path.split("/") if slash else []
    if not segments or not segments[0]:
        raise _bad("names no service: the sentinels' master name comes after the hosts, e.g. /mymaster")
    if len(segments) > 2 or (len(segments) == 2 and segments[1] == ""):
        raise _bad("path must be /SERVICE or /SERVICE/DB")
    service = unquote(segments[0])
    if not service.isprintable() or any(c.isspace() for c in service):
        raise _bad(f"service name {service!r} must be printable without spaces")
    db = 0
    if len(segments) == 2:
        if not segments[1].isdigit() or not segments[1].isascii():
            raise _bad(f"database must be a number >= 0, got {segments[1]!r}")
        db = int(segments[1])
    return SentinelUrl(sentinels, service, db, username, password)


def _host_port(
    part: str,
    *,
    variable: str = _VARIABLE,
    form: str = _FORM,
    default_port: int = DEFAULT_SENTINEL_PORT,
    what: str = "sentinel",
) -> tuple[str, int]:
    if not part:
        raise _bad(f"has an empty {what} address (two commas in a row?)", variable, form)
    if part.startswith("["):  # [IPv6]:port
        host, bracket, tail = part[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise _bad(f"{what} address {part!r} is not [ipv6]:port", variable, form)
        port_text = tail[1:] if tail else ""
    else:
        host, _, port_text = part.partition(":")
    if not host:
        raise _bad(f"{what} address {part!r} has no host", variable, form)
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not port_text.isascii() or not 1 <= int(port_text) <= 65_535:
        raise _bad(f"{what} address {part!r}: port must be a number in 1..65535", variable, form)
    return host, int(port_text)


def _bad(reason: str, variable: str = _VARIABLE, form: str = _FORM) -> ConfigError:
    # The URL itself is not repeated: it may carry the primary's password.
    return ConfigError(f"{variable} {reason} (expected {form})")


_bad_url = _bad


#: What IMUNBAN_REDIS_URL and IMUNBAN_BROKER_URL look like without Sentinel or Cluster.
_PLAIN_FORM = "redis://[[user]:password@]host[:port][/DB][?option=value...], rediss://... or unix:///path"
#: Options a plain URL may carry: redis-py's own URL options and the keyword arguments of a connection.
_URL_OPTIONS = frozenset(URL_QUERY_ARGUMENT_PARSERS) | frozenset(
    name for name in inspect.signature(redis.Redis.__init__).parameters if name not in ("self", "host", "port")
)


def check_plain_url(url: str, *, variable: str = _VARIABLE) -> None:
    """Refuse a ``redis://``, ``rediss://`` or ``unix://`` URL that redis-py would read otherwise or refuse late.

    redis-py takes ``/1x`` as database 0, and a bad port or option only fails at the first command,
    with a traceback; here each is one ConfigError naming ``variable`` and the problem (never the URL,
    which may carry a password).
    """
    scheme, _, rest = url.partition("://")
    rest, _, query = rest.partition("#")[0].partition("?")
    if scheme == "unix":
        if len(rest) < 2 or not rest.startswith("/"):
            raise _bad("needs the socket's path, e.g. unix:///run/redis/redis.sock", variable, _PLAIN_FORM)
    else:
        netloc, _, path = rest.partition("/")
        _, _, hostport = _credentials(netloc, variable, _PLAIN_FORM)
        if not hostport or hostport.startswith(":"):
            raise _bad("names no host", variable, _PLAIN_FORM)
        if "," in hostport:
            raise _bad("names several hosts (use redis+sentinel:// or redis+cluster://)", variable, _PLAIN_FORM)
        _host_port(hostport, variable=variable, form=_PLAIN_FORM, default_port=6379, what="server")
        if path and not (path.isdigit() and path.isascii()):
            raise _bad(f"database must be a number >= 0 after the host, got {path!r}", variable, _PLAIN_FORM)
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in _URL_OPTIONS:
            raise _bad(f"has an unknown option {name!r}", variable, _PLAIN_FORM)
        parser = cast(Callable[[str], object] | None, URL_QUERY_ARGUMENT_PARSERS.get(name))
        if parser is not None:
            try:
                parser(value)
            except (TypeError, ValueError):
                raise _bad(f"option {name!r} has a bad value {value!r}", variable, _PLAIN_FORM) from None


def url_has_password(url: str) -> bool:
    """Whether ``url`` (plain, ``redis+sentinel://`` or ``redis+cluster://``) carries a password of its own."""
    scheme, _, rest = url.partition("://")
    if scheme == "unix":
        return "password=" in rest.partition("?")[2]
    netloc = rest.partition("/")[0].partition("?")[0]
    credentials, at, _ = netloc.rpartition("@")
    return bool(at) and bool(credentials.partition(":")[2])
