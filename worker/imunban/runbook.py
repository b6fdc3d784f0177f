"""The operator's runbook in short: one entry per ErrorCode class and per state, what it means and what to do.

docs/runbook.md is the long form, one section per entry under the anchor :attr:`Entry.anchor`
(``tests/unit/test_runbook.py`` checks that every class and state has its section there). The
console shows an entry's hint beside a hold, a dead letter or a state banner and links to its
``/runbook`` page; ``imunban status`` quotes the hint of the current hold. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from imunban.classify import (
    GLOBAL_CODES,
    GROUP_GONE_CODES,
    ISOLATE_CODES,
    PERMANENT_CODES,
    RATE_LIMIT_CODES,
    RENEW_CODES,
    TRANSIENT_CODES,
)

#: The ErrorCode classes, in the order of docs/runbook.md (what :func:`code_class` returns).
CODE_CLASSES = (
    "transport", "rate_limited", "transient", "renew", "hold", "isolate", "group_gone", "permanent", "unknown",
)  # fmt: skip
#: The states that need an operator (imunban.state), plus ``degraded`` (a note raised the level).
STATES = ("held", "paused", "stalled", "full", "degraded")
#: Where the long form lives in the repository (what the CLI prints; the console serves /runbook).
DOC = "docs/runbook.md"


@dataclass(frozen=True)
class Entry:
    """One runbook entry: its anchor in docs/runbook.md, a title, what it means, and what to do."""

    anchor: str
    title: str
    meaning: str
    action: str


CODE_ENTRIES: dict[str, Entry] = {
    "transport": Entry(
        "code-transport",
        "Transport failure (code 0)",
        "The call got no API answer: DNS, connect, TLS, timeout, or an HTTP status other than 200.",
        "Retried by itself. If it lasts, check the worker's network path to the region's domains (egress, "
        "proxy, DNS) and the API status page; dead letters with code 0 can be replayed once it is fixed.",
    ),
    "rate_limited": Entry(
        "code-rate_limited",
        "Rate limited (60007, 60011, 60018, 60019, 10006)",
        "Tencent asked to slow down; the shared limiter is pushed back so every worker slows.",
        "Nothing to do while it is occasional. If it persists, lower IMUNBAN_RATE_LIMIT (another system may "
        "call the same API of this SDKAppID) and make sure every worker shares one Redis limiter.",
    ),
    "transient": Entry(
        "code-transient",
        "Transient server error (10002, 60008, 60013, 60014, 70169, 70500)",
        "A server-side hiccup on Tencent's side; the members are retried with backoff.",
        "Nothing to do unless it lasts for minutes; then check the API status page. Requests past their "
        "maximum age end as dead letters and can be replayed.",
    ),
    "renew": Entry(
        "code-renew",
        "UserSig expired or invalidated (70001, 70052)",
        "The admin UserSig is renewed and the call retried once; a repeat holds delivery.",
        "If it holds, check the worker's clock (NTP) and that the app's secret key and admin identifier "
        "are the current ones, then press Probe now (or wait for the next probe).",
    ),
    "hold": Entry(
        "code-hold",
        "Configuration error: delivery held (10003, 10007, 60xxx, 70xxx account and signature codes)",
        "Every request of the app would fail the same way, so delivery is held: nothing is dead-lettered, "
        "probes lift the hold by themselves on the first success.",
        "Read the hold's code and info: fix the SDKAppID, secret key, admin identifier, region, IP allow "
        "list, package or feature switch it names, then press Probe now. 10007 can also mean one group type "
        "does not support the API.",
    ),
    "isolate": Entry(
        "code-isolate",
        "Bad member (10004, 10019, 70107)",
        "A member of the batch is invalid or not imported; the batch was split until only that member died.",
        "Check the member id at the producer (typo, deleted account, not imported into IM). Replay only "
        "after fixing it at the source; otherwise purge it.",
    ),
    "group_gone": Entry(
        "code-group_gone",
        "Group gone (10010)",
        "The group does not exist any more: every member of it ends as group_gone (no dead letter).",
        "Nothing to unban. If it is unexpected, check that producers send the right group id.",
    ),
    "permanent": Entry(
        "code-permanent",
        "Request can never succeed (10005, 10011, 10015, 60003, 60015, 70206, 70402)",
        "This one request is malformed for the API (bad group id, parameters, batch); it is dead-lettered.",
        "Fix the producer that sent it; replaying the same request fails again. Purge once understood.",
    ),
    "unknown": Entry(
        "code-unknown",
        "Unknown ErrorCode",
        "An ErrorCode imunban does not classify: retried a few times, then dead-lettered with its info.",
        "Look the code up in Tencent's error-code list, then replay or purge; report it so it gets a class.",
    ),
}

STATE_ENTRIES: dict[str, Entry] = {
    "held": Entry(
        "state-held",
        "Held",
        "A configuration error of the whole app holds delivery; probes retry it with backoff.",
        "Follow the entry of the hold's ErrorCode class (usually a wrong key, SDKAppID or region), fix it, "
        "then press Probe now.",
    ),
    "paused": Entry(
        "state-paused",
        "Paused",
        "An operator paused delivery (imunban pause or the console); requests stay queued.",
        "Read the pause's reason and who set it; resume (imunban resume or Resume delivery) when it is over.",
    ),
    "stalled": Entry(
        "state-stalled",
        "Stalled",
        "Requests are due but no worker is alive, or workers beat but none has claimed a batch.",
        "Start or restart the workers (docker compose ps, logs); check they reach the same Redis and the "
        "broker; after a Redis failover restart workers that still talk to the old primary.",
    ),
    "full": Entry(
        "state-full",
        "Redis full",
        "Redis is at maxmemory: intake is refused (producers get an error), delivery keeps draining.",
        "Raise maxmemory or free memory (purge old dead letters, shorten IMUNBAN_OUTCOME_STREAM_MAXLEN); "
        "producers re-send what was refused.",
    ),
    "degraded": Entry(
        "state-degraded",
        "Degraded",
        "Delivery runs but a note needs attention: a long due lag, memory over 90 %, or no live worker "
        "while requests are scheduled.",
        "Read the note: add workers or raise the rate limit for a lag, add memory before intake is refused, "
        "start a worker before the schedule comes due.",
    ),
}


def code_class(code: int) -> str:
    """The runbook class of an ErrorCode (0: transport), the same split as :func:`imunban.classify.classify`."""
    if code <= 0:
        return "transport"
    for name, codes in (
        ("rate_limited", RATE_LIMIT_CODES),
        ("transient", TRANSIENT_CODES),
        ("renew", RENEW_CODES),
        ("hold", GLOBAL_CODES),
        ("isolate", ISOLATE_CODES),
        ("group_gone", GROUP_GONE_CODES),
        ("permanent", PERMANENT_CODES),
    ):
        if code in codes:
            return name
    return "unknown"


def for_code(code: int) -> Entry:
    """The entry for a dead letter's or a hold's ErrorCode."""
    return CODE_ENTRIES[code_class(code)]


def for_state(state: str) -> Entry | None:
    """The entry for a state that needs an operator (None for delivering and idle)."""
    return STATE_ENTRIES.get(state)


def hint(entry: Entry) -> str:
    """One line: the title and what to do, with where to read more (the CLI's quote)."""
    return f"{entry.title}: {entry.action} ({DOC}#{entry.anchor})"
