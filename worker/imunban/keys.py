"""Every Redis key imunban uses, built in this one module.

Data model. Every key of one app starts with the app's hash tag ``{p:app}`` (``p`` is
``IMUNBAN_KEY_PREFIX``, ``app`` the app's name, ``default`` for a single-app deployment), so a
Redis Cluster keeps all of them in one slot and every script runs there (docs/semantics.md,
"Several apps"). Below, ``t`` is that tag, ``{group}`` a group id (not a hash tag: only the first
``{...}`` of a key counts, and the tag comes first) and a *request id* is ``group + SEP + member``:

========================  ======  ===========================================================
key                       type    content
========================  ======  ===========================================================
``t:sched:{group}``       ZSET    member -> due ms; the group's requests not yet due (incl. retries)
``t:schedidx``            ZSET    group -> earliest due ms in its ``sched:{group}`` (absent when empty)
``t:groups``              ZSET    group -> ms at which its ready batch may be claimed
``t:ready:{group}``       ZSET    member -> due ms (minus HIGH_BAND_MS for ``high``); due now
``t:inflight``            ZSET    request id -> lease deadline ms
``t:leases``              HASH    request id -> "token|due_ms|high" of the current lease
``t:meta``                HASH    request id -> "attempts|first_failure_ms|last_code|due_ms" (sparse)
``t:high``                HASH    request id -> "1" while a pending request is ``high`` (sparse)
``t:dead``                ZSET    request id -> ms it was dead-lettered
``t:dead:info``           HASH    request id -> JSON {code, info, attempts, at_ms, high}
``t:outcomes``            STREAM  one entry per ended request (capped)
``t:trace:``              HASH    + shard (4 hex digits of SHA-1(member); 65,536 shards, ``trace_of``): request
                                  id -> its trace record (imunban.trace), its last outcome, kept
                                  IMUNBAN_TRACE_TTL_S; one member's records share a shard; field "" = last prune ms
``t:stats``               HASH    counters (enqueued, delivered, ...); ``ready`` and ``scheduled`` gauges;
                                  ``last_claim_ms`` (claim.lua: a worker alive but not claiming is seen)
``t:hold``                HASH    code, info, since_ms, next_probe_ms, probes (absent = no hold)
``t:pause``               HASH    reason, since_ms, role, via, client: an operator paused delivery (absent = not)
``t:limit``               HASH    rate_per_s, since_ms, role, via, client: an operator's live rate limit (absent =
                                  the configured one; livelimit.py)
``t:limiter:{sdkappid}``  STRING  GCRA theoretical arrival time, microseconds
``t:dispatch``            ZSET    marker id "group SEP slot" -> ms the dispatch marker expires
``t:probed``              HASH    group -> number of its latest probe in the current hold (deleted with it)
``t:holds``               ZSET    JSON {since_ms, end_ms, code, info, probes} of each ended hold (code 0: a
                                  pause) -> end ms (capped)
``t:okgroups``            HASH    g1, t1, g2, t2: the last two distinct groups with a delivered answer, and when
``t:versions``            HASH    request id -> version last applied, + "c" if by a cancel (sparse: versioned only)
``t:version_ends``        ZSET    request id -> ms its versioned request ended (forgotten VERSION_MEMORY_S later)
``t:replies``             HASH    call id -> encoded reply of a claim/ack/requeue/dispatch, for a replayed call
``t:reply_expiry``        ZSET    call id -> ms its reply may be forgotten (trimmed as new replies arrive)
``t:wake``                LIST    a few tokens: something became due now or a slot freed; a waiting pump BLPOPs it
``t:throughput``          ZSET    "minute:at_ms:delivered:calls" -> epoch minute: the counters once a minute, 24 h
                                  (throughput.py; the console's history chart, shared by every replica)
``t:alarm:<pump>``        LIST    one pump's own alarm token at its next due time (a BLPOP timeout is served late)
``d:workers``             HASH    worker id -> ms of its pump's last tick (heartbeat.py; silent ones pruned)
``d:stats``               HASH    deployment counters: ``rejected_messages`` (a message's app is not known)
``d:apps``                SET     every app name that ran here (a removed or renamed app's backlog is found)
``d:migrate``             STRING  lock of the one-time move from the single-app layout (migrate.py)
``d:migrating``           STRING  app a move of the single-app layout is going to; deleted when it finished
``d:web:revoked:<id>``    STRING  "1": console session ``<id>`` signed out; expires with the session (web/sessions.py)
========================  ======  ===========================================================

``d`` is the deployment's own tag ``{p}``: keys shared by every app, never passed to a script with
an app's keys. Before several apps, every key was ``p:name`` (``t`` and ``d`` were both ``p``);
:meth:`Keys.single_app_layout` still builds those names, for :mod:`imunban.migrate` only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

#: Separates group and member in a request id. Both are printable ASCII, so this never occurs in them.
SEP = "\x1f"

#: Subtracted from the score of high-priority members so they sort before every normal one.
HIGH_BAND_MS = 10**13

#: The API's maximum members per call (more is refused with 10005); a batch this full is claimable at once.
MAX_MEMBERS = 20

#: Hex digits of SHA-1(member) that name a member's trace shard (16**4 = 65,536 shards per app): ``_lib.lua``'s
#: trace_key builds the same name. One shard holds every group's record of a member, so finding a member in
#: every group reads one small hash; at a million traced requests a shard holds ~15 (a compact listpack).
TRACE_SHARD_HEX = 4

#: The app of a single-app deployment (no IMUNBAN_APPS_FILE), and where migrate.py moves old keys.
DEFAULT_APP = "default"


def request_id(group_id: str, member: str) -> str:
    return f"{group_id}{SEP}{member}"


def split_request_id(rid: str) -> tuple[str, str]:
    group_id, _, member = rid.partition(SEP)
    return group_id, member


def trace_shard_of(member: str) -> str:
    """The shard of ``member``'s trace records (``_lib.lua`` trace_key: the first hex digits of SHA-1(member))."""
    return hashlib.sha1(member.encode(), usedforsecurity=False).hexdigest()[:TRACE_SHARD_HEX]


def marker_id(group_id: str, slot: int) -> str:
    """The member of ``p:dispatch`` that marks delivery slot ``slot`` of a group (``dispatch.lua`` builds it too)."""
    return f"{group_id}{SEP}{slot}"


def hash_tag(key: str) -> str:
    """The part of ``key`` Redis Cluster hashes: the first non-empty ``{...}``, else the whole key."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a SCAN MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@dataclass(frozen=True)
class Keys:
    """Key builders for one app of one deployment (one ``IMUNBAN_KEY_PREFIX``)."""

    prefix: str = "imunban"
    app: str = DEFAULT_APP
    #: The app's base ``{prefix:app}`` and the deployment's ``{prefix}``, computed once (hot path).
    _p: str = field(init=False, repr=False, compare=False)
    _d: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if any(c in "{}" for c in self.prefix + self.app):
            raise ValueError("a key prefix or app name may not contain { or }: it would break the hash tag")
        object.__setattr__(self, "_p", f"{{{self.prefix}:{self.app}}}")
        object.__setattr__(self, "_d", f"{{{self.prefix}}}")

    @classmethod
    def single_app_layout(cls, prefix: str) -> Keys:
        """The key names before several apps (``prefix:name``), read only by :mod:`imunban.migrate`."""
        old = cls(prefix)
        object.__setattr__(old, "_p", prefix)
        object.__setattr__(old, "_d", prefix)
        return old

    @property
    def tag(self) -> str:
        """The hash tag every key of this app carries (``prefix:app``)."""
        return hash_tag(self._p + ":")

    def sched_pattern(self) -> str:
        """SCAN MATCH pattern of every ``sched:{group}`` key of this app."""
        return glob_escape(self.sched_group("")) + "*"

    def ready_pattern(self) -> str:
        """SCAN MATCH pattern of every ``ready:{group}`` key of this app."""
        return glob_escape(self.ready("")) + "*"

    def limiter_pattern(self) -> str:
        """SCAN MATCH pattern of every ``limiter:{sdkappid}`` key of this app."""
        return glob_escape(self.limiter("")) + "*"

    @property
    def migrate_lock(self) -> str:
        return f"{self._d}:migrate"

    @property
    def migrating(self) -> str:
        return f"{self._d}:migrating"

    def sched_group(self, group_id: str) -> str:
        return f"{self._p}:sched:{group_id}"

    @property
    def schedidx(self) -> str:
        return f"{self._p}:schedidx"

    @property
    def groups(self) -> str:
        return f"{self._p}:groups"

    def ready(self, group_id: str) -> str:
        return f"{self._p}:ready:{group_id}"

    @property
    def inflight(self) -> str:
        return f"{self._p}:inflight"

    @property
    def leases(self) -> str:
        return f"{self._p}:leases"

    @property
    def meta(self) -> str:
        return f"{self._p}:meta"

    @property
    def high(self) -> str:
        return f"{self._p}:high"

    @property
    def dead(self) -> str:
        return f"{self._p}:dead"

    @property
    def dead_info(self) -> str:
        return f"{self._p}:dead:info"

    @property
    def outcomes(self) -> str:
        return f"{self._p}:outcomes"

    @property
    def trace(self) -> str:
        """The common start of every trace shard, as scripts take it (KEYS ``trace``; ``_lib.lua`` trace_key appends
        the shard). It carries the app's hash tag, so a script given it stays in the app's slot."""
        return f"{self._p}:trace:"

    def trace_of(self, member: str) -> str:
        """The trace shard holding ``member``'s records in every group (imunban.trace)."""
        return self.trace + trace_shard_of(member)

    def app_pattern(self) -> str:
        """SCAN MATCH pattern of every key of this app."""
        return glob_escape(self._p) + ":*"

    def trace_pattern(self) -> str:
        """SCAN MATCH pattern of every trace shard of this app."""
        return glob_escape(self.trace) + "*"

    @property
    def stats(self) -> str:
        return f"{self._p}:stats"

    @property
    def hold(self) -> str:
        return f"{self._p}:hold"

    @property
    def pause(self) -> str:
        return f"{self._p}:pause"

    @property
    def throughput(self) -> str:
        return f"{self._p}:throughput"

    @property
    def limit(self) -> str:
        return f"{self._p}:limit"

    def limiter(self, sdkappid: int | str) -> str:
        return f"{self._p}:limiter:{sdkappid}"

    @property
    def dispatch(self) -> str:
        return f"{self._p}:dispatch"

    @property
    def probed(self) -> str:
        return f"{self._p}:probed"

    @property
    def holds(self) -> str:
        return f"{self._p}:holds"

    @property
    def ok_groups(self) -> str:
        return f"{self._p}:okgroups"

    @property
    def versions(self) -> str:
        return f"{self._p}:versions"

    @property
    def version_ends(self) -> str:
        return f"{self._p}:version_ends"

    @property
    def replies(self) -> str:
        return f"{self._p}:replies"

    @property
    def reply_expiry(self) -> str:
        return f"{self._p}:reply_expiry"

    @property
    def wake(self) -> str:
        return f"{self._p}:wake"

    def pump_alarm(self, pump_id: str) -> str:
        return f"{self._p}:alarm:{pump_id}"

    @property
    def workers(self) -> str:
        return f"{self._d}:workers"

    @property
    def apps_seen(self) -> str:
        """Every app name that ever ran in this deployment (workers add theirs at start): finds orphaned backlogs."""
        return f"{self._d}:apps"

    def stats_pattern_of_every_app(self) -> str:
        """SCAN MATCH pattern of the ``stats`` key of every app under this prefix."""
        return "{" + glob_escape(self.prefix) + ":*}:stats"

    def app_of_stats_key(self, key: str) -> str | None:
        """The app whose ``stats`` key ``key`` is (from :meth:`stats_pattern_of_every_app`), else None."""
        head, tail = "{" + self.prefix + ":", "}:stats"
        if key.startswith(head) and key.endswith(tail) and len(key) > len(head) + len(tail):
            return key[len(head) : -len(tail)]
        return None

    @property
    def deployment_stats(self) -> str:
        """Counters of the deployment rather than of one app (a message rejected before its app was known)."""
        return f"{self._d}:stats"

    def web_revoked(self, session_id: str) -> str:
        """The record that console session ``session_id`` signed out (the deployment's, not an app's)."""
        return f"{self._d}:web:revoked:{session_id}"
