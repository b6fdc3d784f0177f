"""`imunban enqueue --file` stopped part way by Redis says how far the file got, and re-sending it is safe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from helpers import Run
from imunban.cli.produce import STORE_ROUND
from imunban.errors import DurabilityError
from imunban.keys import Keys
from imunban.stats import status
from imunban.store import Store


def test_an_unconfirmed_round_names_what_was_stored_before_it(
    cli: Run, r: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WAIT unconfirmed in the second round: exit 2, the error counts the first round's requests and says re-send."""
    rows = STORE_ROUND + 1_000
    path = tmp_path / "bans.jsonl"
    path.write_text("".join(json.dumps({"group_id": f"g{i // 100}", "member": f"m{i}"}) + "\n" for i in range(rows)))
    real, calls = Store.enqueue, []

    def flaky(self: Store, requests: Any) -> Any:
        calls.append(1)
        if len(calls) > 1:
            raise DurabilityError("redis: enqueue: WAIT saw 0 of 1 replicas within 1000 ms")
        return real(self, requests)

    monkeypatch.setattr(Store, "enqueue", flaky)
    rc, _, err = cli("enqueue", "--file", str(path))
    assert rc == 2
    stored = status(r, Keys())["queued"]
    assert stored == STORE_ROUND
    assert f"{stored:,} of {rows:,} requests from the file's {rows} lines were stored" in err
    assert "sending the file again is safe" in err
