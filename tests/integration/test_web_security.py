"""The console's security rules, each checked over HTTP (Starlette's TestClient against a real Redis)."""

from __future__ import annotations

import re

import pytest
import redis

from imunban.cli import main
from imunban.errors import ConfigError
from imunban.keys import Keys
from imunban.producer import Producer
from imunban.settings import Settings
from imunban.web.auth import COOKIE, check_bind
from web_helpers import BASE, OPERATOR, SECRET_KEY, VIEWER, bearer, console_client, make_dead, sign_in

KEYS = Keys()
#: Every page and GET endpoint of the console (the streams are bounded to one event).
GETS = [
    "/", "/trace?group_id=%40TGS%23g1&member=m1", "/scheduled", "/scheduled?group_id=%40TGS%23g2", "/dead",
    "/dead?code=10004", "/holds", "/outcomes", "/api/status", "/api/overview", "/api/dead", "/api/holds",
    "/api/trace?group_id=%40TGS%23g1&member=m1", "/api/scheduled", "/api/outcomes", "/events/overview?limit=1",
    "/events/outcomes?limit=1",
]  # fmt: skip
#: Every action (POST) with a body that would do something.
POSTS = [
    ("/api/dead/replay", {"all": True}), ("/api/dead/purge", {"all": True}),
    ("/api/cancel", {"group_id": "@TGS#g2", "members": ["s1"]}),
    ("/api/reschedule", {"group_id": "@TGS#g2", "members": ["s1"], "at": 4102444800}), ("/api/probe", {}),
    ("/api/pause", {"reason": "not yours to pause"}), ("/api/resume", {}),
]  # fmt: skip
FORMS = [
    ("/actions/dead/replay", {"scope": "matching"}), ("/actions/dead/purge", {"scope": "matching"}),
    ("/actions/scheduled/cancel", {"group_id": "@TGS#g2", "sel": "s1"}), ("/actions/probe", {}),
    ("/actions/pause", {"reason": "not yours to pause"}), ("/actions/resume", {}),
]  # fmt: skip


@pytest.fixture
def seeded(r: redis.Redis) -> redis.Redis:
    """A store with ready, scheduled and dead requests."""
    producer = Producer.on(r)
    producer.enqueue("@TGS#g1", ["m1", "m2"])
    producer.enqueue("@TGS#g2", ["s1", "s2"], at=4102444800)
    make_dead(r, "@TGS#g3", ["d1", "d2"])
    return r


def _snapshot(r: redis.Redis) -> dict[str, bytes | None]:
    raw = redis.Redis(connection_pool=r.connection_pool, decode_responses=False)
    return {key: raw.dump(key) for key in sorted(r.keys("*"))}


def test_viewer_may_look_and_operator_may_act(seeded: redis.Redis, redis_url: str) -> None:
    """The viewer token reads every page and API; the operator token acts (200 and a count)."""
    client = console_client(seeded, redis_url)
    for path in GETS:
        assert client.get(path, headers=bearer(VIEWER)).status_code == 200, path
    reply = client.post("/api/dead/replay", json={"requests": [{"group_id": "@TGS#g3", "member": "d1"}]},
                        headers=bearer(OPERATOR))  # fmt: skip
    assert reply.status_code == 200 and reply.json()["replayed"] == 1


def test_viewer_actions_are_forbidden(seeded: redis.Redis, redis_url: str) -> None:
    """Every action answers 403 to a viewer, by bearer and by session, and changes nothing."""
    client = console_client(seeded, redis_url)
    before = _snapshot(seeded)
    for path, body in POSTS:
        assert client.post(path, json=body, headers=bearer(VIEWER)).status_code == 403, path
    csrf = sign_in(client, VIEWER)
    for path, form in FORMS:
        response = client.post(path, data={**form, "csrf_token": csrf}, headers={"origin": BASE})
        assert response.status_code == 403, path
    assert _snapshot(seeded) == before


def test_no_credentials(seeded: redis.Redis, redis_url: str) -> None:
    """Without a token the API answers 401 (WWW-Authenticate: Bearer), pages send to /login, a wrong token is 401."""
    client = console_client(seeded, redis_url)
    response = client.get("/api/status")
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/status", headers=bearer("x" * 24)).status_code == 401
    page = client.get("/dead")
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/dead"
    assert client.post("/api/probe", json={}).status_code == 401
    assert client.get("/login").status_code == 200
    wrong = client.post("/login", data={"token": "not-the-token-at-all"}, headers={"origin": BASE})
    assert wrong.status_code == 401 and COOKIE not in wrong.cookies


def test_sign_in_cookie_is_httponly_strict_and_holds_no_token(seeded: redis.Redis, redis_url: str) -> None:
    """/login sets an HttpOnly, SameSite=Strict, signed cookie without the token; a tampered one is refused."""
    client = console_client(seeded, redis_url)
    response = client.post("/login", data={"token": OPERATOR, "next": "/dead"}, headers={"origin": BASE})
    assert response.status_code == 303 and response.headers["location"] == "/dead"
    header = response.headers["set-cookie"]
    assert "httponly" in header.lower() and "samesite=strict" in header.lower()
    value = response.cookies[COOKIE]
    assert OPERATOR not in value and VIEWER not in value
    assert client.get("/api/status").status_code == 200  # the cookie alone signs the API in too
    body, _, signature = value.rpartition(".")
    client.cookies.clear()
    client.cookies.set(COOKIE, body + "." + "0" * len(signature))
    assert client.get("/api/status").status_code == 401


def test_cookie_posts_need_csrf_and_same_origin(seeded: redis.Redis, redis_url: str) -> None:
    """A session POST without the CSRF token, or from another site, is 403; with both it acts."""
    client = console_client(seeded, redis_url)
    csrf = sign_in(client, OPERATOR)
    assert client.post("/api/probe", json={}).status_code == 403
    assert client.post("/api/probe", json={}, headers={"x-csrf-token": "wrong"}).status_code == 403
    cross = {"x-csrf-token": csrf, "origin": "https://evil.example"}
    assert client.post("/api/probe", json={}, headers=cross).status_code == 403
    fetch_cross = {"x-csrf-token": csrf, "sec-fetch-site": "cross-site"}
    assert client.post("/api/probe", json={}, headers=fetch_cross).status_code == 403
    form = {"scope": "matching", "csrf_token": csrf}
    assert client.post("/actions/dead/replay", data=form, headers={"origin": "https://evil.example"}).status_code == 403
    assert seeded.zcard(KEYS.dead) == 2
    ok = client.post("/actions/dead/replay", data=form, headers={"origin": BASE, "sec-fetch-site": "same-origin"})
    assert ok.status_code == 303 and seeded.zcard(KEYS.dead) == 0


def test_bearer_needs_no_csrf_but_cross_site_is_refused(seeded: redis.Redis, redis_url: str) -> None:
    """An API client with the operator token needs no CSRF token; a browser's cross-site POST is still 403."""
    client = console_client(seeded, redis_url)
    assert client.post("/api/probe", json={}, headers=bearer(OPERATOR)).status_code == 200
    cross = {**bearer(OPERATOR), "sec-fetch-site": "cross-site"}
    assert client.post("/api/probe", json={}, headers=cross).status_code == 403


def test_no_get_changes_anything(seeded: redis.Redis, redis_url: str) -> None:
    """Every page and GET endpoint leaves Redis byte-for-byte as it was."""
    client = console_client(seeded, redis_url)
    before = _snapshot(seeded)
    for path in GETS:
        assert client.get(path, headers=bearer(OPERATOR)).status_code == 200, path
    assert _snapshot(seeded) == before
    for path, _ in POSTS:
        assert client.get(path, headers=bearer(OPERATOR)).status_code == 405, path


def test_headers_and_no_inline_script(seeded: redis.Redis, redis_url: str) -> None:
    """CSP without inline script, framing denied; pages load scripts from files only, with no on* handlers."""
    client = console_client(seeded, redis_url)
    for path in [*GETS[:8], "/login"]:
        response = client.get(path, headers=bearer(OPERATOR))
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        html = response.text
        for tag, content in re.findall(r"(<script\b[^>]*>)(.*?)</script>", html, flags=re.DOTALL):
            assert "src=" in tag and not content.strip(), (path, tag)
        assert not re.search(r"\son[a-z]+\s*=", html), path
        assert "style=" not in html, path


def test_no_secret_or_usersig_is_ever_rendered(seeded: redis.Redis, redis_url: str) -> None:
    """Neither the secret key, a token, nor a usersig appears in any page or API answer."""
    client = console_client(seeded, redis_url)
    client.cookies.clear()
    for path in [*GETS, "/login"]:
        text = client.get(path, headers=bearer(OPERATOR)).text
        for needle in (SECRET_KEY, OPERATOR, VIEWER, "usersig", "TLS.sig"):
            assert needle not in text, (path, needle)


def test_every_action_is_audited(seeded: redis.Redis, redis_url: str) -> None:
    """An action appends an audit entry to the outcome stream: role, how signed in, what, how many."""
    client = console_client(seeded, redis_url)
    client.post("/api/dead/purge", json={"all": True, "code": 10004}, headers=bearer(OPERATOR))
    _entry_id, fields = seeded.xrevrange(KEYS.outcomes, count=1)[0]
    assert fields["outcome"] == "audit" and fields["action"] == "dead.purge" and fields["count"] == "2"
    assert fields["role"] == "operator" and fields["via"] == "bearer"
    assert fields["group_id"] == "" and fields["member"] == "" and fields["code"] == "0"


def test_without_tokens_loopback_only(seeded: redis.Redis, redis_url: str) -> None:
    """No token: only loopback Host names are served, scripts may act, browsers need the session's CSRF token."""
    client = console_client(seeded, redis_url, tokens=False)
    assert client.get("/api/status").status_code == 200
    assert client.get("/api/status", headers={"host": "evil.example:8321"}).status_code == 421
    assert client.post("/api/probe", json={}).status_code == 200  # curl on this machine: no Origin, no cookie
    assert client.post("/api/probe", json={}, headers={"origin": "https://evil.example"}).status_code == 403
    assert client.post("/api/probe", json={}, headers={"origin": BASE}).status_code == 403  # a browser, no token
    page = client.get("/dead")
    assert page.status_code == 200 and COOKIE in page.cookies  # the local session
    csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    assert client.post("/api/probe", json={}, headers={"origin": BASE, "x-csrf-token": csrf}).status_code == 200


def test_refuses_to_listen_beyond_loopback_without_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    """check_bind and `imunban web --host 0.0.0.0` refuse without a token and say what to set."""
    check_bind("127.0.0.1", Settings())
    check_bind("::1", Settings())
    with pytest.raises(ConfigError, match="IMUNBAN_WEB_OPERATOR_TOKEN"):
        check_bind("0.0.0.0", Settings())
    assert main(["web", "--host", "0.0.0.0", "--port", "8399"]) == 2
    assert "refusing to listen on '0.0.0.0' without a token" in capsys.readouterr().err
