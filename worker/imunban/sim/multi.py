"""One simulator endpoint for several apps: each app's own SDKAppID, key, admin, limit and faults.

The real API tells apps apart by the ``sdkappid`` query parameter, so :class:`MultiSimulator` routes
each unban call to that app's :class:`~imunban.sim.core.Simulator` (which checks the UserSig with the
app's own key) and answers 60006 to an SDKAppID it does not serve. Admin paths take the app's name:
``GET /_apps/NAME/_stats``, ``POST /_apps/NAME/_admin/config`` ...; ``GET /_stats`` gives every
app's counters under ``apps`` and the calls to unknown SDKAppIDs. A single-app simulator is unchanged.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

from imunban.api import UNBAN_PATH
from imunban.apps import AppConfig
from imunban.sim.core import SimConfig, SimResponse, Simulator

__all__ = ["MultiSimulator"]

_APPS_PREFIX = "/_apps/"


class MultiSimulator:
    """Several :class:`Simulator` by app name, routed by SDKAppID; serve it with SimulatorServer."""

    def __init__(self, simulators: Mapping[str, Simulator]) -> None:
        if not simulators:
            raise ValueError("a multi-app simulator needs at least one app")
        self.simulators = dict(simulators)
        self._by_sdkappid = {sim.sdkappid: sim for sim in self.simulators.values()}
        if len(self._by_sdkappid) != len(self.simulators):
            raise ValueError("two apps of the simulator share an SDKAppID")
        self._lock = threading.Lock()
        self.unknown_app_calls = 0

    @classmethod
    def for_apps(
        cls, apps: Iterable[AppConfig], config: SimConfig | None = None, configs: Mapping[str, SimConfig] | None = None
    ) -> MultiSimulator:
        """One simulator per app, each checking signatures with that app's credentials.

        ``configs`` gives an app its own fault knobs; the others get ``config`` (or the defaults).
        """
        per_app = dict(configs or {})
        return cls({app.name: Simulator(app, per_app.get(app.name, config)) for app in apps})

    def __getitem__(self, name: str) -> Simulator:
        return self.simulators[name]

    def reset(self) -> None:
        for sim in self.simulators.values():
            sim.reset()
        with self._lock:
            self.unknown_app_calls = 0

    def snapshot(self) -> dict[str, Any]:
        """Every app's counters under ``apps``, the total of calls, and calls to an unknown SDKAppID."""
        apps = {name: sim.snapshot() for name, sim in self.simulators.items()}
        with self._lock:
            unknown = self.unknown_app_calls
        return {
            "apps": apps,
            "calls": sum(s["calls"] for s in apps.values()) + unknown,
            "unknown_app_calls": unknown,
        }

    def handle(self, method: str, target: str, body: bytes) -> SimResponse:
        """Route one HTTP request to the app it is for (see the module docstring)."""
        path, _, query = target.partition("?")
        if path == UNBAN_PATH:
            appid = _sdkappid(query)
            if appid is None:  # missing or not a number: any app answers 60012/60002 as the API does
                return next(iter(self.simulators.values())).handle(method, target, body)
            sim = self._by_sdkappid.get(appid)
            if sim is None:
                with self._lock:
                    self.unknown_app_calls += 1
                body_out = {"ActionStatus": "FAIL", "ErrorCode": 60006, "ErrorInfo": "SDKAppID invalid"}
                return SimResponse(200, json.dumps(body_out).encode())
            return sim.handle(method, target, body)
        if path.startswith(_APPS_PREFIX):
            name, _, rest = path[len(_APPS_PREFIX) :].partition("/")
            sim = self.simulators.get(name)
            if sim is None:
                return SimResponse(404, f"no app {name!r}".encode(), "text/plain")
            return sim.handle(method, "/" + rest + (f"?{query}" if query else ""), body)
        if method == "GET" and path == "/_stats":
            return SimResponse(200, json.dumps(self.snapshot(), separators=(",", ":")).encode())
        if method == "POST" and path == "/_admin/reset":
            self.reset()
            return SimResponse(200, b'{"ok":true}')
        # Anything else (an unknown API path, a config change without an app) as the first app answers it.
        return next(iter(self.simulators.values())).handle(method, target, body)


def _sdkappid(query: str) -> int | None:
    values = parse_qs(query).get("sdkappid") or [""]
    return int(values[0]) if values[0].isascii() and values[0].isdigit() else None
