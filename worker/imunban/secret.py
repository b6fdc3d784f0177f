"""Secrets: a string that never shows itself, and the one reader for every secret given as a file."""

from __future__ import annotations

from pathlib import Path

from imunban.errors import ConfigError


class Secret:
    """A string that refuses to show itself in ``repr``/``str``; call :meth:`reveal` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would be the easiest way to smuggle the key into a Celery message.
        raise TypeError("Secret values are not serialisable")


def read_secret_file(path: Path, label: str, *, empty_ok: bool = False) -> str:
    """The stripped UTF-8 text of a secret file; a ConfigError that starts with ``label`` when it cannot be read.

    One reader for every secret given as a file: IMUNBAN_SECRET_KEY_FILE, an app's ``secret_key_file``,
    the console's token files. Nothing of the file's content ever goes into a message.
    """
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{label}: {str(path)!r} is not UTF-8 text") from None
    if not text and not empty_ok:
        raise ConfigError(f"{label}: {str(path)!r} is empty")
    return text
