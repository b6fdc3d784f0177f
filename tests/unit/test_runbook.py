"""The runbook: every ErrorCode class and every state has an entry, here and in docs/runbook.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from imunban import runbook
from imunban.classify import CODE_INFO, classify
from imunban.errors import (
    GroupGoneError,
    HoldError,
    IsolateError,
    PermanentError,
    RateLimitedError,
    RenewSigError,
    RetryableError,
    TransportError,
    UnknownApiError,
)
from imunban.state import STATES

DOC = Path(__file__).resolve().parents[2] / "docs" / "runbook.md"
#: The class of classify()'s exception, as the runbook names it.
CLASS_OF = {
    TransportError: "transport", RateLimitedError: "rate_limited", RetryableError: "transient",
    RenewSigError: "renew", HoldError: "hold", IsolateError: "isolate", GroupGoneError: "group_gone",
    PermanentError: "permanent", UnknownApiError: "unknown",
}  # fmt: skip


def test_every_code_class_and_state_has_an_entry() -> None:
    """Each class and each state that needs an operator has an entry with a meaning and an action."""
    assert set(runbook.CODE_ENTRIES) == set(runbook.CODE_CLASSES) == set(CLASS_OF.values())
    needs_operator = set(STATES) - {"delivering", "idle"}
    assert needs_operator | {"degraded"} == set(runbook.STATES) == set(runbook.STATE_ENTRIES)
    for entry in [*runbook.CODE_ENTRIES.values(), *runbook.STATE_ENTRIES.values()]:
        assert entry.title and entry.meaning and entry.action


@pytest.mark.parametrize(
    "anchor", [e.anchor for e in [*runbook.CODE_ENTRIES.values(), *runbook.STATE_ENTRIES.values()]]
)
def test_every_entry_has_its_section_in_the_doc(anchor: str) -> None:
    """docs/runbook.md has a section under each entry's anchor, with what it means and what to do."""
    text = DOC.read_text(encoding="utf-8")
    marker = f'<a id="{anchor}"></a>'
    assert marker in text, anchor
    section = text.split(marker, 1)[1].split("<a id=", 1)[0]
    assert "**Means.**" in section and "**Do.**" in section, anchor


@pytest.mark.parametrize("code", [0, *CODE_INFO, 12345, 99999])
def test_code_class_agrees_with_classify(code: int) -> None:
    """A code's runbook class is the class classify() gives it (0 is a transport failure)."""
    error = classify(code, "", 502 if code == 0 else None)
    assert error is not None
    assert runbook.code_class(code) == CLASS_OF[type(error)]


def test_hint_names_the_doc_and_anchor() -> None:
    """The CLI's one-line quote carries the action and where the long form is."""
    line = runbook.hint(runbook.for_code(70009))
    assert line.startswith("Configuration error") and line.endswith("(docs/runbook.md#code-hold)")
    assert runbook.for_state("delivering") is None
    assert runbook.for_state("stalled") == runbook.STATE_ENTRIES["stalled"]
