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
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import redis

from imunban.heartbeat import Heartbeat
from imunban.hold import Hold
from imunban.keys import Keys
from imunban.producer import Producer
from imunban.web.sampler import Sample
from web_helpers import OPERATOR, bearer, console_app, make_dead, serving

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
    app = console_app(r, redis_url, sample=True)
    # The throughput chart plots the console's own samples; give it 15 minutes of a drain that just ended.
    sampler = app.state.console.apps["default"].sampler
    now_ms = int(r.time()[0]) * 1000
    total = 0
    for i in range(450):
        rate = 3600 if 120 < i < 330 else (40 + (i % 7) * 9)
        total += int(rate * 2)
        sampler._ring.append(Sample(now_ms - (450 - i) * 2000, total, total // 19))
    with serving(app) as base:
        browser.get(base + "/dead")
        assert "/login" in browser.current_url
        browser.find_element(By.NAME, "token").send_keys(OPERATOR)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        _wait(browser, ec.url_to_be(base + "/dead"))

        browser.get(base + "/")
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#chart canvas"))
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
    app = console_app(r, redis_url, sample=True)
    sampler = app.state.console.apps["default"].sampler
    total = 0
    for i in range(450):  # a steady trickle that stopped 50 s ago
        total += 0 if i > 425 else int((70 + 25 * math.sin(i / 25)) * 2)
        sampler._ring.append(Sample(now_ms - (450 - i) * 2000, total, total // 12))
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
