"""The console in a real browser: sign in, live overview against `imunban status --json`, replay by clicking.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``;
``.ci/run`` installs them). Screenshots of every page are saved: the overview and the dead letters
into docs/ (the README shows them), the others into the test's temporary folder.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import redis
from starlette.responses import PlainTextResponse

from imunban.heartbeat import Heartbeat
from imunban.hold import Hold
from imunban.keys import Keys
from imunban.producer import Producer
from imunban.throughput import MINUTE_MS
from web_helpers import OPERATOR, VIEWER, bearer, console_app, make_dead, serving

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DOCS = Path(__file__).resolve().parents[2] / "docs"
MISSING = not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER))
pytestmark = pytest.mark.skipif(
    MISSING, reason="needs Debian's chromium and chromium-driver: sudo apt-get install -y chromium chromium-driver"
)

if not MISSING:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

KEYS = Keys()


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """Headless chromium with the flags that work in a container, and a fresh profile."""
    profile = tempfile.mkdtemp(prefix="imunban-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1440,1000", "--disable-dev-shm-usage"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _seed(r: redis.Redis) -> None:
    """A store an operator might meet: a backlog, a schedule, dead letters of a few kinds, two live workers."""
    producer = Producer.on(r)
    for g in range(6):
        producer.enqueue(f"@TGS#2Bqueue{g}", [f"user_{g}_{i:03d}" for i in range(20 + 7 * g)])
    for g in range(40):
        producer.enqueue(
            f"@TGS#2Bsched{g:02d}", [f"ban_{g}_{i:03d}" for i in range(25)], at=time.time() + 3600 * (g + 1)
        )
    make_dead(r, "@TGS#2Bdead01", [f"ghost_{i}" for i in range(5)], code=10004, info="member ghost does not exist")
    make_dead(r, "@TGS#2Bdead02", ["kicked_1", "kicked_2"], code=70402, info="the account is not a group member")
    make_dead(r, "@TGS#2Bdead03", ["alice"], code=0, info="HTTP 502 Bad Gateway")
    for worker in ("worker-a:4121", "worker-b:4188"):
        Heartbeat(r, KEYS, worker).beat()


def _history(r: redis.Redis, rates_per_s: list[float], calls_per_member: float) -> None:
    """Per-minute snapshots in Redis ending this minute, as the console's sampler writes them, at these rates."""
    now_minute = int(r.time()[0]) // 60
    first = now_minute - len(rates_per_s)
    delivered = 0
    members = {}
    for i, rate in enumerate([0.0, *rates_per_s]):
        minute = first + i
        delivered += int(rate * 60)
        members[f"{minute}:{minute * MINUTE_MS}:{delivered}:{int(delivered * calls_per_member)}"] = minute
    r.zadd(KEYS.throughput, members)


def _cli_status(redis_url: str) -> dict[str, int]:
    env = {**os.environ, "IMUNBAN_REDIS_URL": redis_url}
    out = subprocess.run([sys.executable, "-m", "imunban", "status", "--json"], env=env, check=True,
                         capture_output=True, text=True, timeout=60).stdout  # fmt: skip
    data: dict[str, int] = json.loads(out)
    return data


def _wait(driver: WebDriver, condition: object, timeout: float = 15) -> object:
    return WebDriverWait(driver, timeout).until(condition)  # type: ignore[arg-type]


def _number(driver: WebDriver, key: str) -> int:
    return int(driver.find_element(By.CSS_SELECTOR, f'[data-k="{key}"]').text.replace(",", ""))


def _no_csp_violations(driver: WebDriver) -> None:
    logs = [entry["message"] for entry in driver.get_log("browser")]
    assert not [m for m in logs if "Content Security Policy" in m or "Refused to" in m], logs


def test_console_in_a_browser(r: redis.Redis, redis_url: str, browser: WebDriver, tmp_path: Path) -> None:
    """Sign in; the live overview matches the CLI; replay one dead letter by clicking; every page renders."""
    _seed(r)
    # The charts draw the per-minute history kept in Redis; give it 24 hours with a drain 3 hours ago.
    rates = [3600 if 1200 < i < 1300 else 40 + (i % 7) * 9 + 30 * math.sin(i / 90) for i in range(24 * 60)]
    _history(r, rates, calls_per_member=1 / 19)
    app = console_app(r, redis_url, sample=True)
    with serving(app) as base:
        browser.get(base + "/dead")
        assert "/login" in browser.current_url
        browser.find_element(By.NAME, "token").send_keys(OPERATOR)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        _wait(browser, ec.url_to_be(base + "/dead"))

        browser.get(base + "/")
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#chart canvas"))
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#chart-calls canvas"))
        cli = _cli_status(redis_url)
        for key in ("queued", "scheduled", "in_flight", "dead"):
            assert _number(browser, f"status.{key}") == cli[key], key
        assert browser.find_element(By.ID, "state-pill").text == "DELIVERING"
        assert "worker-a:4121" in browser.find_element(By.ID, "workers").text
        time.sleep(0.5)
        browser.save_screenshot(str(DOCS / "console-overview.png"))

        browser.get(base + "/dead")
        assert "member ghost does not exist" in browser.page_source
        browser.save_screenshot(str(DOCS / "console-dead.png"))
        browser.find_element(By.CSS_SELECTOR, 'button[data-replay="kicked_2"]').click()
        flash = _wait(browser, ec.visibility_of_element_located((By.CSS_SELECTOR, ".flash")))
        assert "replayed 1 dead letter" in flash.text  # type: ignore[attr-defined]
        with httpx2.Client(base_url=base, headers=bearer(OPERATOR)) as api:
            traced = api.get("/api/trace", params={"group_id": "@TGS#2Bdead02", "member": "kicked_2"}).json()
            assert traced["state"] in ("scheduled", "ready")
            assert api.get("/api/dead").json()["total"] == 7
            assert api.get("/api/outcomes?limit=1").json()["entries"][0]["outcome"] == "audit"

        browser.get(base + "/trace")
        browser.find_element(By.NAME, "group_id").send_keys("@TGS#2Bdead01")
        browser.find_element(By.NAME, "member").send_keys("ghost_3")
        browser.find_element(By.CSS_SELECTOR, "form.toolbar button").click()
        _wait(browser, lambda d: "ErrorCode 10004" in d.find_element(By.ID, "trace-result").text)
        browser.save_screenshot(str(tmp_path / "console-trace.png"))

        browser.get(base + "/scheduled")
        browser.save_screenshot(str(tmp_path / "console-scheduled.png"))
        browser.get(base + "/scheduled?group_id=%40TGS%232Bsched03")
        browser.save_screenshot(str(tmp_path / "console-group.png"))

        browser.get(base + "/outcomes")
        make_dead(r, "@TGS#2Blive", ["late_member"], code=10004, info="arrived while watching")
        _wait(browser, lambda d: "late_member" in d.find_element(By.ID, "outcomes-tail").text)
        browser.save_screenshot(str(tmp_path / "console-outcomes.png"))
        # A row the live tail added links to its request's trace, which says what became of it.
        browser.find_element(By.ID, "outcomes-tail").find_element(By.LINK_TEXT, "late_member").click()
        _wait(browser, lambda d: "ErrorCode 10004: arrived while watching" in d.find_element(By.ID, "trace-one").text)

        Hold(r, KEYS).set(70001, "UserSig expired: renew it")
        browser.get(base + "/holds")
        assert "Delivery is held: ErrorCode 70001" in browser.page_source
        browser.save_screenshot(str(tmp_path / "console-holds.png"))
        browser.get(base + "/")
        _wait(browser, lambda d: d.find_element(By.ID, "state-pill").text == "HELD")
        assert browser.find_element(By.ID, "hold-banner").is_displayed()
        browser.save_screenshot(str(tmp_path / "console-overview-held.png"))
        _no_csp_violations(browser)
    print(f"screenshots: {DOCS} and {tmp_path}")


def test_bad_input_and_sign_out_in_a_browser(
    r: redis.Redis, redis_url: str, browser: WebDriver, tmp_path: Path
) -> None:
    """A bad filter shows its message above the page (htmx); a bad URL a styled page; after "Sign out" the old
    cookie, put back into the browser, no longer signs it in."""
    make_dead(r, "@TGS#2Bdead01", ["ghost_1"], code=10004, info="member ghost does not exist")
    with serving(console_app(r, redis_url, sample=True)) as base:
        browser.get(base + "/login")
        browser.find_element(By.NAME, "token").send_keys(OPERATOR)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        _wait(browser, ec.url_to_be(base + "/"))
        browser.get(base + "/dead")
        browser.find_element(By.NAME, "code").send_keys("abc")
        browser.find_element(By.CSS_SELECTOR, "form.toolbar button").click()
        shown = _wait(browser, ec.visibility_of_element_located((By.ID, "request-error")))
        assert shown.text.startswith("code: must be an integer")  # type: ignore[attr-defined]
        assert "member ghost does not exist" in browser.page_source  # the table is still there

        browser.get(base + "/scheduled?group_id=" + "g" * 49)
        assert "The parameter group_id is not valid." in browser.find_element(By.TAG_NAME, "body").text
        browser.save_screenshot(str(tmp_path / "console-bad-parameter.png"))

        browser.get(base + "/holds")
        cookie = browser.get_cookie("imunban_session")
        assert cookie is not None
        browser.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
        _wait(browser, ec.url_contains("/login"))
        browser.add_cookie({"name": "imunban_session", "value": cookie["value"], "path": "/"})
        browser.get(base + "/holds")
        assert "/login" in browser.current_url
        _no_csp_violations(browser)


def test_stalled_and_paused_in_a_browser(r: redis.Redis, redis_url: str, browser: WebDriver) -> None:
    """Due work and a worker silent for 42 s: the banner says DELIVERY STALLED with why. Pausing from the Holds
    page (a reason, a confirmation) shows DELIVERY PAUSED; the banner's button resumes (and, as the workers beat
    but never claim, the banner says stalled again). Screenshots into docs/."""
    producer = Producer.on(r)
    for g in range(4):
        producer.enqueue(f"@TGS#2Bqueue{g}", [f"user_{g}_{i:03d}" for i in range(300 + 40 * g)], at=time.time() - 50)
    producer.enqueue("@TGS#2Bsched", [f"ban_{i:03d}" for i in range(25)], at=time.time() + 3600)
    now_ms = int(r.time()[0]) * 1000
    r.hset(KEYS.workers, "worker-a:4121", now_ms - 42_000)  # its last tick: it died 42 s ago
    # A steady trickle for a day that stopped a minute ago.
    _history(r, [70 + 25 * math.sin(i / 25) for i in range(24 * 60 - 1)] + [0], calls_per_member=1 / 12)
    app = console_app(r, redis_url, sample=True)
    with serving(app) as base:
        browser.get(base + "/login")
        browser.find_element(By.NAME, "token").send_keys(OPERATOR)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        _wait(browser, ec.url_to_be(base + "/"))
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#chart canvas"))
        banner = browser.find_element(By.ID, "state-banner")
        assert banner.is_displayed() and "DELIVERY STALLED" in banner.text
        assert "no live worker for 4" in banner.text and "1,440 requests are due" in banner.text
        assert browser.find_element(By.ID, "state-pill").text == "STALLED"
        time.sleep(0.5)
        browser.save_screenshot(str(DOCS / "console-stalled.png"))

        Heartbeat(r, KEYS, "worker-a:4121").beat()  # the worker is back: only the pause stops delivery now
        Heartbeat(r, KEYS, "worker-b:4188").beat()
        browser.get(base + "/holds")
        browser.find_element(By.NAME, "reason").send_keys("Rotating the app's secret key (OPS-1234), back by 03:40")
        browser.find_element(By.CSS_SELECTOR, "form[action='/actions/pause'] button").click()
        browser.switch_to.alert.accept()
        flash = _wait(browser, ec.visibility_of_element_located((By.CSS_SELECTOR, ".flash")))
        assert "paused delivery of this app" in flash.text  # type: ignore[attr-defined]
        browser.get(base + "/")
        _wait(browser, lambda d: d.find_element(By.ID, "state-pill").text == "PAUSED")
        banner = browser.find_element(By.ID, "state-banner")
        assert "DELIVERY PAUSED" in banner.text and "OPS-1234" in banner.text
        time.sleep(0.5)
        browser.save_screenshot(str(DOCS / "console-paused.png"))

        browser.find_element(By.CSS_SELECTOR, "#banner-resume button").click()
        flash = _wait(browser, ec.visibility_of_element_located((By.CSS_SELECTOR, ".flash")))
        assert "resumed delivery" in flash.text  # type: ignore[attr-defined]
        # Resumed: these two "workers" beat but never claim, so after 30 s of due work the truth is stalled again.
        banner = browser.find_element(By.ID, "state-banner")
        assert "DELIVERY STALLED" in banner.text and "2 workers alive but no claim is recorded" in banner.text
        with httpx2.Client(base_url=base, headers=bearer(OPERATOR)) as api:
            entries = api.get("/api/outcomes?limit=2").json()["entries"]
        assert [(e["action"], e["role"], e["via"]) for e in entries] == [
            ("pause", "operator", "session"),
            ("resume", "operator", "session"),
        ]
        _no_csp_violations(browser)


def _sign_in(browser: WebDriver, base: str, token: str) -> None:
    browser.get(base + "/login")
    browser.find_element(By.NAME, "token").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(browser, ec.url_to_be(base + "/"))


def test_a_viewer_sees_no_action_buttons_in_a_browser(r: redis.Redis, redis_url: str, browser: WebDriver) -> None:
    """Signed in as a viewer: dead letters, a group's schedule and the holds page show no action button."""
    make_dead(r, "@TGS#2Bdead01", ["ghost_1"], code=10004, info="member ghost does not exist")
    Producer.on(r).enqueue("@TGS#2Bsched", ["ban_1"], at=time.time() + 3600)
    with serving(console_app(r, redis_url)) as base:
        _sign_in(browser, base, VIEWER)
        for path in ("/dead", "/scheduled?group_id=%40TGS%232Bsched", "/holds"):
            browser.get(base + path)
            labels = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "main button")]
            assert not [t for t in labels if t.startswith(("Replay", "Purge", "Cancel", "Send now", "Probe", "Pause"))]
        browser.get(base + "/dead")
        assert "member ghost does not exist" in browser.page_source  # the viewer sees the data, not the buttons
        _no_csp_violations(browser)


def test_redis_down_page_in_a_browser(browser: WebDriver) -> None:
    """A console whose Redis is unreachable shows the styled page naming it and what to check (no password)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    url = f"redis://:browser-secret-pw@127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5, decode_responses=True)
    with serving(console_app(client, url, tokens=False)) as base:
        browser.get(base + "/dead")
        card = browser.find_element(By.ID, "outage")
        assert "Redis unreachable" in card.text and f"127.0.0.1:{port}" in card.text
        assert "IMUNBAN_REDIS_URL" in card.text and "browser-secret-pw" not in browser.page_source
        assert card.value_of_css_property("border-radius") != "0px"  # the console's stylesheet applies
        _no_csp_violations(browser)


class _Proxy:
    """A reverse proxy in front of the console: only /imunban/... is passed on (prefix stripped); anything else is
    a 404 it records, as a real proxy under a prefix would never reach the console with it."""

    def __init__(self, app: object, prefix: str) -> None:
        self.app, self.prefix, self.missed = app, prefix, list[str]()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)  # type: ignore[operator]
            return
        if not path.startswith(self.prefix + "/"):
            self.missed.append(path)
            await PlainTextResponse("not behind the prefix", status_code=404)(scope, receive, send)
            return
        inner = path[len(self.prefix) :]
        await self.app({**scope, "path": inner, "raw_path": inner.encode()}, receive, send)  # type: ignore[operator]


def test_root_path_behind_a_prefix_in_a_browser(r: redis.Redis, redis_url: str, browser: WebDriver) -> None:
    """Behind a proxy at /imunban: sign in, the live overview with both charts, every nav link, a form action and
    its redirect all stay under the prefix; the proxy sees no request outside it."""
    make_dead(r, "@TGS#2Bdead01", ["ghost_1", "ghost_2"], code=10004, info="member ghost does not exist")
    _history(r, [50.0 + i % 30 for i in range(120)], calls_per_member=1 / 15)
    proxy = _Proxy(console_app(r, redis_url, sample=True, root_path="/imunban"), "/imunban")
    with serving(proxy) as host:  # type: ignore[arg-type]
        base = host + "/imunban"
        browser.get(base + "/dead")
        _wait(browser, ec.url_contains("/imunban/login"))
        browser.find_element(By.NAME, "token").send_keys(OPERATOR)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        _wait(browser, ec.url_to_be(base + "/dead"))
        browser.get(base + "/")
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#chart canvas"))
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#chart-calls canvas"))
        _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, '[data-k="status.dead"]').text == "2")
        for link in [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "header nav a")]:
            browser.get(str(link))
            assert browser.current_url.startswith(base + "/"), link
        browser.get(base + "/dead")
        browser.find_element(By.CSS_SELECTOR, 'button[data-replay="ghost_1"]').click()
        flash = _wait(browser, ec.visibility_of_element_located((By.CSS_SELECTOR, ".flash")))
        assert "replayed 1 dead letter" in flash.text  # type: ignore[attr-defined]
        assert browser.current_url.startswith(base + "/dead?")
        _no_csp_violations(browser)
    assert proxy.missed == [] or set(proxy.missed) <= {"/favicon.ico"}, proxy.missed


def test_send_now_in_a_browser(r: redis.Redis, redis_url: str, browser: WebDriver) -> None:
    """ "Send now" on a scheduled row: the request becomes ready (due now), the other stays scheduled, and the
    action is audited."""
    Producer.on(r).enqueue("@TGS#2Blater", ["ban_1", "ban_2"], at=time.time() + 3600)
    with serving(console_app(r, redis_url)) as base:
        _sign_in(browser, base, OPERATOR)
        browser.get(base + "/scheduled?group_id=%40TGS%232Blater")
        browser.find_element(By.CSS_SELECTOR, 'button[data-send-now="ban_2"]').click()
        flash = _wait(browser, ec.visibility_of_element_located((By.CSS_SELECTOR, ".flash")))
        assert "sent 1 request(s) now" in flash.text  # type: ignore[attr-defined]
        rows = {row.find_element(By.CSS_SELECTOR, "td.mono").text: row.text for row in
                browser.find_elements(By.CSS_SELECTOR, "table.table tbody tr")}  # fmt: skip
        assert "ready" in rows["ban_2"] and "scheduled" in rows["ban_1"]
        with httpx2.Client(base_url=base, headers=bearer(OPERATOR)) as api:
            entry = api.get("/api/outcomes?limit=1").json()["entries"][0]
        assert (entry["action"], entry["count"], entry["role"]) == ("send-now", "1", "operator")
        _no_csp_violations(browser)
