"""The apps (SDKAppIDs) one deployment serves: what differs between them, and the apps file.

The apps file (``IMUNBAN_APPS_FILE``) is TOML (stdlib ``tomllib``), one table per app::

    [apps.cn]
    sdkappid = 1400000001
    region = "china"                  # or base_url = "https://..."; exactly one of the two
    identifier = "administrator"      # the default
    secret_key_file = "/run/secrets/cn_key"   # or secret_key = "..."; exactly one of the two
    rate_limit = 190                  # calls/s for this app, the default; at most 200

Without the file, the single-app variables (``IMUNBAN_SDKAPPID``, ...) define one app named
``default`` (read with the other variables by :meth:`imunban.settings.Settings.from_env`). Every
mistake is a :class:`~imunban.errors.ConfigError` naming the file, the app and the field.

Secrets are read on demand: a key file is opened only by :meth:`AppConfig.credentials`, which only
code that signs API calls asks for (a worker, the simulator). ``status``, ``enqueue``, the console
and the other operator commands work with an apps file whose key files they cannot read.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from imunban.errors import ConfigError, ValidationError
from imunban.keys import Keys
from imunban.secret import Secret, read_secret_file

#: Every variable imunban reads starts with this.
PREFIX = "IMUNBAN_"

#: Region name -> (primary domain, backup domain). The backup is used on DNS/connection failure only.
REGIONS: dict[str, tuple[str, str]] = {
    "china": ("console.tim.qq.com", "adminapi.my-imcloud.com"),
    "singapore": ("adminapisgp.im.qcloud.com", "adminapisgp.my-imcloud.com"),
    "seoul": ("adminapikr.im.qcloud.com", "adminapikr.my-imcloud.com"),
    "tokyo": ("adminapijpn.im.qcloud.com", "adminapijpn.my-imcloud.com"),
    "frankfurt": ("adminapiger.im.qcloud.com", "adminapiger.my-imcloud.com"),
    "india": ("adminapiind.im.qcloud.com", "adminapiind.my-imcloud.com"),
    "siliconvalley": ("adminapiusa.im.qcloud.com", "adminapiusa.my-imcloud.com"),
    "jakarta": ("adminapiidn.im.qcloud.com", "adminapiidn.my-imcloud.com"),
    "riyadh": ("adminapiksa.im.qcloud.com", "adminapiksa.my-imcloud.com"),
}

#: The API's documented limit for unban_group_member; it cannot be bought up.
API_LIMIT_PER_S = 200.0
#: An app's rate limit unless told otherwise: below the API's limit, with headroom.
DEFAULT_RATE_LIMIT_PER_S = 190.0
#: The admin account that signs calls unless told otherwise.
DEFAULT_IDENTIFIER = "administrator"

#: An app name: a letter, then letters, digits, ``_`` or ``-`` (it goes into keys, metric labels and URLs).
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
#: Every field an app table may hold.
FIELDS = ("sdkappid", "region", "base_url", "identifier", "secret_key", "secret_key_file", "rate_limit")
#: The request field (JSON Lines, Python, Celery) and CLI option that name an app.
APP_FIELD = "app"
_VARIABLE = PREFIX + "APPS_FILE"
#: Where each field of app ``default`` comes from when there is no apps file.
_ENV_NAMES = {
    "sdkappid": PREFIX + "SDKAPPID",
    "identifier": PREFIX + "IDENTIFIER",
    "secret_key": f"{PREFIX}SECRET_KEY or {PREFIX}SECRET_KEY_FILE",
    "secret_key_file": PREFIX + "SECRET_KEY_FILE",
    "region": PREFIX + "REGION",
    "base_url": PREFIX + "BASE_URL",
    "rate_limit": PREFIX + "RATE_LIMIT",
}


class Credentials(NamedTuple):
    """What signs an app's API calls; only :meth:`AppConfig.credentials` makes one."""

    sdkappid: int
    identifier: str
    secret: Secret


@dataclass(frozen=True)
class AppConfig:
    """One app: its name and everything that differs between apps. Nothing secret shows in ``repr``.

    ``origin`` says where it was defined, for error messages: empty for the ``IMUNBAN_*`` variables,
    else the apps file (``IMUNBAN_APPS_FILE '/etc/imunban/apps.toml'``).
    """

    name: str
    sdkappid: int | None = None
    identifier: str = DEFAULT_IDENTIFIER
    secret_key: Secret | None = field(default=None, repr=False)
    #: A file holding the key, read by :meth:`credentials` (never earlier).
    secret_key_file: Path | None = None
    region: str | None = None
    base_url: str | None = None
    rate_limit_per_s: float = DEFAULT_RATE_LIMIT_PER_S
    origin: str = field(default="", compare=False)

    def where(self, name: str) -> str:
        """How an error names field ``name`` of this app: the variable, or the file, app and field."""
        if not self.origin:
            return _ENV_NAMES[name]
        return f"{self.origin}: app {self.name!r}: field {name!r}"

    def keys(self, prefix: str) -> Keys:
        """This app's Redis keys under the deployment's ``IMUNBAN_KEY_PREFIX``."""
        return Keys(prefix, self.name)

    def credentials(self) -> Credentials:
        """The SDKAppID, admin and secret key, reading a key file now; ConfigError naming what is missing."""
        if self.sdkappid is None:
            raise ConfigError(f"{self.where('sdkappid')} is required (the app's SDKAppID, a positive integer)")
        if self.secret_key is not None:
            return Credentials(self.sdkappid, self.identifier, self.secret_key)
        if self.secret_key_file is None:
            raise ConfigError(f"{self.where('secret_key')} is required (the app's secret key)")
        return Credentials(
            self.sdkappid,
            self.identifier,
            Secret(read_secret_file(self.secret_key_file, self.where("secret_key_file"))),
        )

    def api_urls(self) -> tuple[str, ...]:
        """Base URLs to try in order: the override alone, or the region's primary then backup."""
        if self.base_url is not None:
            return (self.base_url,)
        if self.region is None:
            if self.origin:
                raise ConfigError(f"{self.origin}: app {self.name!r}: set the field 'region' or 'base_url'")
            raise ConfigError(f"set {PREFIX}REGION (one of {', '.join(sorted(REGIONS))}) or {PREFIX}BASE_URL")
        primary, backup = REGIONS[self.region]
        return (f"https://{primary}", f"https://{backup}")


class Apps:
    """The apps of one deployment, by name, in the file's order; resolves the ``app`` of a request."""

    def __init__(self, apps: list[AppConfig]) -> None:
        if not apps:
            raise ConfigError(f"{_VARIABLE}: at least one [apps.NAME] table is required")
        self.by_name: dict[str, AppConfig] = {app.name: app for app in apps}

    def __iter__(self) -> Iterator[AppConfig]:
        return iter(self.by_name.values())

    def __len__(self) -> int:
        return len(self.by_name)

    @property
    def names(self) -> list[str]:
        return list(self.by_name)

    def require_delivery(self) -> None:
        """Fail now, naming the app, the file and the field, if any app cannot sign calls (a worker's start)."""
        problems = self.delivery_problems()
        if len(problems) == 1:
            raise ConfigError(problems[0])
        if problems:
            raise ConfigError(f"{len(problems)} settings are wrong:" + "".join(f"\n  {p}" for p in problems))

    def delivery_problems(self) -> list[str]:
        """Why each app cannot sign or send calls, every missing or bad field of each (empty: all can)."""
        problems: list[str] = []
        for app in self:
            try:
                app.credentials()
            except ConfigError as exc:
                problems.append(str(exc))
                if app.sdkappid is None and app.secret_key is None and app.secret_key_file is None:
                    # credentials() stops at the SDKAppID: the key is missing as well.
                    problems.append(f"{app.where('secret_key')} is required (the app's secret key)")
            try:
                app.api_urls()
            except ConfigError as exc:
                problems.append(str(exc))
        return problems

    def resolve(self, name: object) -> AppConfig:
        """The app a request names; with one app it may name none. ValidationError(``app``) otherwise."""
        if name is None or name == "":
            if len(self.by_name) == 1:
                return next(iter(self.by_name.values()))
            raise ValidationError(APP_FIELD, f"is required: this deployment serves several apps ({self._list()})")
        if not isinstance(name, str):
            raise ValidationError(APP_FIELD, f"must be a string, got {type(name).__name__}")
        app = self.by_name.get(name)
        if app is None:
            raise ValidationError(APP_FIELD, f"unknown app {name[:64]!r} (known: {self._list()})")
        return app

    def _list(self) -> str:
        return ", ".join(self.by_name)


def parse_apps_file(path: Path) -> Apps:
    """Read and check the apps file; ConfigError naming the file, the app and the field."""
    try:
        with path.open("rb") as handle:
            doc = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{_VARIABLE}: cannot read {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{_VARIABLE}: {str(path)!r} is not valid TOML: {exc}") from None
    return Apps(parse_apps(doc, where=f"{_VARIABLE} {str(path)!r}", base_dir=path.parent))


def parse_apps(doc: Mapping[str, Any], *, where: str = _VARIABLE, base_dir: Path | None = None) -> list[AppConfig]:
    """Check a parsed apps document (``{"apps": {NAME: {...}}}``); ``base_dir`` anchors relative key files."""
    extra = sorted(set(doc) - {"apps"})
    if extra:
        raise ConfigError(f"{where}: unknown top-level key {extra[0]!r}; apps go in [apps.NAME] tables")
    tables = doc.get("apps")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"{where}: no apps; add one [apps.NAME] table per app")
    apps: list[AppConfig] = []
    owner: dict[int, str] = {}
    for name, table in tables.items():
        if not NAME_RE.fullmatch(name):
            raise ConfigError(
                f"{where}: app name {name[:64]!r} is not a safe identifier "
                "(a letter, then up to 31 letters, digits, '_' or '-')"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [apps.{name}] must be a table of fields")
        app = _parse_app(name, table, where, base_dir)
        assert app.sdkappid is not None  # _parse_app requires it
        if app.sdkappid in owner:
            raise ConfigError(
                f"{where}: apps {owner[app.sdkappid]!r} and {name!r} have the same sdkappid {app.sdkappid} "
                "(one app per SDKAppID: they would share one rate limit)"
            )
        owner[app.sdkappid] = name
        apps.append(app)
    return apps


def _parse_app(name: str, table: Mapping[str, Any], origin: str, base_dir: Path | None) -> AppConfig:
    where = f"{origin}: app {name!r}"
    unknown = sorted(set(table) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(FIELDS)})")
    sdkappid = table.get("sdkappid")
    if sdkappid is None:
        raise ConfigError(f"{where}: field 'sdkappid' is required (the app's SDKAppID, a positive integer)")
    if isinstance(sdkappid, bool) or not isinstance(sdkappid, int) or sdkappid < 1:
        raise ConfigError(f"{where}: field 'sdkappid' must be a positive integer")
    region, base_url = table.get("region"), table.get("base_url")
    if (region is None) == (base_url is None):
        raise ConfigError(f"{where}: set exactly one of the fields 'region' and 'base_url'")
    if region is not None and (not isinstance(region, str) or region.lower() not in REGIONS):
        raise ConfigError(f"{where}: field 'region' must be one of {', '.join(sorted(REGIONS))}")
    if base_url is not None and not valid_base_url(base_url):
        raise ConfigError(f"{where}: field 'base_url' must be an http:// or https:// URL with a host")
    identifier = table.get("identifier", DEFAULT_IDENTIFIER)
    if not isinstance(identifier, str) or not valid_identifier(identifier):
        raise ConfigError(f"{where}: field 'identifier' must be printable ASCII without spaces, at most 32 bytes")
    rate = table.get("rate_limit", DEFAULT_RATE_LIMIT_PER_S)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not (0 < rate <= API_LIMIT_PER_S):
        raise ConfigError(f"{where}: field 'rate_limit' must be a number > 0 and <= {API_LIMIT_PER_S:g}")
    if not math.isfinite(rate):
        raise ConfigError(f"{where}: field 'rate_limit' must be finite")
    inline, key_file = _secret(table, where, base_dir)
    return AppConfig(
        name,
        sdkappid,
        identifier,
        inline,
        key_file,
        None if region is None else region.lower(),
        None if base_url is None else base_url.rstrip("/"),
        float(rate),
        origin,
    )


def valid_identifier(identifier: str) -> bool:
    """An admin account as the API takes it: printable ASCII without spaces, 1 to 32 bytes."""
    return (
        bool(identifier)
        and len(identifier.encode()) <= 32
        and identifier.isascii()
        and identifier.isprintable()
        and " " not in identifier
    )


def valid_base_url(url: object) -> bool:
    """An http(s) URL with a host (``http://`` alone would fail at the first call, deep in the HTTP library)."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return False
    rest = url.split("://", 1)[1]
    host = rest.split("/", 1)[0]
    return bool(host) and host.isascii() and host.isprintable() and " " not in host


def _secret(table: Mapping[str, Any], where: str, base_dir: Path | None) -> tuple[Secret | None, Path | None]:
    """The inline key, or the key file (not read here: see :meth:`AppConfig.credentials`)."""
    inline, path = table.get("secret_key"), table.get("secret_key_file")
    if (inline is None) == (path is None):
        raise ConfigError(f"{where}: set exactly one of the fields 'secret_key' and 'secret_key_file'")
    if inline is not None:
        if not isinstance(inline, str) or not inline.strip():
            raise ConfigError(f"{where}: field 'secret_key' must be a non-empty string")
        return Secret(inline.strip()), None
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{where}: field 'secret_key_file' must be a path")
    file = Path(path)
    if base_dir is not None and not file.is_absolute():
        file = base_dir / file  # relative to the apps file, not to wherever the worker was started
    return None, file
