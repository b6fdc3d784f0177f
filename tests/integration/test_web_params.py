"""Every query parameter of every page and API route: bad values are a 400 that names the parameter."""

from __future__ import annotations

import pytest
import redis
from starlette.testclient import TestClient

from web_helpers import OPERATOR, bearer, console_client

OP = bearer(OPERATOR)
#: What each route reads, with a value it accepts (so one bad parameter is tested at a time).
PAGE_PARAMS = {"app": "default", "done": "replay", "n": "3"}
ROUTES: dict[str, dict[str, str]] = {
    "/": PAGE_PARAMS,
    "/trace": {**PAGE_PARAMS, "group_id": "@TGS#g1", "member": "m1"},
    "/trace#member": {**PAGE_PARAMS, "member": "m1"},
    "/scheduled": {**PAGE_PARAMS, "offset": "0"},
    "/scheduled#group": {**PAGE_PARAMS, "group_id": "@TGS#g1", "offset": "50"},
    "/dead": {**PAGE_PARAMS, "code": "10004", "group_id": "@TGS#g1", "cursor": "0"},
    "/holds": PAGE_PARAMS,
    "/outcomes": PAGE_PARAMS,
    "/login": {"next": "/dead"},
    "/api/status": {"app": "default"},
    "/api/overview": {"app": "default"},
    "/api/trace": {"app": "default", "group_id": "@TGS#g1", "member": "m1"},
    "/api/trace#member": {"app": "default", "member": "m1"},
    "/api/scheduled": {"app": "default", "offset": "0", "limit": "50"},
    "/api/scheduled#group": {"app": "default", "group_id": "@TGS#g1", "offset": "0", "limit": "500"},
    "/api/dead": {"app": "default", "code": "-502", "group_id": "@TGS#g1", "cursor": "0", "limit": "1"},
    "/api/holds": {"app": "default"},
    "/api/outcomes": {"app": "default", "after": "1700000000000-0", "limit": "100"},
    "/events/overview": {"app": "default", "limit": "1"},
    "/events/outcomes": {"app": "default", "after": "0-0", "limit": "1"},
}
#: Values each parameter refuses.
BAD = {
    "app": ["\x01", "a" * 65, "é"],
    "done": ["nope", "replay!"],
    "n": ["-1", "x", "1e3", "9" * 30],
    "group_id": ["\x01", "g" * 49, "   ", "é"],
    "member": ["\x01", "m" * 33, " "],
    "offset": ["-1", "abc", "1.5", "9" * 30],
    "limit": ["0", "abc", "501", "-5"],
    "cursor": ["-1", "x"],
    "code": ["abc", "1.5", "9" * 30],
    "after": ["yesterday", "1-2-3", "-1", "1-", "9" * 30 + "-0"],
    "next": ["//evil.example/", "https://evil.example/", "dead", "/\x01"],
}
CASES = [
    pytest.param(route, name, bad, id=f"{route}?{name}={bad[:12]!r}")
    for route, params in ROUTES.items()
    for name in params
    for bad in BAD[name]
    # A stream's limit counts events (0: until the client leaves), with no page cap.
    if not (route.startswith("/events/") and name == "limit" and bad in ("0", "501"))
]


@pytest.fixture
def client(r: redis.Redis, redis_url: str) -> TestClient:
    return console_client(r, redis_url)


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_accepts_its_parameters(client: TestClient, route: str) -> None:
    """With every parameter at a good value each route answers 200 (validation refuses only bad input)."""
    response = client.get(route.split("#")[0], params=ROUTES[route], headers=OP)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("route", "name", "bad"), CASES)
def test_bad_parameter_is_a_400_naming_it(client: TestClient, route: str, name: str, bad: str) -> None:
    """A bad value of any parameter of any route is 400: JSON {error, field} for the API, a styled page otherwise."""
    response = client.get(route.split("#")[0], params={**ROUTES[route], name: bad}, headers=OP)
    assert response.status_code == 400, (response.status_code, response.text[:300])
    if route.startswith(("/api/", "/events/")):
        body = response.json()
        assert body["field"] == name and name in body["error"], body
    else:
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        assert '<link rel="stylesheet" href="/static/console.css">' in html
        assert f"<code>{name}</code>" in html, html


@pytest.mark.parametrize("route", ["/", "/api/status", "/api/overview", "/events/overview"])
def test_unknown_app_is_a_404_naming_it(client: TestClient, route: str) -> None:
    """A well-formed name of no app served is 404, naming the parameter."""
    response = client.get(route, params={"app": "gamma"}, headers=OP)
    assert response.status_code == 404
    if route != "/":
        assert response.json()["field"] == "app"
    else:
        assert "<code>app</code>" in response.text


def test_issue_examples(client: TestClient) -> None:
    """The inputs of the report: each a 400 (they were 500s, and an empty, dead stream)."""
    for path in ("/scheduled?group_id=%01", "/api/scheduled?group_id=%01", "/dead?group_id=" + "g" * 49,
                 "/api/dead?group_id=" + "g" * 49, "/api/outcomes?after=yesterday",
                 "/events/outcomes?after=yesterday"):  # fmt: skip
        assert client.get(path, headers=OP).status_code == 400, path


def test_htmx_requests_get_the_message_as_text(client: TestClient) -> None:
    """An htmx request's 400 is the message alone (console.js shows it as text), not a whole page."""
    response = client.get("/dead", params={"code": "abc"}, headers={**OP, "hx-request": "true"})
    assert response.status_code == 400 and response.headers["content-type"].startswith("text/plain")
    assert response.text.startswith("code: ")


def test_action_bodies_name_their_field(client: TestClient) -> None:
    """A JSON action with a bad "app", "code" or member is 400 naming it, and acts on nothing."""
    for body, field in (
        ({"app": 5, "all": True}, "app"),
        ({"all": True, "code": "x"}, "code"),
        ({"requests": [{"group_id": "@TGS#g1", "member": "\x01"}]}, "requests[0].member"),
    ):
        response = client.post("/api/dead/purge", json=body, headers=OP)
        assert response.status_code == 400 and response.json()["field"] == field, response.text
