"""``imunban trace`` in process against the test server: one request, or a member in every group (imunban.trace)."""

from __future__ import annotations

import json

import pytest
import redis

import helpers
from helpers import Run
from imunban.deployment import open_deployment
from imunban.keys import Keys
from imunban.settings import Settings
from imunban.store import Batch
from imunban.validation import UnbanRequest

KEYS = Keys("imunban")
AT_ISO = "2030-01-01T00:00:00Z"
AT_MS = 1_893_456_000_000


def end_as(r: redis.Redis, group: str, member: str, outcome: str, code: int = 0, info: str = "") -> None:
    """Enqueue, claim and acknowledge one request with ``outcome`` under this file's keys (tests/helpers.py)."""
    helpers.end_as(r, group, member, outcome, code, info, keys=KEYS)


def test_trace_states(cli: Run, r: redis.Redis) -> None:
    """trace says pending (due ...), dead (with code), delivered (with attempts), cancelled and never seen apart."""
    cli("enqueue", "g", "ready1")
    cli("enqueue", "g", "later", "--at", AT_ISO)
    end_as(r, "x", "gone", "dead", 10004, "invalid member")
    end_as(r, "y", "done", "delivered")
    cli("enqueue", "g", "called_off", "--at", AT_ISO)
    cli("cancel", "g", "called_off")
    rc, out, _ = cli("trace", "g", "later")
    assert rc == 0 and ": scheduled" in out and "pending (due 2030-01-01T00:00:00.000Z" in out
    assert ": ready" in cli("trace", "g", "ready1")[1]
    out = cli("trace", "x", "gone")[1]
    assert "dead at " in out and "ErrorCode 10004: invalid member, after 1 attempt" in out
    assert "delivered at " in (out := cli("trace", "y", "done")[1]) and "after 1 attempt" in out
    assert "cancelled at " in cli("trace", "g", "called_off")[1]
    assert "never seen: nothing pending, in flight or dead" in cli("trace", "g", "nobody")[1]


def test_trace_json_with_last_outcome(cli: Run, r: redis.Redis) -> None:
    """trace --json gives the state, one number of attempts, the last outcome from the record and a summary."""
    end_as(r, "g", "a", "delivered")
    data = json.loads(cli("trace", "g", "a", "--json")[1])
    assert (data["state"], data["attempts"]) == ("delivered", 1)
    assert (data["last_outcome"]["outcome"], data["last_outcome"]["attempts"]) == ("delivered", 1)
    assert data["summary"].startswith("delivered at ")
    cli("enqueue", "g", "b", "--at", AT_ISO)
    data = json.loads(cli("trace", "g", "b", "--json")[1])
    assert (data["state"], data["due_ms"], data["attempts"], data["last_outcome"]) == ("scheduled", AT_MS, 0, None)


def test_trace_a_member_in_every_group(cli: Run, r: redis.Redis) -> None:
    """trace --member finds the member's ended requests in every group, with what became of each."""
    end_as(r, "g1", "alice", "delivered")
    end_as(r, "g2", "alice", "dead", 10004, "bad")
    rc, out, _ = cli("trace", "--member", "alice")
    assert rc == 0 and "2 group(s)" in out and "g1" in out and "g2" in out
    assert "delivered at " in out and "ErrorCode 10004" in out
    data = json.loads(cli("trace", "--member", "alice", "--json")[1])
    assert {d["group_id"]: d["state"] for d in data["requests"]} == {"g1": "delivered", "g2": "dead"}
    assert "no request ended in any group" in cli("trace", "--member", "nobody")[1]


def test_trace_answers_after_the_stream_moved_on(cli: Run, r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """With IMUNBAN_OUTCOME_STREAM_MAXLEN small and many outcomes since, the CLI still says delivered (the record)."""
    monkeypatch.setenv("IMUNBAN_OUTCOME_STREAM_MAXLEN", "1")
    store = open_deployment(Settings.from_env(), client=r).app().store  # what a worker acknowledges with
    for group, members in [("g", ["alice"]), *((f"h{i}", [f"u{j}" for j in range(20)]) for i in range(15))]:
        store.enqueue([UnbanRequest(group, tuple(members))])
        batch = store.claim(group)
        assert isinstance(batch, Batch)
        store.ack(batch, "delivered")
    assert not any(f["member"] == "alice" for _, f in r.xrange(KEYS.outcomes))
    assert "delivered at " in cli("trace", "g", "alice")[1]
