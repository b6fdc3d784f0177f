"""imunban.trace's pure part: a trace document in words, and the record format read back."""

from __future__ import annotations

from typing import Any

import pytest

from imunban.trace import kept_text, parse_record, summary


def fmt(ms: int | None) -> str:
    return f"T{ms}"


def doc(state: str, **fields: Any) -> dict[str, Any]:
    return {"state": state, "attempts": 0, "last_outcome": None, "superseded": None, **fields}


DELIVERED = {"outcome": "delivered", "at_ms": 5, "attempts": 2, "code": 0, "info": "", "version": None}
CANCELLED = {**DELIVERED, "outcome": "cancelled", "attempts": 0, "code": None}


@pytest.mark.parametrize(
    ("document", "text"),
    [
        (doc("ready", due_ms=1), "pending (due T1)"),
        (doc("scheduled", due_ms=2, last_outcome=DELIVERED), "pending (due T2)"),
        (doc("in_flight", lease_deadline_ms=3), "in flight (lease until T3)"),
        (doc("delivered", attempts=2, last_outcome=DELIVERED), "delivered at T5 after 2 attempts"),
        (
            doc("dead", attempts=1, dead={"code": 10004, "info": "bad", "at_ms": 7, "attempts": 1}),
            "dead at T7: ErrorCode 10004: bad, after 1 attempt",
        ),
        (
            doc("dead", attempts=3, last_outcome={**DELIVERED, "outcome": "dead", "code": 70402, "attempts": 3}),
            "dead at T5: ErrorCode 70402, after 3 attempts (its dead letter was purged)",
        ),
        (
            doc("group_gone", last_outcome={**DELIVERED, "outcome": "group_gone", "code": 10010}),
            "group gone at T5: ErrorCode 10010 (the group no longer exists)",
        ),
        (doc("cancelled", last_outcome=CANCELLED), "cancelled at T5"),
        (
            doc("cancelled", attempts=1, last_outcome={**CANCELLED, "version": 9, "attempts": 1}),
            "cancelled at T5 by an instruction with version 9, after 1 attempt that failed",
        ),
        (
            doc("superseded", superseded={"at_ms": 8, "ignored_version": 5, "applied_version": None}),
            "superseded: an instruction with version 5 was ignored at T8",
        ),
        (doc("never_seen"), "never seen: nothing pending, in flight or dead, and no outcome"),
        (
            doc("never_seen", trace_kept_s=3600, version=4, version_by_cancel=True, untraced=1200),
            "never seen: nothing pending, in flight or dead, and no outcome in the last 1 hour; a cancel with "
            "version 4 applied (lower versions are ignored) (1,200 outcomes went unrecorded while Redis was full)",
        ),
    ],
)
def test_summary_says_each_state_distinctly(document: dict[str, Any], text: str) -> None:
    """Each state has its own sentence: pending, in flight, delivered, dead, gone, cancelled, superseded, never seen."""
    assert summary(document, fmt) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(604_800, "7 days"), (86_400, "1 day"), (7_200, "2 hours"), (90, "90 s")]
)
def test_kept_text(seconds: int, text: str) -> None:
    """How long records are kept, in the largest whole unit."""
    assert kept_text(seconds) == text


def test_a_note_only_record_has_no_outcome() -> None:
    """A record written only by a stale instruction (no outcome yet) reads as a note with no outcome."""
    rec = parse_record("|||||17/5/7|")
    assert rec.outcome is None and rec.at_ms is None and rec.outcome_dict() is None
    assert rec.superseded is not None and (rec.superseded.ignored_version, rec.superseded.applied_version) == (5, 7)
