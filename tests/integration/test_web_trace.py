"""The console's trace (page and API) answers from the trace record and the live state, and rows link to it."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import redis

from imunban.keys import Keys
from imunban.settings import LingerPolicy
from imunban.store import Batch, Store
from imunban.validation import UnbanRequest
from web_helpers import OPERATOR, bearer, console_client, make_dead

KEYS = Keys()
OP = bearer(OPERATOR)


def deliver(store: Store, group: str, *members: str) -> None:
    store.enqueue([UnbanRequest(group, members)])
    batch = store.claim(group)
    assert isinstance(batch, Batch)
    store.ack(batch, "delivered")


def test_api_trace_says_delivered_after_the_stream_moved_on(r: redis.Redis, redis_url: str) -> None:
    """A member delivered, then 300 outcomes with the stream capped small: still delivered, with time and attempts."""
    store = Store(r, KEYS, linger=LingerPolicy(0), outcome_maxlen=1)
    deliver(store, "@TGS#g", "alice")
    for i in range(15):
        deliver(store, f"@TGS#h{i}", *(f"u{j}" for j in range(20)))
    assert not any(f["member"] == "alice" for _, f in r.xrange(KEYS.outcomes))
    client = console_client(r, redis_url)
    traced = client.get("/api/trace?group_id=%40TGS%23g&member=alice", headers=OP).json()
    assert (traced["state"], traced["attempts"], traced["last_outcome"]["outcome"]) == ("delivered", 1, "delivered")
    assert traced["summary"].startswith("delivered at ") and traced["summary"].endswith("after 1 attempt")
    page = client.get("/trace?group_id=%40TGS%23g&member=alice", headers=OP).text
    assert "state-delivered" in page and "after 1 attempt" in page
    assert "never seen" in client.get("/trace?group_id=%40TGS%23g&member=nobody", headers=OP).text


def test_the_member_search_box_finds_the_member_in_every_group(r: redis.Redis, redis_url: str) -> None:
    """Member alone (no group): the API lists its requests in every group; the page links each to its trace."""
    store = Store(r, KEYS, linger=LingerPolicy(0))
    deliver(store, "@TGS#a", "alice")
    make_dead(r, "@TGS#b", ["alice"], code=10004, info="bad member")
    client = console_client(r, redis_url)
    found = client.get("/api/trace?member=alice", headers=OP).json()
    assert found["found"] == 2 and {d["group_id"]: d["state"] for d in found["requests"]} == {
        "@TGS#a": "delivered", "@TGS#b": "dead",
    }  # fmt: skip
    page = client.get("/trace?member=alice", headers={**OP, "hx-request": "true"}).text
    assert "<html" not in page and "2 group(s)" in page
    links = {tuple(parse_qs(urlsplit(h).query)["group_id"]) for h in trace_links(page)}
    assert links == {("@TGS#a",), ("@TGS#b",)}
    assert client.get("/api/trace?group_id=%40TGS%23a", headers=OP).json()["field"] == "member"


def trace_links(page: str) -> list[str]:
    return [h.replace("&amp;", "&") for h in re.findall(r'href="(/trace\?[^"]*)"', page)]


def test_dead_outcome_and_scheduled_rows_link_to_their_trace(r: redis.Redis, redis_url: str) -> None:
    """Every dead letter, outcome and scheduled row links to /trace?group_id=G&member=M of its request."""
    make_dead(r, "@TGS#d", ["bob"])
    Store(r, KEYS, linger=LingerPolicy(0)).enqueue([UnbanRequest("@TGS#s", ("carol",), 4_102_444_800_000)])
    client = console_client(r, redis_url)
    for path, group, member in (
        ("/dead", "@TGS#d", "bob"),
        ("/outcomes", "@TGS#d", "bob"),
        ("/scheduled?group_id=%40TGS%23s", "@TGS#s", "carol"),
    ):
        queries = [parse_qs(urlsplit(h).query) for h in trace_links(client.get(path, headers=OP).text)]
        assert {"group_id": [group], "member": [member], "app": ["default"]} in queries, path
