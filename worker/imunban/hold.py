"""The hold: after a configuration error, delivery stops for the whole app until a probe succeeds.

Nothing is dead-lettered while held. One caller at a time probes the API with a real batch, with
exponential backoff between probes (at least 60 s after 70050, as the API asks); a successful
probe clears the hold and delivery resumes by itself. Probes rotate across the waiting groups (the
one probed longest ago goes next), so a group that keeps answering a transient or unknown code
cannot stand in front of every probe. Ended holds are kept in a short history: time on hold does
not count toward a request's maximum age.

10007 is "feature switch off" (global) or "this group's type is unsupported" (one group): it is
per-group only when another group of the app got a delivered answer within
:data:`SWITCH_ON_EVIDENCE_MS`; otherwise the app holds, however few groups are active.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import redis

from imunban.connection import translated
from imunban.keys import Keys
from imunban.scripts import register, script_keys
from imunban.settings import Settings

#: Probe backoff defaults: one home, the settings (IMUNBAN_PROBE_BASE_MS, IMUNBAN_PROBE_CAP_MS).
PROBE_BASE_MS = Settings.probe_base_ms
PROBE_CAP_MS = Settings.probe_cap_ms
#: 70050: "too many failed signature checks, retry after 1 minute".
MIN_PROBE_MS_BY_CODE = {70050: 60_000}
#: A probe chooses among this many of the first waiting groups (the one probed longest ago).
PROBE_SCAN_GROUPS = 16
#: A delivered answer to another group within this window shows the app's switch is on, so a 10007
#: is about its own group. Long enough to span quiet spells of a busy app, short enough that a
#: switch turned off is recognised as global within minutes (probes then lift the hold on success).
SWITCH_ON_EVIDENCE_MS = 600_000
#: Ended holds kept in the history (``Keys.holds``).
HOLD_HISTORY_MAX = 100


@dataclass(frozen=True)
class HoldRecord:
    """One ended hold, as kept in the history (``Keys.holds``)."""

    since_ms: int
    end_ms: int
    code: int
    info: str
    probes: int

    @classmethod
    def from_json(cls, text: str) -> HoldRecord:
        data = json.loads(text)
        return cls(
            since_ms=int(data["since_ms"]),
            end_ms=int(data["end_ms"]),
            code=int(data.get("code") or 0),
            info=str(data.get("info") or ""),
            probes=int(data.get("probes") or 0),
        )


@dataclass(frozen=True)
class HoldState:
    """A hold as shown to operators."""

    code: int
    info: str
    since_ms: int
    next_probe_ms: int
    probes: int
    #: The last probe (or the answer that set the hold), 0 if not recorded; the shortest time between probes.
    last_probe_ms: int = 0
    min_probe_ms: int = 0

    @property
    def probe_allowed_ms(self) -> int:
        """The earliest a probe may go, "probe now" or not: the last probe plus the minimum interval (0: any time).

        The twin of _lib.lua's probe_floor: a hold written before the last probe was recorded keeps its plan.
        """
        if self.min_probe_ms <= 0:
            return 0
        return self.last_probe_ms + self.min_probe_ms if self.last_probe_ms else self.next_probe_ms

    def as_dict(self) -> dict[str, int | str]:
        return {
            "code": self.code,
            "info": self.info,
            "since_ms": self.since_ms,
            "next_probe_ms": self.next_probe_ms,
            "probes": self.probes,
            "probe_allowed_ms": self.probe_allowed_ms,
        }


class Hold:
    """Set, read, probe and release the app-wide hold."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        probe_base_ms: int = PROBE_BASE_MS,
        probe_cap_ms: int = PROBE_CAP_MS,
        switch_on_evidence_ms: int = SWITCH_ON_EVIDENCE_MS,
    ) -> None:
        self.client = client
        self.keys = keys
        self.probe_base_ms = probe_base_ms
        self.probe_cap_ms = probe_cap_ms
        self.switch_on_evidence_ms = switch_on_evidence_ms
        self._set = register(client, "hold_set")
        self._probe = register(client, "hold_probe")
        self._release = register(client, "hold_release")
        self._probe_now = register(client, "probe_now")
        self._evidence = register(client, "evidence_10007")

    def set(self, code: int, info: str) -> None:
        """Hold delivery (or extend the hold) because of ``code``."""
        min_probe_ms = MIN_PROBE_MS_BY_CODE.get(code, 0)
        with translated("hold"):
            self._set(keys=script_keys(self.keys, "hold_set"), args=[code, info, self.probe_base_ms, min_probe_ms])

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
            last_probe_ms=int(raw.get("last_probe_ms", 0)),
            min_probe_ms=int(raw.get("min_probe_ms", 0)),
        )

    def active(self) -> bool:
        """True while delivery is held or paused by an operator (one EXISTS: cheap enough to ask before every call)."""
        with translated("hold"):
            return bool(self.client.exists(self.keys.hold, self.keys.pause))

    def try_probe(self, scan: int = PROBE_SCAN_GROUPS) -> str | None:
        """The group to probe if the caller holds this probe turn (held, backoff passed, a group waiting).

        Of the first ``scan`` waiting groups it is the one probed longest ago in this hold.
        """
        with translated("hold"):
            raw = self._probe(
                keys=script_keys(self.keys, "hold_probe"), args=[self.probe_base_ms, self.probe_cap_ms, scan]
            )
        return raw if isinstance(raw, str) else None

    def probe_now(self) -> int | None:
        """An operator's "probe now": the next probe due at once, or when the hold's floor allows (70050: the
        last probe plus 60 s); returns when it is due, None when there is no hold."""
        with translated("hold"):
            due = int(self._probe_now(keys=script_keys(self.keys, "probe_now")))
        return due or None

    def release(self) -> bool:
        """End the hold and add it to the history; False if there was none (released meanwhile)."""
        with translated("hold"):
            return bool(self._release(keys=script_keys(self.keys, "hold_release"), args=[HOLD_HISTORY_MAX]))

    def history(self, since_ms: int = 0) -> list[HoldRecord]:
        """Ended holds (newest last) that ended at or after ``since_ms``; at most HOLD_HISTORY_MAX."""
        with translated("hold"):
            raw = cast(list[str], self.client.zrange(self.keys.holds, since_ms, "+inf", byscore=True))
        return [HoldRecord.from_json(item) for item in raw]

    def intervals_since(self, since_ms: int) -> list[tuple[int, int | None]]:
        """(start, end) of every hold that overlaps [since_ms, now); the current hold's end is None."""
        with translated("hold"):
            pipe = self.client.pipeline(transaction=False)
            pipe.zrange(self.keys.holds, since_ms, "+inf", byscore=True)
            pipe.hget(self.keys.hold, "since_ms")
            ended, current = pipe.execute()
        out: list[tuple[int, int | None]] = []
        for item in ended:
            record = HoldRecord.from_json(item)
            out.append((record.since_ms, record.end_ms))
        if current is not None:
            out.append((int(current), None))
        return out

    def is_per_group_10007(self, group_id: str, give_up: Sequence[str] = ()) -> bool:
        """True when a 10007 from ``group_id`` is about that group: another group was delivered to lately.

        ``give_up`` are members this answer would dead-letter: each also needs a success of another
        group after its own first failure, or the switch is in doubt and the answer is global.
        """
        with translated("hold"):
            return bool(
                self._evidence(
                    keys=script_keys(self.keys, "evidence_10007"),
                    args=[group_id, self.switch_on_evidence_ms, *give_up],
                )
            )
