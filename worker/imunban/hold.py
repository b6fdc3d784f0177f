"""The hold: after a configuration error, delivery stops for the whole app until a probe succeeds.

Nothing is dead-lettered while held. One caller at a time probes the API with a real batch, with
exponential backoff between probes (at least 60 s after 70050, as the API asks); a successful
probe clears the hold and delivery resumes by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis

from imunban.connection import translated
from imunban.keys import Keys
from imunban.scripts import register, script_keys

PROBE_BASE_MS = 1_000
PROBE_CAP_MS = 60_000
#: 70050: "too many failed signature checks, retry after 1 minute".
MIN_PROBE_MS_BY_CODE = {70050: 60_000}
#: Distinct groups answering 10007 within this window make 10007 a global error.
EVIDENCE_WINDOW_MS = 60_000
EVIDENCE_GROUPS = 3


@dataclass(frozen=True)
class HoldState:
    """A hold as shown to operators."""

    code: int
    info: str
    since_ms: int
    next_probe_ms: int
    probes: int

    def as_dict(self) -> dict[str, int | str]:
        return {
            "code": self.code,
            "info": self.info,
            "since_ms": self.since_ms,
            "next_probe_ms": self.next_probe_ms,
            "probes": self.probes,
        }


class Hold:
    """Set, read, probe and release the app-wide hold."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._set = register(client, "hold_set")
        self._probe = register(client, "hold_probe")
        self._evidence = register(client, "evidence_10007")

    def set(self, code: int, info: str) -> None:
        """Hold delivery (or extend the hold) because of ``code``."""
        min_probe_ms = MIN_PROBE_MS_BY_CODE.get(code, 0)
        with translated("hold"):
            self._set(keys=script_keys(self.keys, "hold_set"), args=[code, info, PROBE_BASE_MS, min_probe_ms])

    def get(self) -> HoldState | None:
        with translated("hold"):
            raw = cast(dict[str, str], self.client.hgetall(self.keys.hold))
        if not raw:
            return None
        return HoldState(
            code=int(raw.get("code", 0)),
            info=raw.get("info", ""),
            since_ms=int(raw.get("since_ms", 0)),
            next_probe_ms=int(raw.get("next_probe_ms", 0)),
            probes=int(raw.get("probes", 0)),
        )

    def active(self) -> bool:
        """True while delivery is held (one EXISTS: cheap enough to ask before every call)."""
        with translated("hold"):
            return bool(self.client.exists(self.keys.hold))

    def try_probe(self) -> bool:
        """True if the caller holds this probe turn (there is a hold and its backoff has passed)."""
        with translated("hold"):
            return int(self._probe(keys=script_keys(self.keys, "hold_probe"), args=[PROBE_BASE_MS, PROBE_CAP_MS])) == 1

    def release(self) -> None:
        with translated("hold"):
            self.client.delete(self.keys.hold)

    def is_global_10007(self, group_id: str) -> bool:
        """Record a 10007 from ``group_id``; True once several groups said it (a global cause)."""
        with translated("hold"):
            groups = int(
                self._evidence(keys=script_keys(self.keys, "evidence_10007"), args=[group_id, EVIDENCE_WINDOW_MS])
            )
        return groups >= EVIDENCE_GROUPS
