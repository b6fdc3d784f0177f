"""The apps (SDKAppIDs) one deployment serves: ``IMUNBAN_APPS_FILE``, or one app named ``default``.

The apps file is TOML (stdlib ``tomllib``), one table per app::

    [apps.cn]
    sdkappid = 1400000001
    region = "china"                  # or base_url = "https://..."; exactly one of the two
    identifier = "administrator"      # the default
    secret_key_file = "/run/secrets/cn_key"   # or secret_key = "..."; exactly one of the two
    rate_limit = 190                  # calls/s for this app, the default; at most 200

Without the file, the single-app variables (``IMUNBAN_SDKAPPID``, ...) define one app named
``default``, so existing deployments keep working. Every mistake is a
:class:`~imunban.errors.ConfigError` naming the file, the app and the field. Secret keys are held as
:class:`~imunban.settings.Secret` and never appear in a ``repr``, a log line or an error message.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imunban.errors import ConfigError, ValidationError
from imunban.keys import DEFAULT_APP, Keys
from imunban.settings import API_LIMIT_PER_S, PREFIX, REGIONS, Secret, Settings, read_secret_file

#: An app name: a letter, then letters, digits, ``_`` or ``-`` (it goes into keys, metric labels and URLs).
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
#: Every field an app table may hold.
FIELDS = ("sdkappid", "region", "base_url", "identifier", "secret_key", "secret_key_file", "rate_limit")
#: The request field (JSON Lines, Python, Celery) and CLI option that name an app.
APP_FIELD = "app"
_VARIABLE = PREFIX + "APPS_FILE"


@dataclass(frozen=True)
class AppConfig:
    """One app: its name and everything that differs between apps. ``secret_key`` hides itself."""

    name: str
    sdkappid: int | None
    identifier: str = Settings.identifier
    secret_key: Secret | None = field(default=None, repr=False)
    region: str | None = None
    base_url: str | None = None
    rate_limit_per_s: float = Settings.rate_limit_per_s

    def settings(self, base: Settings) -> Settings:
        """``base`` with this app's credentials, API address and rate limit (what ApiClient and the limiter read)."""
        return dataclasses.replace(
            base,
            sdkappid=self.sdkappid,
            identifier=self.identifier,
            secret_key=self.secret_key,
            region=self.region,
            base_url=self.base_url,
            rate_limit_per_s=self.rate_limit_per_s,
        )

    def keys(self, prefix: str) -> Keys:
        """This app's Redis keys under the deployment's ``IMUNBAN_KEY_PREFIX``."""
        return Keys(prefix, self.name)


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


def load_apps(settings: Settings) -> Apps:
    """The apps of ``settings``: its apps file, or the single-app variables as app ``default``."""
    if settings.apps_file is None:
        return Apps([single_app(settings)])
    return Apps(parse_apps_file(Path(settings.apps_file)))


def single_app(settings: Settings) -> AppConfig:
    """App ``default`` from the single-app variables (credentials may be missing: checked where needed)."""
    return AppConfig(
        DEFAULT_APP,
        settings.sdkappid,
        settings.identifier,
        settings.secret_key,
        settings.region,
        settings.base_url,
        settings.rate_limit_per_s,
    )


def parse_apps_file(path: Path) -> list[AppConfig]:
    """Read and check the apps file; ConfigError naming the file, the app and the field."""
    try:
        with path.open("rb") as handle:
            doc = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{_VARIABLE}: cannot read {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{_VARIABLE}: {str(path)!r} is not valid TOML: {exc}") from None
    return parse_apps(doc, where=f"{_VARIABLE} {str(path)!r}", base_dir=path.parent)


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
        app = _parse_app(name, table, f"{where}: app {name!r}", base_dir)
        assert app.sdkappid is not None  # _parse_app requires it
        if app.sdkappid in owner:
            raise ConfigError(
                f"{where}: apps {owner[app.sdkappid]!r} and {name!r} have the same sdkappid {app.sdkappid} "
                "(one app per SDKAppID: they would share one rate limit)"
            )
        owner[app.sdkappid] = name
        apps.append(app)
    return apps


def _parse_app(name: str, table: Mapping[str, Any], where: str, base_dir: Path | None) -> AppConfig:
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
    if base_url is not None and (not isinstance(base_url, str) or not base_url.startswith(("http://", "https://"))):
        raise ConfigError(f"{where}: field 'base_url' must be a string starting with http:// or https://")
    identifier = table.get("identifier", Settings.identifier)
    if (
        not isinstance(identifier, str)
        or not identifier
        or len(identifier.encode()) > 32
        or not identifier.isascii()
        or not identifier.isprintable()
        or " " in identifier
    ):
        raise ConfigError(f"{where}: field 'identifier' must be printable ASCII without spaces, at most 32 bytes")
    rate = table.get("rate_limit", Settings.rate_limit_per_s)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not (0 < rate <= API_LIMIT_PER_S):
        raise ConfigError(f"{where}: field 'rate_limit' must be a number > 0 and <= {API_LIMIT_PER_S:g}")
    if not math.isfinite(rate):
        raise ConfigError(f"{where}: field 'rate_limit' must be finite")
    return AppConfig(
        name,
        sdkappid,
        identifier,
        _secret(table, where, base_dir),
        None if region is None else region.lower(),
        None if base_url is None else base_url.rstrip("/"),
        float(rate),
    )


def _secret(table: Mapping[str, Any], where: str, base_dir: Path | None) -> Secret:
    inline, path = table.get("secret_key"), table.get("secret_key_file")
    if (inline is None) == (path is None):
        raise ConfigError(f"{where}: set exactly one of the fields 'secret_key' and 'secret_key_file'")
    if inline is not None:
        if not isinstance(inline, str) or not inline.strip():
            raise ConfigError(f"{where}: field 'secret_key' must be a non-empty string")
        return Secret(inline.strip())
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{where}: field 'secret_key_file' must be a path")
    file = Path(path)
    if base_dir is not None and not file.is_absolute():
        file = base_dir / file  # relative to the apps file, not to wherever the worker was started
    return Secret(read_secret_file(file, f"{where}: field 'secret_key_file'"))
