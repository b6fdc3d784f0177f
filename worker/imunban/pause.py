"""An operator's pause: delivery of one app stops until someone resumes it; its backlog is left as it is.

A pause is a hold that no probe lifts (``Keys.pause``, beside ``Keys.hold``): the claim, dispatch and
limiter scripts refuse while it is there, probes included, and the pump neither dispatches nor probes.
Requests keep arriving, being promoted when due and being reaped; nothing is dead-lettered. Pausing
and resuming each write their audit entry into the outcome stream in the same script (``pause.lua``,
``resume.lua``), whoever does it: the console (its role and address) or the command line (``cli`` and
the OS user). Resuming wakes a pump, so delivery restarts at once, and keeps the ended pause in the
hold history: time paused, like time held, does not count toward a request's maximum age.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis

from imunban.connection import translated
from imunban.errors import ValidationError
from imunban.hold import HOLD_HISTORY_MAX
from imunban.keys import Keys
from imunban.scripts import register, script_keys

#: The longest pause reason kept (it is shown on every console page and in every status).
MAX_REASON_CHARS = 200


@dataclass(frozen=True)
class Actor:
    """Who acts, as the audit entry records it: the console's role, how it signed in and its address, or
    ``cli``/``cli``/``user@host`` for the command line."""

    role: str
    via: str
    client: str = ""

    def as_argv(self) -> list[str]:
        return [self.role, self.via, self.client]

    def text(self) -> str:
        """``operator (session) 127.0.0.1``, ``cli alice@host``: who acted, in a few words."""
        parts = [self.role if self.via in ("", self.role) else f"{self.role} ({self.via})"]
        if self.client:
            parts.append(self.client)
        return " ".join(parts)


@dataclass(frozen=True)
class PauseState:
    """A pause as operators see it."""

    reason: str
    since_ms: int
    role: str = ""
    via: str = ""
    client: str = ""

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> PauseState | None:
        """The pause a ``Keys.pause`` HGETALL answered (None for an empty hash: not paused)."""
        if not raw:
            return None
        return cls(
            reason=raw.get("reason", ""),
            since_ms=int(raw.get("since_ms") or 0),
            role=raw.get("role", ""),
            via=raw.get("via", ""),
            client=raw.get("client", ""),
        )

    @property
    def by(self) -> str:
        """Who paused, in a few words (``operator (session) 127.0.0.1``, ``cli alice@host``)."""
        return Actor(self.role, self.via, self.client).text()

    def as_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "since_ms": self.since_ms,
            "role": self.role,
            "via": self.via,
            "client": self.client,
            "by": self.by,
        }


@dataclass(frozen=True)
class Resumed:
    """The pause a resume ended."""

    since_ms: int
    reason: str
    end_ms: int


def validate_reason(reason: object, field: str = "reason") -> str:
    """A pause's reason: required, printable text of at most MAX_REASON_CHARS; an error names ``field``."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError(field, "say why delivery is paused (it is shown to every operator)")
    text = " ".join(reason.split())
    if len(text) > MAX_REASON_CHARS:
        raise ValidationError(field, f"at most {MAX_REASON_CHARS} characters, got {len(text)}")
    if not text.isprintable():
        raise ValidationError(field, "must be printable text")
    return text


class Pause:
    """Pause, resume and read one app's operator pause."""

    def __init__(self, client: redis.Redis, keys: Keys, *, outcome_maxlen: int = 100_000) -> None:
        self.client = client
        self.keys = keys
        self.outcome_maxlen = outcome_maxlen
        self._pause = register(client, "pause")
        self._resume = register(client, "resume")

    def pause(self, reason: str, actor: Actor) -> bool:
        """Stop delivery of the app (audited); True when newly paused, False when it was (the reason is replaced)."""
        text = validate_reason(reason)
        with translated("pause"):
            raw = self._pause(keys=script_keys(self.keys, "pause"), args=[text, *actor.as_argv(), self.outcome_maxlen])
        return bool(int(raw[0]))

    def resume(self, actor: Actor) -> Resumed | None:
        """End the pause, wake a pump (audited); the pause that ended, None when delivery was not paused."""
        with translated("resume"):
            raw = self._resume(
                keys=script_keys(self.keys, "resume"),
                args=[*actor.as_argv(), self.outcome_maxlen, HOLD_HISTORY_MAX],
            )
        if not raw:
            return None
        return Resumed(int(raw[0]), str(raw[1]), int(raw[2]))

    def get(self) -> PauseState | None:
        with translated("pause"):
            return PauseState.from_hash(cast(dict[str, str], self.client.hgetall(self.keys.pause)))

    def active(self) -> bool:
        """True while paused (one EXISTS: the pump asks every tick)."""
        with translated("pause"):
            return bool(self.client.exists(self.keys.pause))
