"""The simulator's logic: request checks, fault injection, rate limit and counters; no sockets here.

:class:`Simulator` answers ``handle(method, target, body)`` the way the real API would (docs/semantics.md#the-api)
and records what happened. :mod:`imunban.sim.server` serves it over HTTP. Keeping the two apart lets
unit tests drive the logic directly and keeps the HTTP handler lean.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import parse_qs

from imunban.api import MAX_MEMBERS, UNBAN_PATH
from imunban.apps import AppConfig
from imunban.classify import describe
from imunban.sim.config import SimConfig, validate_changes
from imunban.usersig import UserSigError, verify_usersig

__all__ = ["AV_CHAT_ROOM", "SimConfig", "SimResponse", "Simulator"]

AV_CHAT_ROOM = "AVChatRoom"

#: Per-second timeline rows kept (older ones are dropped) so a long run cannot grow without bound.
TIMELINE_MAX_S = 7_200

_RANDOM_RE = re.compile(r"[0-9]{1,10}")
_MAX_GROUP_ID_BYTES = 48


@dataclass(frozen=True)
class SimResponse:
    """What to answer, and how long to wait before answering (latency, hang)."""

    status: int
    body: bytes
    content_type: str = "application/json"
    delay_s: float = 0.0


class _Batch(NamedTuple):
    code: int  # 0 = the body is well formed
    info: str
    group_id: str
    members: list[str]


def _json(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _answer(code: int, info: str = "", delay_s: float = 0.0) -> SimResponse:
    if code == 0:
        return SimResponse(200, _OK_BODY, delay_s=delay_s)
    body = {"ActionStatus": "FAIL", "ErrorCode": code, "ErrorInfo": info or describe(code)}
    return SimResponse(200, _json(body), delay_s=delay_s)


_OK_BODY = _json({"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""})


def _parse_batch(body: bytes) -> _Batch:
    """Check the JSON body the way the API does; the code says what is wrong."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _Batch(60003, "HTTP request JSON parse error", "", [])
    if not isinstance(doc, dict):
        return _Batch(10011, "request body is not a JSON object", "", [])
    group_id = doc.get("GroupId")
    if not isinstance(group_id, str) or not group_id:
        return _Batch(10004, "GroupId is missing or empty", "", [])
    if len(group_id.encode()) > _MAX_GROUP_ID_BYTES or not (group_id.isascii() and group_id.isprintable()):
        return _Batch(10015, "invalid GroupId", "", [])
    members = doc.get("Members_Account")
    if not isinstance(members, list):
        return _Batch(10004, "Members_Account is missing or not an array", group_id, [])
    if len(members) > MAX_MEMBERS:
        return _Batch(10005, f"too many accounts: {len(members)} > {MAX_MEMBERS}", group_id, [])
    if not all(isinstance(m, str) for m in members):
        return _Batch(60015, "Members_Account must hold strings", group_id, [])
    if not members or not all(members):
        return _Batch(10004, "Members_Account is empty or holds an empty account", group_id, [])
    return _Batch(0, "", group_id, members)


class _Stats:
    """Counters; mutated only under the simulator's lock."""

    def __init__(self) -> None:
        self.calls = 0
        self.calls_ok = 0
        self.members_unbanned = 0
        self.duplicate_unbans = 0
        self.rate_limited = 0
        self.hangs = 0
        self.max_calls_in_1s = 0
        self.batch_sizes: Counter[int] = Counter()
        self.codes: Counter[int] = Counter()
        self.http_status: Counter[int] = Counter()
        # wall second -> [calls, ok, members, rate_limited]
        self.timeline: dict[int, list[int]] = {}
        self.unbanned: dict[str, set[str]] = {}
        self.first_call_s: float | None = None
        self.last_call_s: float | None = None

    def row(self, now_s: float) -> list[int]:
        second = int(now_s)
        row = self.timeline.get(second)
        if row is None:
            row = self.timeline[second] = [0, 0, 0, 0]
            if len(self.timeline) > TIMELINE_MAX_S:
                del self.timeline[next(iter(self.timeline))]
        return row


class Simulator:
    """A fake unban_group_member endpoint checking signatures with one app's own credentials."""

    def __init__(
        self,
        app: AppConfig,
        config: SimConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        sdkappid, identifier, secret = app.credentials()
        self.sdkappid = sdkappid
        self.admin = identifier
        self._key = secret.reveal()
        self._clock = clock  # wall clock: UserSig expiry and the timeline
        self._monotonic = monotonic  # the rate-limit window
        self._lock = threading.Lock()
        self._config = config or SimConfig()
        self._rng = random.Random(self._config.seed)
        self._window: deque[float] = deque()
        self._stats = _Stats()

    # -- configuration -----------------------------------------------------------------------

    @property
    def config(self) -> SimConfig:
        return self._config

    def configure(self, **changes: Any) -> SimConfig:
        """Change fault knobs (validated, all or nothing); returns the new config."""
        clean = validate_changes(changes)
        with self._lock:
            self._config = dataclasses.replace(self._config, **clean)
            if "seed" in clean:
                self._rng = random.Random(clean["seed"])
            return self._config

    def reset(self) -> None:
        """Clear every counter, the rate-limit window and the record of unbanned members."""
        with self._lock:
            self._stats = _Stats()
            self._window.clear()

    # -- inspection ----------------------------------------------------------------------------

    def unbanned(self, group_id: str) -> frozenset[str]:
        """Members successfully unbanned from ``group_id`` since the last reset."""
        with self._lock:
            return frozenset(self._stats.unbanned.get(group_id, ()))

    def snapshot(self) -> dict[str, Any]:
        """All counters as a JSON-ready dict (histogram keys are strings, as in GET /_stats)."""
        with self._lock:
            s = self._stats
            return {
                "calls": s.calls,
                "calls_ok": s.calls_ok,
                "members_unbanned": s.members_unbanned,
                "distinct_unbanned": sum(len(m) for m in s.unbanned.values()),
                "duplicate_unbans": s.duplicate_unbans,
                "rate_limited": s.rate_limited,
                "hangs": s.hangs,
                "max_calls_in_1s": s.max_calls_in_1s,
                "batch_sizes": {str(k): v for k, v in sorted(s.batch_sizes.items())},
                "codes": {str(k): v for k, v in sorted(s.codes.items())},
                "http_status": {str(k): v for k, v in sorted(s.http_status.items())},
                "first_call_s": s.first_call_s,
                "last_call_s": s.last_call_s,
                "timeline": [
                    {"t": t, "calls": r[0], "ok": r[1], "members": r[2], "rate_limited": r[3]}
                    for t, r in sorted(s.timeline.items())
                ],
                "config": self._config.to_json(),
            }

    # -- requests ------------------------------------------------------------------------------

    def handle(self, method: str, target: str, body: bytes) -> SimResponse:
        """Answer one HTTP request; ``target`` is the request line's path with its query."""
        path, _, query = target.partition("?")
        if path == UNBAN_PATH:
            return self._unban(query, body) if method == "POST" else SimResponse(405, b"", "text/plain")
        if path.startswith("/_"):
            return self._admin(method, path, body)
        if method != "POST":
            return SimResponse(404, b"not found", "text/plain")
        # The API answers unknown service/command paths with 60009 on HTTP 200.
        return _answer(60009, f"request resource error: no such API {path!r}")

    def _admin(self, method: str, path: str, body: bytes) -> SimResponse:
        if method == "GET" and path == "/_stats":
            return SimResponse(200, _json(self.snapshot()))
        if method == "GET" and path == "/_admin/config":
            return SimResponse(200, _json(self._config.to_json()))
        if method == "POST" and path == "/_admin/reset":
            self.reset()
            return SimResponse(200, _json({"ok": True}))
        if method == "POST" and path == "/_admin/config":
            try:
                changes = json.loads(body or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("expected a JSON object of option -> value")
                config = self.configure(**changes)
            except (ValueError, TypeError) as exc:
                return SimResponse(400, _json({"error": str(exc)}))
            return SimResponse(200, _json(config.to_json()))
        return SimResponse(404, b"not found", "text/plain")

    def _check_url(self, query: str, now_s: float) -> tuple[int, str] | None:
        """The query-string and UserSig checks; None when the caller is the authenticated admin."""
        params = parse_qs(query, keep_blank_values=True)

        def one(name: str) -> str:
            values = params.get(name)
            return values[0] if values else ""

        appid = one("sdkappid")
        if not appid:
            return 60012, "REST API needs SDKAppID in the URL"
        if not appid.isascii() or not appid.isdigit():
            return 60002, "sdkappid is not an integer"
        if int(appid) != self.sdkappid:
            return 60006, "SDKAppID invalid"
        if not _RANDOM_RE.fullmatch(one("random")) or int(one("random")) >= 2**32:
            return 60002, "random must be a 32-bit unsigned integer"
        if one("contenttype") != "json":
            return 60002, "contenttype must be json"
        identifier = one("identifier")
        if not identifier:
            return 60004, "identifier is missing"
        usersig = one("usersig")
        if not usersig:
            return 70002, "UserSig length is 0"
        try:
            verify_usersig(usersig, self.sdkappid, identifier, self._key, int(now_s))
        except UserSigError as exc:
            return exc.code, describe(exc.code)
        if identifier != self.admin:
            return 60010, "request needs App admin permission"
        return None

    def _unban(self, query: str, body: bytes) -> SimResponse:
        now_s = self._clock()
        # The pure checks run outside the lock; only the shared state is touched under it.
        denied = self._check_url(query, now_s)
        batch = _parse_batch(body) if denied is None else None
        with self._lock:
            cfg, stats, rng = self._config, self._stats, self._rng
            stats.calls += 1
            if stats.first_call_s is None:
                stats.first_call_s = now_s
            stats.last_call_s = now_s
            row = stats.row(now_s)
            row[0] += 1
            delay_s = (
                cfg.latency_ms + (rng.uniform(0.0, cfg.latency_jitter_ms) if cfg.latency_jitter_ms else 0.0)
            ) / 1000
            if batch is not None and cfg.group_delay_ms:
                delay_s += cfg.group_delay_ms.get(batch.group_id, 0.0) / 1000
            if cfg.http_502_rate and rng.random() < cfg.http_502_rate:
                stats.http_status[502] += 1
                return SimResponse(502, b"<html><body>502 Bad Gateway</body></html>", "text/html", delay_s)
            if cfg.hang_rate and rng.random() < cfg.hang_rate:
                stats.hangs += 1
                delay_s += cfg.hang_s
            stats.http_status[200] += 1
            code, info = denied if denied is not None else self._decide(cfg, batch)
            stats.codes[code] += 1
            if code == 60007:
                stats.rate_limited += 1
                row[3] += 1
            elif code == 0 and batch is not None:
                self._record_unban(batch, row)
            return _answer(code, info, delay_s)

    def _decide(self, cfg: SimConfig, batch: _Batch | None) -> tuple[int, str]:
        """Rate limit and faults, then the body and group checks. Runs under the lock."""
        if cfg.burst_60007 > 0:
            self._config = dataclasses.replace(cfg, burst_60007=cfg.burst_60007 - 1)
            return 60007, describe(60007)
        now = self._monotonic()
        window = self._window
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= cfg.rate_limit:
            return 60007, describe(60007)
        window.append(now)
        self._stats.max_calls_in_1s = max(self._stats.max_calls_in_1s, len(window))
        if cfg.error_10002_rate and self._rng.random() < cfg.error_10002_rate:
            return 10002, describe(10002)
        if cfg.global_error is not None:
            return cfg.global_error, describe(cfg.global_error)
        assert batch is not None  # parsed whenever the URL checks passed
        if batch.code:
            return batch.code, batch.info
        group_error = cfg.group_errors.get(batch.group_id)
        if group_error is not None:
            return group_error, describe(group_error)
        group_type = (cfg.known_groups or {}).get(batch.group_id)
        if group_type is None and cfg.unknown_groups_gone:
            return 10010, f"group {batch.group_id} does not exist"
        if group_type is not None and group_type != AV_CHAT_ROOM:
            return 10007, f"group type {group_type} does not support this API"
        poisoned = next((m for m in batch.members if m in cfg.poison_members), None)
        if poisoned is not None:
            return 10004, f"invalid Members_Account: {poisoned}"
        return 0, ""

    def _record_unban(self, batch: _Batch, row: list[int]) -> None:
        stats = self._stats
        stats.calls_ok += 1
        stats.members_unbanned += len(batch.members)
        stats.batch_sizes[len(batch.members)] += 1
        row[1] += 1
        row[2] += len(batch.members)
        done = stats.unbanned.setdefault(batch.group_id, set())
        for member in batch.members:
            if member in done:
                stats.duplicate_unbans += 1
            else:
                done.add(member)
