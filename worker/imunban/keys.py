"""Every Redis key imunban uses, built in this one module.

Data model (``p`` is ``IMUNBAN_KEY_PREFIX``; a *request id* is ``group + SEP + member``):

========================  ======  ===========================================================
key                       type    content
========================  ======  ===========================================================
``p:sched:{group}``       ZSET    member -> due ms; the group's requests not yet due (incl. retries)
``p:schedidx``            ZSET    group -> earliest due ms in its ``sched:{group}`` (absent when empty)
``p:groups``              ZSET    group -> ms at which its ready batch may be claimed
``p:ready:{group}``       ZSET    member -> due ms (minus HIGH_BAND_MS for ``high``); due now
``p:inflight``            ZSET    request id -> lease deadline ms
``p:leases``              HASH    request id -> "token|due_ms|high" of the current lease
``p:meta``                HASH    request id -> "attempts|first_failure_ms|last_code|due_ms" (sparse)
``p:high``                HASH    request id -> "1" while a pending request is ``high`` (sparse)
``p:dead``                ZSET    request id -> ms it was dead-lettered
``p:dead:info``           HASH    request id -> JSON {code, info, attempts, at_ms, high}
``p:outcomes``            STREAM  one entry per ended request (capped)
``p:stats``               HASH    counters (enqueued, delivered, ...); ``ready`` and ``scheduled`` gauges
``p:hold``                HASH    code, info, since_ms, next_probe_ms, probes (absent = no hold)
``p:limiter:{sdkappid}``  STRING  GCRA theoretical arrival time, microseconds
``p:dispatch``            ZSET    marker id "group SEP slot" -> ms the dispatch marker expires
``p:probed``              HASH    group -> number of its latest probe in the current hold (deleted with it)
``p:holds``               ZSET    JSON {since_ms, end_ms, code, info, probes} of each ended hold -> end ms (capped)
``p:okgroups``            HASH    g1, t1, g2, t2: the last two distinct groups with a delivered answer, and when
``p:versions``            HASH    request id -> version last applied, + "c" if by a cancel (sparse: versioned only)
``p:version_ends``        ZSET    request id -> ms its versioned request ended (forgotten VERSION_MEMORY_S later)
``p:replies``             HASH    call id -> encoded reply of a claim/ack/requeue/dispatch, for a replayed call
``p:reply_expiry``        ZSET    call id -> ms its reply may be forgotten (trimmed as new replies arrive)
``p:workers``             HASH    worker id -> ms of its pump's last tick (heartbeat.py; silent ones pruned)
========================  ======  ===========================================================
"""

from __future__ import annotations

from dataclasses import dataclass

#: Separates group and member in a request id. Both are printable ASCII, so this never occurs in them.
SEP = "\x1f"

#: Subtracted from the score of high-priority members so they sort before every normal one.
HIGH_BAND_MS = 10**13

#: The API's maximum members per call (more is refused with 10005); a batch this full is claimable at once.
MAX_MEMBERS = 20


def request_id(group_id: str, member: str) -> str:
    return f"{group_id}{SEP}{member}"


def split_request_id(rid: str) -> tuple[str, str]:
    group_id, _, member = rid.partition(SEP)
    return group_id, member


def marker_id(group_id: str, slot: int) -> str:
    """The member of ``p:dispatch`` that marks delivery slot ``slot`` of a group (``dispatch.lua`` builds it too)."""
    return f"{group_id}{SEP}{slot}"


@dataclass(frozen=True)
class Keys:
    """Key builders for one deployment (one ``IMUNBAN_KEY_PREFIX``)."""

    prefix: str = "imunban"

    def sched_group(self, group_id: str) -> str:
        return f"{self.prefix}:sched:{group_id}"

    @property
    def schedidx(self) -> str:
        return f"{self.prefix}:schedidx"

    @property
    def groups(self) -> str:
        return f"{self.prefix}:groups"

    def ready(self, group_id: str) -> str:
        return f"{self.prefix}:ready:{group_id}"

    @property
    def inflight(self) -> str:
        return f"{self.prefix}:inflight"

    @property
    def leases(self) -> str:
        return f"{self.prefix}:leases"

    @property
    def meta(self) -> str:
        return f"{self.prefix}:meta"

    @property
    def high(self) -> str:
        return f"{self.prefix}:high"

    @property
    def dead(self) -> str:
        return f"{self.prefix}:dead"

    @property
    def dead_info(self) -> str:
        return f"{self.prefix}:dead:info"

    @property
    def outcomes(self) -> str:
        return f"{self.prefix}:outcomes"

    @property
    def stats(self) -> str:
        return f"{self.prefix}:stats"

    @property
    def hold(self) -> str:
        return f"{self.prefix}:hold"

    def limiter(self, sdkappid: int | str) -> str:
        return f"{self.prefix}:limiter:{sdkappid}"

    @property
    def dispatch(self) -> str:
        return f"{self.prefix}:dispatch"

    @property
    def probed(self) -> str:
        return f"{self.prefix}:probed"

    @property
    def holds(self) -> str:
        return f"{self.prefix}:holds"

    @property
    def ok_groups(self) -> str:
        return f"{self.prefix}:okgroups"

    @property
    def versions(self) -> str:
        return f"{self.prefix}:versions"

    @property
    def version_ends(self) -> str:
        return f"{self.prefix}:version_ends"

    @property
    def replies(self) -> str:
        return f"{self.prefix}:replies"

    @property
    def reply_expiry(self) -> str:
        return f"{self.prefix}:reply_expiry"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"
