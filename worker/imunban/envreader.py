"""Reading ``IMUNBAN_*`` variables: typed accessors that name the full variable in every error and collect
every bad value of one run (:class:`EnvReader`), for :meth:`imunban.settings.Settings.from_env`."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from imunban.apps import (
    API_LIMIT_PER_S,
    DEFAULT_IDENTIFIER,
    DEFAULT_RATE_LIMIT_PER_S,
    PREFIX,
    REGIONS,
    AppConfig,
    valid_base_url,
    valid_identifier,
)
from imunban.errors import ConfigError
from imunban.keys import DEFAULT_APP
from imunban.redis_url import url_has_password
from imunban.secret import Secret, read_secret_file


def check_root_path(text: str) -> str:
    """A path prefix such as ``/imunban`` or ``/ops/imunban`` ('' for ``/``); ValueError says what is wrong.

    Letters, digits and ``-._~/`` only (it goes into every link and form of the console unescaped).
    """
    path = text.strip().rstrip("/")
    if not text.strip().startswith("/"):
        raise ValueError(f"must start with '/', got {text!r}")
    if any(not (c.isascii() and (c.isalnum() or c in "-._~/")) for c in path):
        raise ValueError(f"letters, digits and -._~/ only, got {text!r}")
    if "//" in path or any(part in (".", "..") for part in path.split("/")):
        raise ValueError(f"no empty, '.' or '..' segment, got {text!r}")
    return path


class EnvReader:
    """Typed accessors over a mapping; every error names the full variable.

    A bad value is recorded (:meth:`fail`) and its default used, so that one run names every bad
    variable (:meth:`raise_errors`), not the first alone.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.errors: list[str] = []
        #: Every variable asked for (the known ones: from_env reads each, set or not).
        self.read: set[str] = set()

    def fail(self, message: str) -> None:
        self.errors.append(message)

    @contextmanager
    def collecting(self) -> Iterator[None]:
        """Record a ConfigError raised inside (by a parser of another module) instead of raising it."""
        try:
            yield
        except ConfigError as exc:
            self.fail(str(exc))

    def raise_errors(self) -> None:
        """One ConfigError naming every bad variable (the message alone when there is one)."""
        if len(self.errors) == 1:
            raise ConfigError(self.errors[0])
        if self.errors:
            raise ConfigError(f"{len(self.errors)} settings are wrong:" + "".join(f"\n  {e}" for e in self.errors))

    def text(self, name: str) -> str | None:
        self.read.add(PREFIX + name)
        raw = self.environ.get(PREFIX + name)
        if raw is None or raw.strip() == "":
            return None
        return raw.strip()

    def root_path(self, name: str) -> str:
        """A URL path prefix (see :func:`check_root_path`), '' when unset."""
        raw = self.text(name)
        try:
            return "" if raw is None else check_root_path(raw)
        except ValueError as exc:
            raise ConfigError(f"{PREFIX}{name}: {exc}") from None

    def choice(self, name: str, choices: Sequence[str]) -> str | None:
        """One of ``choices`` (case-insensitive, returned lower-case), or None when unset."""
        raw = self.text(name)
        if raw is None:
            return None
        if raw.lower() not in [c.lower() for c in choices]:
            self.fail(f"{PREFIX}{name}={raw!r} is not one of {', '.join(choices)}")
            return None
        return raw.lower()

    def url(self, name: str, schemes: tuple[str, ...]) -> str | None:
        raw = self.text(name)
        if raw is None:
            return None
        if not raw.startswith(schemes):
            self.fail(f"{PREFIX}{name} must start with {' or '.join(schemes)}")
            return None
        return raw.rstrip("/") if raw.startswith(("http://", "https://")) else raw

    def ascii_name(self, name: str, default: str, *, max_bytes: int) -> str:
        raw = self.text(name) or default
        if len(raw.encode()) > max_bytes or not raw.isascii() or not raw.isprintable() or " " in raw:
            self.fail(f"{PREFIX}{name} must be printable ASCII without spaces, at most {max_bytes} bytes")
            return default
        return raw

    def integer(self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        """An integer in [minimum, maximum], ``default`` when unset."""
        value = self.optional_integer(name, minimum=minimum, maximum=maximum)
        return default if value is None else value

    def optional_integer(self, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
        """An integer in [minimum, maximum], None when unset."""
        raw = self.text(name)
        if raw is None:
            return None
        try:
            value = int(raw, 10)
        except ValueError:
            self.fail(f"{PREFIX}{name} must be an integer, got {raw!r}")
            return None
        if minimum is not None and value < minimum:
            self.fail(f"{PREFIX}{name} must be >= {minimum}, got {value}")
            return None
        if maximum is not None and value > maximum:
            self.fail(f"{PREFIX}{name} must be <= {maximum}, got {value}")
            return None
        return value

    def number(self, name: str, default: float, *, above: float = 0.0, maximum: float = math.inf) -> float:
        """A finite number in (above, maximum]."""
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.fail(f"{PREFIX}{name} must be a number, got {raw!r}")
            return default
        if not (math.isfinite(value) and above < value <= maximum):
            limit = "" if maximum == math.inf else f" and <= {maximum:g}"
            self.fail(f"{PREFIX}{name} must be a finite number > {above:g}{limit}, got {raw!r}")
            return default
        return value

    def single_app(self) -> AppConfig:
        """App ``default`` from the single-app variables; a key file is named here and read when a call is signed."""
        inline, path = self.text("SECRET_KEY"), self.text("SECRET_KEY_FILE")
        if inline is not None and path is not None:
            self.fail(f"set only one of {PREFIX}SECRET_KEY and {PREFIX}SECRET_KEY_FILE")
        identifier = self.text("IDENTIFIER") or DEFAULT_IDENTIFIER
        if not valid_identifier(identifier):
            self.fail(f"{PREFIX}IDENTIFIER must be printable ASCII without spaces, at most 32 bytes")
        base_url = self.text("BASE_URL")
        if base_url is not None and not valid_base_url(base_url):
            self.fail(f"{PREFIX}BASE_URL must be an http:// or https:// URL with a host, got {base_url!r}")
            base_url = None
        return AppConfig(
            DEFAULT_APP,
            sdkappid=self.optional_integer("SDKAPPID", minimum=1),
            identifier=identifier,
            secret_key=None if inline is None else Secret(inline),
            secret_key_file=None if path is None else Path(path),
            region=self.choice("REGION", sorted(REGIONS)),
            base_url=None if base_url is None else base_url.rstrip("/"),
            # The API's own limit is the ceiling: it cannot be bought up.
            rate_limit_per_s=self.number("RATE_LIMIT", DEFAULT_RATE_LIMIT_PER_S, maximum=API_LIMIT_PER_S),
        )

    def token(self, name: str) -> Secret | None:
        """A token given inline (NAME) or in a file (NAME_FILE, e.g. a compose secret), at least 16 characters."""
        inline, path = self.text(name), self.text(name + "_FILE")
        if inline is not None and path is not None:
            self.fail(f"set only one of {PREFIX}{name} and {PREFIX}{name}_FILE")
            return None
        if path is not None:
            try:
                inline = read_secret_file(
                    Path(path), f"{PREFIX}{name}_FILE", empty_ok=True
                )  # the length check says why
            except ConfigError as exc:
                self.fail(str(exc))
                return None
            name += "_FILE"
        if inline is not None and (len(inline) < 16 or not inline.isascii() or not inline.isprintable()):
            self.fail(f"{PREFIX}{name}: the token must be at least 16 printable ASCII characters")
            return None
        return None if inline is None else Secret(inline)

    def password_files(
        self, redis_url: str | None, broker_url: str | None, sentinel_password: str | None
    ) -> tuple[Path | None, Path | None]:
        """IMUNBAN_REDIS_PASSWORD_FILE and IMUNBAN_SENTINEL_PASSWORD_FILE: named here, read when connecting.

        A password in a file keeps it out of every environment and command line; it may not also be given
        another way (one of two would be silently ignored).
        """
        redis_file, sentinel_file = self.text("REDIS_PASSWORD_FILE"), self.text("SENTINEL_PASSWORD_FILE")
        if redis_file is not None:
            for name, url in (("REDIS_URL", redis_url), ("BROKER_URL", broker_url)):
                if url is not None and url_has_password(url):
                    self.fail(
                        f"{PREFIX}REDIS_PASSWORD_FILE is set and {PREFIX}{name} carries a password too: set only one"
                    )
        if sentinel_file is not None and sentinel_password is not None:
            self.fail(f"set only one of {PREFIX}SENTINEL_PASSWORD and {PREFIX}SENTINEL_PASSWORD_FILE")
        return (
            None if redis_file is None else Path(redis_file),
            None if sentinel_file is None else Path(sentinel_file),
        )

    def web_tokens(self) -> dict[str, Secret | None]:
        viewer, operator = self.token("WEB_VIEWER_TOKEN"), self.token("WEB_OPERATOR_TOKEN")
        if viewer is not None and viewer == operator:
            # One token for both roles would let every viewer act.
            self.fail(f"{PREFIX}WEB_VIEWER_TOKEN and {PREFIX}WEB_OPERATOR_TOKEN must differ")
        return {"web_viewer_token": viewer, "web_operator_token": operator}
