"""imunban: reliable, rate-limited batch delivery of Tencent Cloud Chat audio-video group unbans.

The function-level producer API, on one process-wide :class:`Producer` built from ``IMUNBAN_*``
(an unset ``IMUNBAN_REDIS_URL`` means the embedded server, started on first use)::

    import imunban
    imunban.enqueue("@TGS#aJRGC4MH6", ["alice"])                  # now
    imunban.enqueue("@TGS#aJRGC4MH6", ["bob"], at=1796083200)     # when the ban expires
    imunban.cancel("@TGS#aJRGC4MH6", ["bob"])
    imunban.cancel("@TGS#aJRGC4MH6", ["bob"], version=42)   # ordered: a lower version is ignored
    imunban.bulk({"group_id": g, "member": m} for g, m in pairs)
    imunban.enqueue("@TGS#x", ["carol"], app="intl")   # with several apps (IMUNBAN_APPS_FILE)

Importing this package loads the engine only; the embedded Redis server is looked up (and started
if need be) the first time the process-wide producer is used.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from imunban.deployment import Deployment, open_deployment
from imunban.producer import Producer, When
from imunban.store import EnqueueResult
from imunban.validation import UnbanRequest
from imunban.version import VERSION as __version__  # noqa: F401  (imunban.__version__)

__all__ = [
    "Deployment",
    "EnqueueResult",
    "Producer",
    "UnbanRequest",
    "bulk",
    "cancel",
    "default_producer",
    "enqueue",
    "open_deployment",
    "reset_default_producer",
]

_default: Producer | None = None
_default_lock = threading.Lock()


def default_producer() -> Producer:
    """The process's Producer, built from the environment on first use (thread-safe)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Producer.from_env()  # an unset IMUNBAN_REDIS_URL: the embedded server, started if need be
        return _default


def reset_default_producer() -> None:
    """Forget the process's Producer (after the environment changed, or in tests)."""
    global _default
    with _default_lock:
        _default = None


def enqueue(
    group_id: str,
    members: str | Sequence[str],
    *,
    at: When = None,
    priority: str = "normal",
    version: int | None = None,
    app: str | None = None,
) -> EnqueueResult:
    """``imunban.enqueue(group, members, at=..., priority=..., version=..., app=...)``: see :meth:`Producer.enqueue`."""
    return default_producer().enqueue(group_id, members, at=at, priority=priority, version=version, app=app)


def cancel(group_id: str, members: str | Sequence[str], *, version: int | None = None, app: str | None = None) -> int:
    """``imunban.cancel(group, members, version=..., app=...)``: see :meth:`Producer.cancel`."""
    return default_producer().cancel(group_id, members, version=version, app=app)


def bulk(requests: Iterable[UnbanRequest | Mapping[str, Any]]) -> EnqueueResult:
    """``imunban.bulk(requests)``: see :meth:`Producer.bulk`."""
    return default_producer().bulk(requests)
