"""The console by role and behind a proxy: a viewer sees no action, a refusal is a page, every URL under the prefix,
"Send now" on a scheduled row, a favicon."""

from __future__ import annotations

import re
import time

import pytest
import redis
from starlette.testclient import TestClient

from imunban.errors import ConfigError
from imunban.keys import Keys
from imunban.producer import Producer
from imunban.settings import Settings, check_root_path
from imunban.trace import trace
from web_helpers import BASE, OPERATOR, VIEWER, bearer, console_client, make_dead, sign_in

KEYS = Keys()
ACTION_BUTTONS = ("Replay", "Purge", "Cancel selected", "Reschedule selected", "Send now", "Probe now",
                  "Pause delivery", "Resume delivery")  # fmt: skip


def _seed(r: redis.Redis) -> None:
    make_dead(r, "@TGS#dead", ["ghost"], code=10004, info="member ghost does not exist")
    Producer.on(r).enqueue("@TGS#later", ["m1", "m2"], at=time.time() + 3600)


def _pages(client: TestClient, prefix: str = "") -> dict[str, str]:
    pages = {}
    for path in ("/", "/dead", "/holds", "/scheduled", "/scheduled?group_id=%40TGS%23later", "/outcomes", "/trace"):
        response = client.get(prefix + path)
        assert response.status_code == 200, (path, response.text[:300])
        pages[path] = response.text
    return pages


def test_a_viewer_sees_no_action_button(r: redis.Redis, redis_url: str) -> None:
    """Signed in as a viewer, no page offers Replay, Purge, Cancel, Send now, Probe or Pause; an operator's does."""
    _seed(r)
    viewer = console_client(r, redis_url)
    sign_in(viewer, VIEWER)
    for path, page in _pages(viewer).items():
        buttons = re.findall(r"<button[^>]*>([^<]*)</button>", page)
        assert not [b for b in buttons if b.startswith(ACTION_BUTTONS)], (path, buttons)
        assert 'name="sel"' not in page, path
    operator = console_client(r, redis_url)
    sign_in(operator, OPERATOR)
    pages = _pages(operator)
    assert "Replay selected" in pages["/dead"] and "Send now" in pages["/scheduled?group_id=%40TGS%23later"]


def test_a_refused_action_is_a_styled_page(r: redis.Redis, redis_url: str) -> None:
    """A viewer's form post (a stale page, a crafted form) gets the console's styled 403 page, not bare text."""
    _seed(r)
    viewer = console_client(r, redis_url)
    csrf = sign_in(viewer, VIEWER)
    response = viewer.post("/actions/dead/purge", data={"csrf_token": csrf, "scope": "matching"},
                           headers={"origin": BASE})  # fmt: skip
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "console.css" in response.text and "needs the operator token" in response.text
    assert r.zcard(KEYS.dead) == 1
    api = viewer.post("/api/dead/purge", json={"all": True}, headers=bearer(VIEWER))
    assert api.status_code == 403 and "operator" in api.json()["error"]


def test_send_now_makes_a_scheduled_request_due_and_is_audited(r: redis.Redis, redis_url: str) -> None:
    """ "Send now" on one scheduled row moves that request to ready (due now), leaves the other, and is audited."""
    _seed(r)
    client = console_client(r, redis_url)
    csrf = sign_in(client, OPERATOR)
    response = client.post(
        "/actions/scheduled/send-now",
        data={"csrf_token": csrf, "group_id": "@TGS#later", "one": "m1"},
        headers={"origin": BASE},
    )
    assert response.status_code == 303 and "done=send-now" in response.headers["location"]
    assert trace(r, KEYS, "@TGS#later", "m1")["state"] == "ready"
    assert trace(r, KEYS, "@TGS#later", "m2")["state"] == "scheduled"
    audit = [f for _, f in r.xrange(KEYS.outcomes) if f["outcome"] == "audit"][-1]
    assert (audit["action"], audit["count"], audit["role"]) == ("send-now", "1", "operator")
    flash = client.get(response.headers["location"]).text
    assert "sent 1 request(s) now" in flash


def test_favicon_and_readiness_are_served_without_sign_in(r: redis.Redis, redis_url: str) -> None:
    """/favicon.ico and the page's icon answer 200 (no 404 in the browser's console); /readyz says ready."""
    client = console_client(r, redis_url)
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert client.get("/static/favicon.svg").status_code == 200
    assert client.get("/readyz").text == "ready" and client.get("/healthz").text == "ok"


URL_ATTRS = re.compile(r'(?:href|action|src|hx-get|formaction|data-events|data-history)="([^"]*)"')


@pytest.mark.parametrize("stripped", [True, False], ids=["proxy-strips-prefix", "proxy-keeps-prefix"])
def test_every_url_carries_the_root_path(r: redis.Redis, redis_url: str, stripped: bool) -> None:
    """Under --root-path /ops/imunban every link, form, asset, stream and redirect of every page starts with it,
    whether the proxy strips the prefix or passes it on."""
    _seed(r)
    prefix = "/ops/imunban"
    client = console_client(r, redis_url, root_path=prefix)
    ask = "" if stripped else prefix
    login = client.get(ask + "/dead")
    assert login.status_code == 303 and login.headers["location"] == prefix + "/login?next=/dead"
    signed = client.post(ask + "/login", data={"token": OPERATOR, "next": "/dead"}, headers={"origin": BASE})
    assert signed.headers["location"] == prefix + "/dead"
    for path, page in _pages(client, ask).items():
        urls = [u for u in URL_ATTRS.findall(page) if u.startswith("/")]
        assert urls, path
        assert all(u.startswith(prefix + "/") for u in urls), (path, [u for u in urls if not u.startswith(prefix)])
    page = client.get(ask + "/scheduled?group_id=%40TGS%23later").text
    csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    sent = client.post(ask + "/actions/scheduled/send-now", data={"csrf_token": csrf, "group_id": "@TGS#later",
                       "one": "m2"}, headers={"origin": BASE})  # fmt: skip
    assert sent.headers["location"].startswith(prefix + "/scheduled?")
    assert client.get(ask + "/static/console.css").status_code == 200
    assert client.get(ask + "/api/status", headers=bearer(OPERATOR)).json()["apps"]["default"]["scheduled"] == 1


def test_a_bad_root_path_is_refused_naming_it() -> None:
    """--root-path / IMUNBAN_WEB_ROOT_PATH: a prefix that would break links is refused with the reason."""
    assert check_root_path("/imunban/") == "/imunban" and check_root_path("/") == ""
    for bad in ("imunban", "/a b", "/a/../b", "/a//b", '/a"b'):
        with pytest.raises(ValueError):
            check_root_path(bad)
    with pytest.raises(ConfigError, match="IMUNBAN_WEB_ROOT_PATH"):
        Settings.from_env({"IMUNBAN_WEB_ROOT_PATH": "no-slash"})
    assert Settings.from_env({"IMUNBAN_WEB_ROOT_PATH": "/ops/"}).web_root_path == "/ops"
