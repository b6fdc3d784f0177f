"""The console's JSON API and pages do what they say, through the engine's normal paths."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx2
import pytest
import redis
from starlette.testclient import TestClient

from imunban import __version__
from imunban.apps import AppConfig, Apps
from imunban.deployment import open_deployment
from imunban.health import add_app_state, add_states, thresholds
from imunban.hold import Hold
from imunban.keys import Keys
from imunban.livelimit import add_limit, add_limits
from imunban.producer import Producer
from imunban.settings import LingerPolicy, Settings
from imunban.stats import status, status_of_apps
from imunban.store import HELD, Store
from imunban.validation import UnbanRequest
from imunban.web.app import create_app
from web_helpers import (
    BASE,
    OPERATOR,
    VIEWER,
    bearer,
    console_app,
    console_client,
    console_settings,
    make_dead,
    serving,
)

KEYS = Keys()
OP = bearer(OPERATOR)


def test_status_is_the_cli_document(r: redis.Redis, redis_url: str) -> None:
    """GET /api/status is the document `imunban status --json` prints (same keys, same numbers)."""
    Producer.on(r).enqueue("@TGS#g1", ["a", "b"])
    make_dead(r, "@TGS#g2", ["x"])
    client = console_client(r, redis_url)
    api = client.get("/api/status", headers=OP).json()
    cli = status_of_apps(r, [Keys("imunban")])  # `imunban status --json`: the totals and `apps`, with their states
    add_states(r, [Keys("imunban")], cli, thresholds(Settings()))
    deployment = open_deployment(Settings(), client=r)
    add_limits(deployment, cli)  # and each app's rate limit
    assert set(api) == set(cli) and set(api["apps"]) == {"default"}
    assert _timeless(api) == _timeless(cli)
    assert api["state"]["state"] == api["apps"]["default"]["state"]["state"] == "stalled"  # due work, no worker
    # ?app=NAME is `imunban status --app NAME --json`: that app's document alone.
    one = status(r, Keys())
    add_app_state(r, Keys(), one, thresholds(Settings()))
    add_limit(deployment.app("default").limit, one)
    assert _timeless(client.get("/api/status?app=default", headers=OP).json()) == _timeless(one)


def _timeless(doc: dict[str, object]) -> dict[str, object]:
    """A status document without its clock readings (they move between two reads): the state's name and level."""
    out = {k: v for k, v in doc.items() if k not in ("server_time_ms", "state")}
    if isinstance(doc.get("state"), dict):
        out["state"] = {k: doc["state"][k] for k in ("state", "level")}  # type: ignore[index]
    if isinstance(doc.get("apps"), dict):
        out["apps"] = {name: _timeless(s) for name, s in doc["apps"].items()}  # type: ignore[union-attr]
    return out


def two_app_console(r: redis.Redis, redis_url: str) -> TestClient:
    """A console over apps ``alpha`` and ``beta`` (their own keys, SDKAppIDs and limits) on one Redis."""
    apps = Apps(
        [
            AppConfig(name, sdkappid, rate_limit_per_s=limit, base_url="http://127.0.0.1:1")
            for name, sdkappid, limit in (("alpha", 1400000001, 190.0), ("beta", 1400000002, 95.0))
        ]
    )
    deployment = open_deployment(console_settings(redis_url), client=r, apps=apps)
    return TestClient(create_app(deployment, sample=False), base_url=BASE, follow_redirects=False)


def test_two_apps_switcher_totals_status_and_actions(r: redis.Redis, redis_url: str) -> None:
    """With two apps: /api/status is the CLI's document with both, pages keep ?app=, actions reach the app named."""
    Producer(open_deployment(Settings(), client=r, apps=Apps([AppConfig("alpha")]))).bulk(
        [{"group_id": "@TGS#a", "members": ["a1", "a2"]}]
    )
    beta = Store(r, Keys("imunban", "beta"), linger=LingerPolicy(0))
    beta.enqueue([UnbanRequest("@TGS#b", ("b1",)), UnbanRequest("@TGS#bad", ("x",))])
    batch = beta.claim("@TGS#bad")
    assert batch is not None and not isinstance(batch, type(HELD))
    beta.ack(batch, "dead", code=10004, info="bad member")
    client = two_app_console(r, redis_url)

    doc = client.get("/api/status", headers=OP).json()
    both = [Keys("imunban", "alpha"), Keys("imunban", "beta")]
    cli = status_of_apps(r, both)
    add_states(r, both, cli, thresholds(Settings()))
    limits = Apps([AppConfig("alpha", rate_limit_per_s=190.0), AppConfig("beta", rate_limit_per_s=95.0)])
    add_limits(open_deployment(Settings(), client=r, apps=limits), cli)
    assert doc["apps"]["beta"]["rate_limit"]["effective_per_s"] == 95.0
    assert _timeless(doc) == _timeless(cli)
    assert doc["state"]["reason"].startswith("app alpha: no live worker")  # the worst app, named
    assert (doc["queued"], doc["dead"], doc["apps"]["alpha"]["queued"], doc["apps"]["beta"]["dead"]) == (3, 1, 2, 1)
    assert client.get("/api/status?app=beta", headers=OP).json()["queued"] == 1
    assert client.get("/api/status?app=gamma", headers=OP).status_code == 404

    page = client.get("/?app=beta", headers=OP).text
    # The switcher lists both apps, beta chosen; the overview shows every app and the totals.
    assert '<select id="app-switch" name="app"' in page
    assert '<option value="alpha">alpha · 1400000001</option>' in page
    assert '<option value="beta" selected>beta · 1400000002</option>' in page
    assert 'id="all-apps"' in page and '<a href="/?app=alpha">alpha</a>' in page
    # Every link of the page keeps the app (nav, dead-letter card, hold banner); events too.
    for link in ('href="/trace?app=beta"', 'href="/dead?app=beta"', 'href="/holds?app=beta"',
                 'data-events="/events/overview?app=beta"'):  # fmt: skip
        assert link in page, link
    assert client.get("/dead?app=beta", headers=OP).text.count("@TGS#bad") >= 1
    assert "@TGS#bad" not in client.get("/dead?app=alpha", headers=OP).text
    scheduled = client.get("/scheduled?app=alpha", headers=OP).text
    assert '<input type="hidden" name="app" value="alpha">' in scheduled
    assert client.get("/?app=gamma", headers=OP).status_code == 404

    # An action names its app: beta's dead letter is purged, alpha is untouched, the audit says beta.
    purged = client.post("/api/dead/purge", json={"app": "beta", "all": True}, headers={**OP, "origin": BASE})
    assert purged.json() == {"purged": 1}
    assert status(r, Keys("imunban", "beta"))["dead"] == 0
    audit = [f for _, f in r.xrange(Keys("imunban", "beta").outcomes) if f["outcome"] == "audit"]
    assert [(f["action"], f["app"]) for f in audit] == [("dead.purge", "beta")]
    assert r.xlen(Keys("imunban", "alpha").outcomes) == 0


def test_dead_letters_filter_page_replay_purge(r: redis.Redis, redis_url: str) -> None:
    """Filter by code and group, page with the cursor, replay one (it is pending again), purge the matching."""
    make_dead(r, "@TGS#g1", [f"m{i}" for i in range(30)], code=10004)
    make_dead(r, "@TGS#g2", ["n1", "n2"], code=70402, info="not a member")
    client = console_client(r, redis_url)
    page = client.get("/api/dead?limit=10", headers=OP).json()
    assert page["total"] == 32 and len(page["items"]) == 10 and page["next_cursor"] == 10
    by_code = client.get("/api/dead?code=70402", headers=OP).json()
    assert {i["member"] for i in by_code["items"]} == {"n1", "n2"} and by_code["next_cursor"] is None
    by_group = client.get("/api/dead?group_id=%40TGS%23g1&limit=500", headers=OP).json()
    assert len(by_group["items"]) == 30 and all(i["code"] == 10004 for i in by_group["items"])
    replayed = client.post("/api/dead/replay", json={"requests": [{"group_id": "@TGS#g2", "member": "n1"}]}, headers=OP)
    assert replayed.json()["replayed"] == 1 and replayed.json()["skipped"] == 0
    traced = client.get("/api/trace?group_id=%40TGS%23g2&member=n1", headers=OP).json()
    assert traced["state"] in ("scheduled", "ready") and traced["last_outcome"]["outcome"] == "dead"
    purged = client.post("/api/dead/purge", json={"all": True, "group_id": "@TGS#g1"}, headers=OP).json()
    assert purged == {"purged": 30}
    assert client.get("/api/dead", headers=OP).json()["total"] == 1


def test_cancel_and_reschedule(r: redis.Redis, redis_url: str) -> None:
    """Cancel removes a pending request; reschedule moves one to the new time, keeping its priority."""
    producer = Producer.on(r)
    producer.enqueue("@TGS#g1", ["a", "b"], at=4102444800)
    producer.enqueue("@TGS#g1", ["c"], at=4102444800, priority="high")
    client = console_client(r, redis_url)
    assert client.post("/api/cancel", json={"group_id": "@TGS#g1", "members": ["a"]}, headers=OP).json() == {
        "cancelled": 1
    }
    moved = client.post("/api/reschedule", json={"group_id": "@TGS#g1", "members": ["c", "zz"], "at": 4133980800},
                        headers=OP)  # fmt: skip
    assert moved.json() == {"rescheduled": 1}  # zz was never pending: not brought to life
    group = client.get("/api/scheduled?group_id=%40TGS%23g1", headers=OP).json()
    items = {i["member"]: i for i in group["items"]}
    assert set(items) == {"b", "c"} and items["c"]["due_ms"] == 4133980800000 and items["c"]["priority"] == "high"
    groups = client.get("/api/scheduled", headers=OP).json()
    assert groups["total_groups"] == 1 and groups["groups"][0]["scheduled"] == 2
    bad = client.post("/api/reschedule", json={"group_id": "@TGS#g1", "members": ["b"], "at": "soon"}, headers=OP)
    assert bad.status_code == 400 and "at" in bad.json()["error"]


def test_probe_now_and_holds(r: redis.Redis, redis_url: str) -> None:
    """POST /api/probe makes a held app's next probe due now; without a hold it says so."""
    client = console_client(r, redis_url)
    assert client.post("/api/probe", json={}, headers=OP).json()["probe"] == 0
    hold = Hold(r, KEYS, probe_base_ms=600_000)
    hold.set(70001, "sig expired")
    assert (hold.get() or pytest.fail("no hold")).next_probe_ms > time.time() * 1000 + 60_000
    assert client.post("/api/probe", json={}, headers=OP).json()["probe"] == 1
    assert (hold.get() or pytest.fail("no hold")).next_probe_ms <= time.time() * 1000 + 1000
    holds = client.get("/api/holds", headers=OP).json()
    assert holds["hold"]["code"] == 70001 and holds["history"] == []
    page = client.get("/holds", headers=OP).text
    assert "Delivery is held: ErrorCode 70001" in page and "DELIVERY HELD" in page


def test_pages_render(r: redis.Redis, redis_url: str) -> None:
    """Each page renders its data: overview numbers, a trace, a group's requests, dead letters, outcomes."""
    Producer.on(r).enqueue("@TGS#g1", ["alice"], at=4102444800)
    make_dead(r, "@TGS#g9", ["bob"], code=10004, info="member bob bad")
    client = console_client(r, redis_url)
    assert 'data-k="status.dead" data-f="num"><a href="/dead">1</a>' in client.get("/", headers=OP).text
    assert "scheduled" in client.get("/trace?group_id=%40TGS%23g1&member=alice", headers=OP).text
    assert "alice" in client.get("/scheduled?group_id=%40TGS%23g1", headers=OP).text
    dead = client.get("/trace?group_id=%40TGS%23g9&member=bob", headers={**OP, "hx-request": "true"}).text
    assert "ErrorCode 10004: member bob bad" in dead and "<html" not in dead  # htmx gets the fragment
    assert "member bob bad" in client.get("/dead?code=10004", headers=OP).text
    assert "member bob bad" in client.get("/outcomes", headers=OP).text


@pytest.fixture
def served(r: redis.Redis, redis_url: str) -> Iterator[str]:
    """The console under uvicorn on a loopback port, as `imunban web` serves it."""
    with serving(console_app(r, redis_url, sample=True)) as base:
        yield base


def test_over_loopback_with_uvicorn(r: redis.Redis, served: str) -> None:
    """Over a real socket: 401 without a token, a viewer reads, a viewer's action is 403, the overview streams."""
    make_dead(r, "@TGS#g1", ["x"])
    with httpx2.Client(base_url=served, timeout=10) as http:
        assert http.get("/api/status").status_code == 401
        assert http.get("/api/status", headers=bearer(VIEWER)).json()["dead"] == 1
        assert http.post("/api/dead/purge", json={"all": True}, headers=bearer(VIEWER)).status_code == 403
        with http.stream("GET", "/events/overview?limit=1", headers=bearer(VIEWER)) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            text = "".join(stream.iter_text())
        assert text.startswith("event: overview\ndata: {") and '"dead":1' in text
        assert http.get("/static/vendor/htmx.min.js").status_code == 200


def test_footer_shows_the_version(r: redis.Redis, redis_url: str) -> None:
    """Every page's footer says which imunban version serves it."""
    page = console_client(r, redis_url).get("/", headers=bearer(VIEWER)).text
    assert f"imunban {__version__} · Times are UTC" in page
