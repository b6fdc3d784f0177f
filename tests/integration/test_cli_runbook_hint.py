"""`imunban status` quotes the runbook entry of the current hold, with where the long form is."""

from __future__ import annotations

import redis

from helpers import Run
from imunban.hold import Hold
from imunban.keys import Keys


def test_status_quotes_the_runbook_for_the_hold(cli: Run, r: redis.Redis) -> None:
    """Held by 70009: status names what to do and docs/runbook.md#code-hold."""
    Hold(r, Keys()).set(70009, "UserSig verification failed: wrong secret key")
    rc, out, _ = cli("status", "--app", "default")
    flat = " ".join(out.split())
    assert rc == 0 and "what to do" in flat
    assert "docs/runbook.md#code-hold" in flat.replace(" ", "")
