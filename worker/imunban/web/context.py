"""What every page works on: one app's Redis client, keys and settings (an :class:`AppContext`).

A console serves one or more apps (:class:`Apps`): the apps of ``IMUNBAN_APPS_FILE``, or one named
``default`` built from the single-app settings. Each gets its own context and a request picks one
with ``?app=NAME`` (the header's app switcher keeps it in every link and form), so pages never
reach for a global client.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import redis

from imunban.apps import load_apps
from imunban.deadletter import DeadLetters
from imunban.hold import Hold
from imunban.keys import Keys
from imunban.settings import Settings
from imunban.store import Store
from imunban.web.sampler import RateSampler

DEFAULT_APP = "default"


@dataclass
class AppContext:
    """One app as the console sees it; the engine objects are built once and shared by requests."""

    name: str
    settings: Settings
    client: redis.Redis
    keys: Keys
    sampler: RateSampler = field(init=False)
    store: Store = field(init=False)
    dead: DeadLetters = field(init=False)
    hold: Hold = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.store = Store(
            self.client, self.keys, linger=s.linger, outcome_maxlen=s.outcome_stream_maxlen, durability=s.durability
        )
        self.dead = DeadLetters(self.client, self.keys, durability=s.durability)
        self.hold = Hold(self.client, self.keys, probe_base_ms=s.probe_base_ms, probe_cap_ms=s.probe_cap_ms)
        self.sampler = RateSampler(self.client, self.keys)

    @property
    def rate_limit_per_s(self) -> float:
        return self.settings.rate_limit_per_s

    @property
    def limiter_key(self) -> str | None:
        """The app's GCRA key, when the console knows the SDKAppID (it does not need credentials)."""
        return None if self.settings.sdkappid is None else self.keys.limiter(self.settings.sdkappid)


class Apps:
    """The apps one console serves, by name; the first is the default."""

    def __init__(self, contexts: list[AppContext]) -> None:
        if not contexts:
            raise ValueError("a console serves at least one app")
        self.by_name = {ctx.name: ctx for ctx in contexts}
        self.default = contexts[0]

    @classmethod
    def single(cls, settings: Settings, client: redis.Redis) -> Apps:
        return cls([AppContext(DEFAULT_APP, settings, client, Keys(settings.key_prefix))])

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis) -> Apps:
        """Every app of ``settings`` (its apps file, or ``default``), each with its own keys, limit and SDKAppID."""
        return cls(
            [
                AppContext(config.name, config.settings(settings), client, config.keys(settings.key_prefix))
                for config in load_apps(settings)
            ]
        )

    @property
    def names(self) -> list[str]:
        return list(self.by_name)

    def __len__(self) -> int:
        return len(self.by_name)

    def get(self, name: str | None) -> AppContext | None:
        """The named app (None: the default); None for an unknown name."""
        return self.default if not name else self.by_name.get(name)

    def __iter__(self) -> Iterator[AppContext]:
        return iter(self.by_name.values())
