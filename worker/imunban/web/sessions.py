"""Signed-out console sessions stay signed out: a revocation record per session id.

A session cookie is signed and carries its own expiry, so until now "Sign out" only asked the
browser to forget it: a copy kept working for up to 12 hours. Now signing out records the
session's id in Redis (:meth:`~imunban.keys.Keys.web_revoked`, a deployment key, expiring after
the session lifetime, when the cookie would be refused anyway) and in this process. Every request
with a session cookie is checked against both (one EXISTS, off the event loop). A denylist rather
than a list of live sessions: signing in writes nothing, so it works while Redis is full.

If Redis refuses the record (full, unreachable), this console still refuses the cookie (its own
record) and says so in its log; if Redis cannot be read, only this console's records count.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from imunban.connection import translated
from imunban.errors import StoreError
from imunban.keys import Keys

log = logging.getLogger(__name__)


class Revocations:
    """Records of signed-out sessions; ``lifetime_s`` is how long a session's cookie is valid."""

    def __init__(
        self, client: redis.Redis, keys: Keys, lifetime_s: int, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.keys = keys
        self.lifetime_s = lifetime_s
        self._clock = clock
        #: session id -> when its cookie expires (then the record is no longer needed).
        self._here: dict[str, float] = {}
        self._lock = threading.Lock()  # sign-outs run in the thread pool

    def revoke(self, session_id: str) -> bool:
        """Record that ``session_id`` signed out; False when only this console could record it."""
        now = self._clock()
        with self._lock:
            kept = {sid: until for sid, until in self._here.items() if until > now}
            kept[session_id] = now + self.lifetime_s
            self._here = kept  # one assignment: a reader sees the old records or the new, never a half
        try:
            with translated("sign-out"):
                self.client.set(self.keys.web_revoked(session_id), "1", ex=self.lifetime_s)
        except StoreError as exc:
            log.warning("sign-out recorded by this console only (Redis did not take the record): %s", exc)
            return False
        return True

    def revoked_here(self, session_id: str) -> bool:
        """Whether this console recorded ``session_id`` as signed out (no I/O: for live streams)."""
        return session_id in self._here

    def revoked(self, session_id: str) -> bool:
        """Whether ``session_id`` signed out, here or in any console sharing this Redis (one EXISTS)."""
        if self.revoked_here(session_id):
            return True
        try:
            with translated("session check"):
                return bool(self.client.exists(self.keys.web_revoked(session_id)))
        except StoreError as exc:
            log.debug("session check read no record: %s", exc)
            return False
