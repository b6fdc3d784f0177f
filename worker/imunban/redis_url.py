"""Parse ``redis+sentinel://`` URLs: which sentinels to ask, for which service, with which password.

``redis+sentinel://[[user]:password@]host:port[,host:port...]/SERVICE[/DB]``. The password (and
user) is the primary's and replicas'; the sentinels' own password is ``IMUNBAN_SENTINEL_PASSWORD``.
Pure text handling, so :mod:`imunban.settings` can refuse a malformed URL before anything connects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

from imunban.errors import ConfigError

SENTINEL_SCHEME = "redis+sentinel://"
#: The port a sentinel listens on unless told otherwise.
DEFAULT_SENTINEL_PORT = 26379
_VARIABLE = "IMUNBAN_REDIS_URL"
_FORM = "redis+sentinel://[:password@]host:port[,host:port...]/SERVICE[/DB]"


@dataclass(frozen=True)
class SentinelUrl:
    """What a ``redis+sentinel://`` URL says. ``password`` never shows in ``repr``."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def is_sentinel_url(url: str | None) -> bool:
    return url is not None and url.startswith(SENTINEL_SCHEME)


def parse_sentinel_url(url: str) -> SentinelUrl:
    """The parts of ``url``; ConfigError naming IMUNBAN_REDIS_URL (without the password) if malformed."""
    if not url.startswith(SENTINEL_SCHEME):
        raise _bad(f"must start with {SENTINEL_SCHEME}")
    rest = url[len(SENTINEL_SCHEME) :]
    if "?" in rest or "#" in rest:
        raise _bad("takes no query string or fragment")
    netloc, slash, path = rest.partition("/")
    username, password = None, None
    if "@" in netloc:
        credentials, _, netloc = netloc.rpartition("@")
        user, colon, secret = credentials.partition(":")
        if not colon:
            raise _bad("credentials must be ':password@' or 'user:password@'")
        username, password = unquote(user) or None, unquote(secret) or None
    if not netloc:
        raise _bad("names no sentinel host:port")
    sentinels = tuple(_host_port(part) for part in netloc.split(","))
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


def _host_port(part: str) -> tuple[str, int]:
    if not part:
        raise _bad("has an empty sentinel address (two commas in a row?)")
    if part.startswith("["):  # [IPv6]:port
        host, bracket, tail = part[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise _bad(f"sentinel address {part!r} is not [ipv6]:port")
        port_text = tail[1:] if tail else ""
    else:
        host, _, port_text = part.partition(":")
    if not host:
        raise _bad(f"sentinel address {part!r} has no host")
    if not port_text:
        return host, DEFAULT_SENTINEL_PORT
    if not port_text.isdigit() or not port_text.isascii() or not 1 <= int(port_text) <= 65_535:
        raise _bad(f"sentinel address {part!r}: port must be a number in 1..65535")
    return host, int(port_text)


def _bad(reason: str) -> ConfigError:
    # The URL itself is not repeated: it may carry the primary's password.
    return ConfigError(f"{_VARIABLE} {reason} (expected {_FORM})")
