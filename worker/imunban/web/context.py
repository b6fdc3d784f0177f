"""What every page works on: one app's engine and its rate sampler (an :class:`AppContext`).

A console serves the apps of one :class:`~imunban.deployment.Deployment`; a request picks one with
``?app=NAME`` (the header's app switcher keeps it in every link and form), so pages never reach for
a global client. The console never signs an API call, so it never reads a secret key.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from imunban.deadletter import DeadLetters
from imunban.deployment import AppEngine, Deployment
from imunban.hold import Hold
from imunban.keys import Keys
from imunban.pause import Pause
from imunban.settings import Settings
from imunban.store import Store
from imunban.web.sampler import RateSampler


@dataclass
class AppContext:
    """One app as the console sees it: its engine (built once by the deployment) and its rate sampler."""

    engine: AppEngine
    settings: Settings
    sampler: RateSampler

    @property
    def name(self) -> str:
        return self.engine.name

    @property
    def sdkappid(self) -> int | None:
        return self.engine.sdkappid

    @property
    def client(self) -> redis.Redis:
        return self.engine.store.client

    @property
    def keys(self) -> Keys:
        return self.engine.keys

    @property
    def store(self) -> Store:
        return self.engine.store

    @property
    def dead(self) -> DeadLetters:
        return self.engine.dead

    @property
    def hold(self) -> Hold:
        return self.engine.hold

    @property
    def pause(self) -> Pause:
        return self.engine.pause

    @property
    def rate_limit_per_s(self) -> float:
        return self.engine.rate_limit_per_s

    @property
    def limiter_key(self) -> str | None:
        return self.engine.limiter_key


def app_contexts(deployment: Deployment) -> dict[str, AppContext]:
    """One context per app of ``deployment``, in its order, each with its own sampler."""
    return {
        engine.name: AppContext(engine, deployment.settings, RateSampler(deployment.client, engine.keys))
        for engine in deployment
    }
