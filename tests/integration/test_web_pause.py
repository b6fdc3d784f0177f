"""The console's pause and resume (operator only, CSRF, audited) and the banner of a paused or stalled app."""

from __future__ import annotations

import redis

from imunban.heartbeat import Heartbeat
from imunban.keys import Keys
from imunban.pause import Pause
from imunban.producer import Producer
from web_helpers import BASE, OPERATOR, VIEWER, bearer, console_client, sign_in

KEYS = Keys()
OP = bearer(OPERATOR)


def audits(r: redis.Redis) -> list[dict[str, str]]:
    return [fields for _, fields in r.xrange(KEYS.outcomes) if fields["outcome"] == "audit"]


def test_pause_and_resume_through_the_api_are_audited_and_shown(r: redis.Redis, redis_url: str) -> None:
    """POST /api/pause stops the app (status says paused, every page's banner says why); /api/resume ends it."""
    Producer.on(r).enqueue("@TGS#g", ["a", "b"])
    Heartbeat(r, KEYS, "w:1").beat()
    client = console_client(r, redis_url)
    answer = client.post("/api/pause", json={"reason": "DB migration until 04:00"}, headers=OP).json()
    assert answer == {"paused": 1, "newly": 1, "reason": "DB migration until 04:00", "app": "default"}
    doc = client.get("/api/status", headers=OP).json()
    assert doc["state"]["state"] == "paused" and doc["apps"]["default"]["pause"]["reason"] == "DB migration until 04:00"
    assert doc["queued"] == 2  # the backlog is untouched
    for path in ("/", "/dead", "/holds"):
        page = client.get(path, headers=OP).text
        assert 'class="state-banner state-paused"' in page and "DELIVERY PAUSED" in page, path
        assert "DB migration until 04:00" in page and 'id="banner-resume"' in page
    assert "Resume delivery" in client.get("/holds", headers=OP).text
    resumed = client.post("/api/resume", json={}, headers=OP).json()
    assert resumed["resumed"] == 1 and resumed["reason"] == "DB migration until 04:00"
    assert client.post("/api/resume", json={}, headers=OP).json()["resumed"] == 0
    assert 'class="state-banner hidden"' in client.get("/", headers=OP).text
    entries = audits(r)
    assert [(e["action"], e["count"], e["role"], e["via"]) for e in entries] == [
        ("pause", "1", "operator", "bearer"),
        ("resume", "1", "operator", "bearer"),
        ("resume", "0", "operator", "bearer"),
    ]
    assert entries[0]["client"] == "testclient"


def test_the_pause_form_needs_the_session_csrf_token_and_a_reason(r: redis.Redis, redis_url: str) -> None:
    """A signed-in operator pauses with the form (CSRF token), a missing reason is a 400 naming it, resume works."""
    client = console_client(r, redis_url)
    csrf = sign_in(client, OPERATOR)
    same = {"origin": BASE}
    assert client.post("/actions/pause", data={"reason": "x"}, headers=same).status_code == 403
    missing = client.post("/actions/pause", data={"reason": " ", "csrf_token": csrf}, headers=same)
    assert missing.status_code == 400 and "reason" in missing.text
    done = client.post("/actions/pause", data={"reason": "deploy", "csrf_token": csrf}, headers=same)
    assert done.status_code == 303 and "done=pause" in done.headers["location"]
    assert "paused delivery of this app" in client.get(done.headers["location"]).text
    paused = Pause(r, KEYS).get()
    assert paused is not None and paused.by == "operator (session) testclient"
    back = client.post("/actions/resume", data={"csrf_token": csrf, "back": "/"}, headers=same)
    assert back.status_code == 303 and back.headers["location"].startswith("/?")
    assert Pause(r, KEYS).get() is None


def test_a_viewer_sees_the_banner_but_no_resume_button(r: redis.Redis, redis_url: str) -> None:
    """The banner is for everyone; the resume button only for those who may act."""
    client = console_client(r, redis_url)
    client.post("/api/pause", json={"reason": "deploy"}, headers=OP)
    page = client.get("/", headers=bearer(VIEWER)).text
    assert "DELIVERY PAUSED" in page and 'id="banner-resume"' not in page


def test_a_stalled_app_says_so_on_every_page(r: redis.Redis, redis_url: str) -> None:
    """Due work and no live worker: the banner says DELIVERY STALLED and why; the overview's pill says STALLED."""
    Producer.on(r).enqueue("@TGS#g", ["a"])
    client = console_client(r, redis_url)
    for path in ("/", "/scheduled", "/outcomes"):
        page = client.get(path, headers=OP).text
        assert 'class="state-banner state-stalled"' in page and "DELIVERY STALLED" in page, path
        assert "no live worker (none has ticked within the last hour) while 1 request is due" in page
    overview = client.get("/", headers=OP).text
    assert '<span id="state-pill" class="pill state-stalled">STALLED</span>' in overview
    live = client.get("/api/overview", headers=OP).json()
    assert live["state"]["state"] == "stalled" and live["banner"]["title"] == "DELIVERY STALLED"


def test_a_healthy_app_shows_no_state_banner(r: redis.Redis, redis_url: str) -> None:
    """A live worker and work just due: delivering, no banner."""
    Producer.on(r).enqueue("@TGS#g", ["a"])
    Heartbeat(r, KEYS, "w:1").beat()
    page = console_client(r, redis_url).get("/", headers=OP).text
    assert 'class="state-banner hidden"' in page
    assert '<span id="state-pill" class="pill state-delivering">DELIVERING</span>' in page


def test_the_console_sets_and_resets_the_live_limit(r: redis.Redis, redis_url: str) -> None:
    """POST /api/limit (operator) sets the rate, shown on /holds and in /api/status; the form resets it; a viewer
    may not; a bad rate is a 400 naming the field; each change is audited with the console's role."""
    client = console_client(r, redis_url)
    answer = client.post("/api/limit", json={"rate": 150}, headers=OP).json()
    assert answer["effective_per_s"] == 150.0 and answer["source"] == "live" and answer["replaced_per_s"] is None
    assert client.get("/api/status", headers=OP).json()["apps"]["default"]["rate_limit"]["live_per_s"] == 150.0
    assert "Back to the configured limit" in client.get("/holds", headers=OP).text
    bad = client.post("/api/limit", json={"rate": 0}, headers=OP)
    assert bad.status_code == 400 and "rate" in bad.text
    assert client.post("/api/limit", json={"rate": 100}, headers=bearer(VIEWER)).status_code == 403
    csrf = sign_in(client, OPERATOR)
    done = client.post("/actions/limit", data={"reset": "1", "csrf_token": csrf}, headers={"origin": BASE})
    assert done.status_code == 303 and "done=unlimit" in done.headers["location"]
    assert not r.exists(KEYS.limit)
    assert [(e["action"], e["role"]) for e in audits(r)] == [("limit", "operator"), ("limit", "operator")]
