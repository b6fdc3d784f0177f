"""The Python API for producers: enqueue, schedule, cancel, and bulk enqueue straight into Redis.

Functions (one process-wide producer built from the ``IMUNBAN_*`` environment)::

    import imunban
    imunban.enqueue("@TGS#aJRGC4MH6", ["alice", "bob"], at="2026-12-01T08:00Z", priority="normal")
    imunban.cancel("@TGS#aJRGC4MH6", ["bob"])
    imunban.bulk({"group_id": g, "member": m} for g, m in pairs)

Or hold a producer yourself (another Redis, another key prefix)::

    from imunban import Producer
    producer = Producer.from_env()                     # or Producer(open_deployment(settings))
    producer.enqueue("@TGS#aJRGC4MH6", ["alice", "bob"])                 # now
    producer.enqueue("@TGS#aJRGC4MH6", ["carol"], at="2026-12-01T08:00Z")  # when the ban expires
    producer.enqueue("@TGS#aJRGC4MH6", ["dave"], priority="high")          # a person is waiting
    producer.cancel("@TGS#aJRGC4MH6", ["carol"])
    producer.enqueue("@TGS#aJRGC4MH6", ["erin"], version=1717171717000)  # ordered between producers
    producer.bulk({"group_id": g, "member": m} for g, m in pairs)         # >= 50,000 members/s

With several apps (``IMUNBAN_APPS_FILE``) every call names its app: ``app="cn"`` (a ``"app"`` field
in ``bulk`` items); with one app it may be left out. An unknown app is refused before anything is stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import redis

from imunban.deployment import Deployment, open_deployment
from imunban.errors import ValidationError
from imunban.settings import Settings
from imunban.store import EnqueueResult
from imunban.validation import (
    UnbanRequest,
    build_request,
    request_from_mapping,
    validate_group_id,
    validate_member,
    validate_members,
    validate_version,
)

When = int | float | str | datetime | None


class Producer:
    """Writes unban requests into a deployment's stores. Validation happens before anything is stored."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def __repr__(self) -> str:
        return f"Producer({self.deployment!r})"

    @classmethod
    def on(cls, client: redis.Redis, settings: Settings | None = None) -> Producer:
        """A producer on ``client``: the deployment of ``settings`` (default: app ``default``, prefix ``imunban``)."""
        return cls(open_deployment(settings or Settings(), client=client))

    @classmethod
    def from_env(cls, settings: Settings | None = None) -> Producer:
        """A producer on the deployment of the ``IMUNBAN_*`` settings; no ``IMUNBAN_REDIS_URL``: the embedded server."""
        settings = settings or Settings.from_env()
        if settings.redis_url is None:
            # The embedded server is a tool (imunban.local), loaded only when it is the default in use, never
            # at import: the one engine -> tool edge, named in pyproject.toml's import contracts.
            from imunban.local.embedded import resolve_settings

            settings = resolve_settings(settings)
        return cls(open_deployment(settings))

    def enqueue(
        self,
        group_id: str,
        members: str | Sequence[str],
        *,
        at: When = None,
        priority: str = "normal",
        version: int | None = None,
        app: str | None = None,
    ) -> EnqueueResult:
        """Unban ``members`` of ``group_id`` at ``at`` (Unix seconds, ISO-8601, datetime; None = now).

        ``version`` (an int64 >= 0): for each member, an instruction with a lower version than one
        already applied (enqueue or cancel) is ignored and counted in ``result.stale``.
        """
        if isinstance(members, str):
            members = [members]
        request = build_request(group_id, members, at, priority, version=version, app=app)
        return self.deployment.enqueue([request])

    def cancel(
        self, group_id: str, members: str | Sequence[str], *, version: int | None = None, app: str | None = None
    ) -> int:
        """End requests: pending ones are removed, in-flight ones are not sent (unless already on the wire).

        Returns how many were cancelled. With ``version``, a member whose applied version is higher is
        left alone; the cancel's version is remembered, so a later lower-versioned enqueue is ignored.
        """
        if isinstance(members, str):
            members = [members]
        checked = validate_version(version)
        target = self.deployment.app(app)  # an unknown app is refused before anything else
        return target.store.cancel(validate_group_id(group_id), list(validate_members(members)), version=checked)

    def bulk(self, requests: Iterable[UnbanRequest | Mapping[str, Any]]) -> EnqueueResult:
        """Validate every request first (a bad one stores nothing), then pipeline them into Redis.

        Items are :class:`UnbanRequest` or mappings like ``{"group_id": g, "member": m}`` /
        ``{"group_id": g, "members": [...], "at": ..., "priority": "high", "version": 17}``.
        """
        validated: list[UnbanRequest] = []
        groups: dict[str, str] = {}  # group ids already validated (bulk imports repeat them a lot)
        for index, item in enumerate(requests):
            if isinstance(item, UnbanRequest):
                validated.append(item)
                continue
            try:
                validated.append(_single_member(item, groups) or request_from_mapping(item))
            except ValidationError as exc:
                raise ValidationError(f"requests[{index}].{exc.field}", exc.reason) from None
        # Grouping by group id makes every store chunk touch few groups (several times faster when the
        # input interleaves groups). The sort is stable, so for any one (group, member) the latest
        # instruction still wins. Every app is resolved before anything is stored (Deployment.enqueue).
        validated.sort(key=_group_of)
        return self.deployment.enqueue(validated)


def _group_of(request: UnbanRequest) -> str:
    return request.group_id


def _single_member(item: object, groups: dict[str, str]) -> UnbanRequest | None:
    """Fast path for the commonest item, ``{"group_id": g, "member": m}``; None for anything else.

    The same validators run, in the same order as :func:`request_from_mapping` (member first), so
    the result and any error are identical; only the group id check is remembered.
    """
    if type(item) is not dict or len(item) != 2 or "member" not in item or "group_id" not in item:
        return None
    member = validate_member(item["member"], "member")
    group_id = item["group_id"]
    known = groups.get(group_id) if type(group_id) is str else None
    if known is None:
        known = validate_group_id(group_id)
        groups[known] = known
    return UnbanRequest(known, (member,))
