"""The outcome stream as docs/outcomes.md describes it: key, fields, and reading it with a consumer group."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import redis

from imunban.keys import Keys
from imunban.settings import LingerPolicy
from imunban.store import Batch, Store
from imunban.validation import UnbanRequest

DOC = Path(__file__).resolve().parents[2] / "docs" / "outcomes.md"
STREAM, GROUP = "{imunban:default}:outcomes", "moderation-log"


def documented_fields() -> list[str]:
    """Field names from the table under '## Fields' in the document."""
    section = DOC.read_text().split("## Fields", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(\w+)` \|", section, re.M)


def end(store: Store, group: str, members: tuple[str, ...], outcome: str, code: int = 0, info: str = "") -> None:
    store.enqueue([UnbanRequest(group, members)])
    batch = store.claim(group)
    assert isinstance(batch, Batch)
    store.ack(batch, outcome, code=code, info=info)


def test_entries_have_the_documented_fields(r: redis.Redis) -> None:
    """Each outcome entry has exactly the fields the document lists, under the documented key."""
    store = Store(r, Keys("imunban"), linger=LingerPolicy(0))
    end(store, "g", ("a",), "delivered")
    end(store, "h", ("b",), "dead", 10004, "invalid member")
    entries = cast(list[tuple[str, dict[str, str]]], r.xrange(STREAM))
    assert [f["outcome"] for _, f in entries] == ["delivered", "dead"]
    for _, fields in entries:
        assert sorted(fields) == sorted(documented_fields())
    dead = entries[1][1]
    assert (dead["code"], dead["info"], dead["attempts"]) == ("10004", "invalid member", "1")
    assert int(dead["at_ms"]) >= int(dead["due_ms"])


def test_consumer_group_flow_from_the_document(r: redis.Redis) -> None:
    """XGROUP CREATE ... MKSTREAM, XREADGROUP '>', XACK: each entry is handed out once and then acknowledged."""
    r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)  # before imunban wrote anything
    store = Store(r, Keys("imunban"), linger=LingerPolicy(0))
    end(store, "g", ("a", "b"), "delivered")
    reply = cast(list[Any], r.xreadgroup(GROUP, "host-1", {STREAM: ">"}, count=100, block=1000))
    entries: list[tuple[str, dict[str, str]]] = reply[0][1]
    assert sorted(f["member"] for _, f in entries) == ["a", "b"]
    assert r.xreadgroup(GROUP, "host-1", {STREAM: ">"}, count=100, block=10) == []
    assert r.xpending(STREAM, GROUP)["pending"] == 2
    assert r.xack(STREAM, GROUP, *(entry_id for entry_id, _ in entries)) == 2
    assert r.xpending(STREAM, GROUP)["pending"] == 0


def test_stream_is_capped(r: redis.Redis) -> None:
    """The stream is trimmed to about the configured length (MAXLEN ~)."""
    store = Store(r, Keys("imunban"), linger=LingerPolicy(0), outcome_maxlen=100)
    for i in range(30):
        end(store, f"g{i}", tuple(f"u{j}" for j in range(20)), "delivered")
    assert 100 <= r.xlen(STREAM) < 600


def test_each_entry_says_its_app(r: redis.Redis) -> None:
    """The app comes from the stream's own hash tag: each app's entries name that app (prefixes with ':' too)."""
    for prefix, app in (("imunban", "default"), ("imunban", "beta"), ("acme:prod", "eu-1")):
        keys = Keys(prefix, app)
        end(Store(r, keys, linger=LingerPolicy(0)), "g", ("a",), "delivered")
        entries = cast(list[tuple[str, dict[str, str]]], r.xrange(keys.outcomes))
        assert [f["app"] for _, f in entries] == [app]
