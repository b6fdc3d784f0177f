"""The API simulator: acceptance of official sigs, each rejection code, rate limit, faults, counters, CLI."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import TLSSigAPIv2

from imunban.api import UNBAN_PATH
from imunban.apps import AppConfig
from imunban.cli import main
from imunban.secret import Secret
from imunban.sim.server import SimConfig, Simulator, SimulatorServer
from imunban.usersig import gen_usersig

KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
APPID = 1400000000
ADMIN = "administrator"
GROUP = "@TGS#aJRGC4MH6"
ROOT = Path(__file__).resolve().parents[2]


def official_sig(identifier: str = ADMIN, key: str = KEY, appid: int = APPID) -> str:
    return str(TLSSigAPIv2.TLSSigAPIv2(appid, key).gen_sig(identifier, 86400))


SIG = official_sig()


def make_app() -> AppConfig:
    return AppConfig("default", APPID, ADMIN, Secret(KEY))


def query(**overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "sdkappid": APPID,
        "identifier": ADMIN,
        "usersig": SIG,
        "random": 99999999,
        "contenttype": "json",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def body(members: Any = ("u1",), group: Any = GROUP) -> bytes:
    return json.dumps({"GroupId": group, "Members_Account": list(members)}).encode()


class Caller:
    """Posts raw requests to a running simulator over one keep-alive session."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()

    def post(self, data: bytes | None = None, path: str = UNBAN_PATH, **params: Any) -> requests.Response:
        return self.session.post(
            self.url + path, params=query(**params), data=body() if data is None else data, timeout=10
        )

    def code(self, data: bytes | None = None, **params: Any) -> int:
        response = self.post(data, **params)
        assert response.status_code == 200
        payload = response.json()
        assert set(payload) == {"ActionStatus", "ErrorCode", "ErrorInfo"}
        assert payload["ActionStatus"] == ("OK" if payload["ErrorCode"] == 0 else "FAIL")
        return int(payload["ErrorCode"])


@pytest.fixture
def sim() -> Simulator:
    return Simulator(make_app())


@pytest.fixture
def server(sim: Simulator) -> Iterator[SimulatorServer]:
    with SimulatorServer(sim) as srv:
        yield srv


@pytest.fixture
def caller(server: SimulatorServer) -> Iterator[Caller]:
    c = Caller(server.url)
    yield c
    c.session.close()


def test_official_sig_accepted(caller: Caller, sim: Simulator) -> None:
    """A request signed by the official TLSSigAPIv2 package is answered ErrorCode 0 and takes effect."""
    assert caller.code(body(["u1", "u2"])) == 0
    assert sim.unbanned(GROUP) == {"u1", "u2"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"usersig": official_sig(key="wrong-key")}, 70009),
        ({"usersig": official_sig(appid=APPID + 1)}, 70014),
        ({"identifier": "moderator", "usersig": official_sig("moderator")}, 60010),
        ({"identifier": ADMIN, "usersig": official_sig("moderator")}, 70013),
        ({"usersig": gen_usersig(APPID, ADMIN, KEY, 60, int(time.time()) - 3600)}, 70001),
        ({"usersig": "garbage"}, 70003),
        ({"usersig": None}, 70002),
        ({"identifier": None}, 60004),
        ({"sdkappid": None}, 60012),
        ({"sdkappid": "14e8"}, 60002),
        ({"sdkappid": APPID + 1}, 60006),
        ({"random": None}, 60002),
        ({"random": -1}, 60002),
        ({"random": 2**32}, 60002),
        ({"random": "x"}, 60002),
        ({"contenttype": "xml"}, 60002),
    ],
    ids=[
        "bad-signature", "sig-other-app", "non-admin", "sig-other-identifier", "expired", "unparseable",
        "no-usersig", "no-identifier", "no-sdkappid", "sdkappid-not-int", "other-sdkappid",
        "no-random", "negative-random", "random-too-big", "random-not-int", "contenttype",
    ],
)  # fmt: skip
def test_url_checks(caller: Caller, sim: Simulator, params: dict[str, Any], expected: int) -> None:
    """Each malformed or unauthorised URL is rejected with the API's code and unbans nothing."""
    assert caller.code(**params) == expected
    assert sim.unbanned(GROUP) == frozenset()


def test_random_bounds_accepted(caller: Caller) -> None:
    """random may be anything from 0 to 2**32-1."""
    assert caller.code(random=0) == 0
    assert caller.code(random=2**32 - 1) == 0


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (body([f"u{i}" for i in range(21)]), 10005),
        (b'{"GroupId": "g", "Members_Account": ["u1"]', 60003),
        (b"", 60003),
        (b"[1, 2]", 10011),
        (body(["u1", 7]), 60015),
        (body([]), 10004),
        (body(["u1", ""]), 10004),
        (json.dumps({"Members_Account": ["u1"]}).encode(), 10004),
        (json.dumps({"GroupId": "g", "Members_Account": "u1"}).encode(), 10004),
        (body(group=""), 10004),
        (body(group="g" * 49), 10015),
    ],
    ids=[
        "21-members", "malformed", "empty", "not-object", "non-string", "no-members", "empty-member",
        "no-group", "members-not-list", "empty-group", "group-too-long",
    ],
)  # fmt: skip
def test_body_checks(caller: Caller, data: bytes, expected: int) -> None:
    """Bad bodies (21 members, malformed JSON, wrong types, empty ids) get their own codes."""
    assert caller.code(data) == expected


def test_twenty_members_accepted(caller: Caller, sim: Simulator) -> None:
    """A batch of exactly 20 members is accepted."""
    assert caller.code(body([f"u{i}" for i in range(20)])) == 0
    assert sim.snapshot()["batch_sizes"] == {"20": 1}


def _fire(caller_url: str, calls: int, threads: int) -> Counter[int]:
    codes: Counter[int] = Counter()
    lock = threading.Lock()
    per_thread = [calls // threads + (1 if i < calls % threads else 0) for i in range(threads)]

    def run(n: int) -> None:
        c = Caller(caller_url)
        try:
            for _ in range(n):
                code = c.code()
                with lock:
                    codes[code] += 1
        finally:
            c.session.close()

    workers = [threading.Thread(target=run, args=(n,)) for n in per_thread]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return codes


def test_201st_call_within_a_second_is_rate_limited() -> None:
    """With the default limit of 200, the 201st call inside one second answers 60007."""
    sim = Simulator(make_app(), monotonic=lambda: 5000.0)  # every call lands in the same instant
    with SimulatorServer(sim) as srv:
        codes = _fire(srv.url, 201, threads=4)
    assert codes == Counter({0: 200, 60007: 1})
    snap = sim.snapshot()
    assert (snap["max_calls_in_1s"], snap["rate_limited"], snap["calls_ok"]) == (200, 1, 200)


def test_limit_20_on_the_real_clock(server: SimulatorServer, sim: Simulator, caller: Caller) -> None:
    """With rate_limit 20 on the real clock, a call is refused only when 20 were accepted in the second before it."""
    # The server handles a call between its send and its answer, so each verdict is checked against what
    # those bounds prove, on a machine of any speed: the first 20 calls are always accepted, an accepted call
    # never had 20 accepted calls surely within the second before it, a refused one had 20 possibly within it.
    sim.configure(rate_limit=20)
    calls: list[tuple[float, float, int]] = []  # (sent, answered, ErrorCode), time.monotonic like the simulator
    for _ in range(30):
        sent = time.monotonic()
        code = caller.code()
        calls.append((sent, time.monotonic(), code))
    assert {code for _, _, code in calls} <= {0, 60007}
    assert [code for _, _, code in calls[:20]] == [0] * 20
    for i, (sent, answered, code) in enumerate(calls):
        accepted_before = [(s, a) for s, a, c in calls[:i] if c == 0]
        surely_within = sum(1 for s, _ in accepted_before if s > answered - 1.0)
        possibly_within = sum(1 for _, a in accepted_before if a > sent - 1.0)
        if code == 0:
            assert surely_within < 20, (i, calls)
        else:
            assert possibly_within >= 20, (i, calls)
    snapshot = sim.snapshot()
    assert snapshot["max_calls_in_1s"] <= 20
    assert snapshot["rate_limited"] == sum(1 for _, _, code in calls if code == 60007)


def test_sliding_window_in_process() -> None:
    """The window slides: calls are refused until the oldest accepted call is 1 s old."""
    clock = [0.0]
    sim = Simulator(make_app(), SimConfig(rate_limit=3), monotonic=lambda: clock[0])
    target = UNBAN_PATH + "?" + "&".join(f"{k}={v}" for k, v in query().items())

    def code_at(t: float) -> int:
        clock[0] = t
        return int(json.loads(sim.handle("POST", target, body()).body)["ErrorCode"])

    # Binary fractions, so that the window arithmetic is exact.
    assert [code_at(t) for t in (0.0, 0.25, 0.5, 0.875)] == [0, 0, 0, 60007]
    assert code_at(1.0) == 0  # the call at 0.0 left the window
    assert code_at(1.125) == 60007
    assert code_at(1.25) == 0
    assert sim.snapshot()["max_calls_in_1s"] == 3


def test_routing(caller: Caller, server: SimulatorServer) -> None:
    """Another API path answers 60009 on HTTP 200; GET on the unban path is 405."""
    response = caller.post(path="/v4/group_open_http_svc/no_such_api")
    assert (response.status_code, response.json()["ErrorCode"]) == (200, 60009)
    assert requests.get(server.url + UNBAN_PATH, timeout=5).status_code == 405
    assert requests.get(server.url + "/nothing", timeout=5).status_code == 404


def test_keep_alive_with_content_length(server: SimulatorServer) -> None:
    """Several requests travel over one HTTP/1.1 connection, each answer with a Content-Length."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        target = UNBAN_PATH + "?" + "&".join(f"{k}={v}" for k, v in query().items())
        for _ in range(3):
            conn.request("POST", target, body=body(), headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            assert response.version == 11
            assert response.getheader("Content-Length") == str(len(payload))
            assert json.loads(payload)["ErrorCode"] == 0
        assert conn.sock is not None  # still the same open socket
    finally:
        conn.close()


def test_known_groups(caller: Caller, sim: Simulator) -> None:
    """A known non-AVChatRoom group answers 10007; unknown groups answer 10010 only when configured."""
    sim.configure(known_groups={"@TGS#work": "Work", GROUP: "AVChatRoom"})
    assert caller.code(body(group="@TGS#work")) == 10007
    assert caller.code(body(group="@TGS#other")) == 0
    sim.configure(unknown_groups_gone=True)
    assert caller.code(body(group="@TGS#other")) == 10010
    assert caller.code(body(group=GROUP)) == 0


def test_faults_502_hang_10002(caller: Caller, sim: Simulator) -> None:
    """http_502_rate answers 502; a hung call still takes effect; error_10002_rate answers 10002."""
    sim.configure(http_502_rate=1.0)
    assert caller.post().status_code == 502
    sim.configure(http_502_rate=0.0, hang_rate=1.0, hang_s=0.2)
    assert caller.code(body(["late"])) == 0
    assert "late" in sim.unbanned(GROUP)
    sim.configure(hang_rate=0.0, error_10002_rate=1.0)
    assert caller.code() == 10002
    snap = sim.snapshot()
    assert (snap["hangs"], snap["http_status"], snap["codes"]) == (
        1,
        {"200": 2, "502": 1},
        {"0": 1, "10002": 1},
    )


def test_seeded_faults_are_reproducible() -> None:
    """Two simulators with the same seed answer the same sequence of injected faults."""
    target = UNBAN_PATH + "?" + "&".join(f"{k}={v}" for k, v in query().items())

    def run() -> list[tuple[int, bytes]]:
        sim = Simulator(make_app(), SimConfig(seed=42, error_10002_rate=0.3, http_502_rate=0.2))
        return [(r.status, r.body) for r in (sim.handle("POST", target, body()) for _ in range(60))]

    first = run()
    assert first == run()
    assert len({status for status, _ in first}) == 2


def test_admin_config_stats_and_reset(caller: Caller, server: SimulatorServer, sim: Simulator) -> None:
    """POST /_admin/config changes faults, GET /_stats reports counters, POST /_admin/reset clears them."""
    assert caller.code(body(["a", "b"])) == 0
    assert caller.code(body(["b", "c", "d"])) == 0
    answer = requests.post(server.url + "/_admin/config", json={"global_error": 10007}, timeout=5)
    assert answer.status_code == 200 and answer.json()["global_error"] == 10007
    assert caller.code() == 10007
    bad = requests.post(server.url + "/_admin/config", json={"no_such_knob": 1}, timeout=5)
    assert bad.status_code == 400 and "no_such_knob" in bad.json()["error"]
    assert requests.post(server.url + "/_admin/config", json={"hang_rate": 2}, timeout=5).status_code == 400
    stats = requests.get(server.url + "/_stats", timeout=5).json()
    assert stats["calls"] == 3 and stats["calls_ok"] == 2
    assert (stats["members_unbanned"], stats["distinct_unbanned"], stats["duplicate_unbans"]) == (5, 4, 1)
    assert stats["batch_sizes"] == {"2": 1, "3": 1}
    assert stats["codes"] == {"0": 2, "10007": 1}
    assert sum(row["calls"] for row in stats["timeline"]) == 3
    assert sum(row["members"] for row in stats["timeline"]) == 5
    assert stats == {**sim.snapshot(), "timeline": stats["timeline"]}
    assert requests.post(server.url + "/_admin/reset", timeout=5).json() == {"ok": True}
    cleared = sim.snapshot()
    assert (cleared["calls"], cleared["timeline"], cleared["config"]["global_error"]) == (0, [], 10007)
    assert sim.unbanned(GROUP) == frozenset()


def test_configure_validates_everything(sim: Simulator) -> None:
    """configure() refuses unknown options and bad values, changing nothing."""
    for bad in ({"latency_ms": -1}, {"rate_limit": 0}, {"poison_members": "abc"}, {"unknown_groups_gone": 1}):
        with pytest.raises(ValueError):
            sim.configure(**bad)
    with pytest.raises(ValueError):
        sim.configure(latency_ms=5, nope=True)
    assert sim.config == SimConfig()


def test_cli_requires_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    """imunban simulate without IMUNBAN_SDKAPPID exits 2 naming the variable."""
    assert main(["simulate", "--port", "0"]) == 2
    assert "IMUNBAN_SDKAPPID" in capsys.readouterr().err


def test_cli_port_in_use(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """imunban simulate on a port that is taken exits 2 with a one-line reason."""
    monkeypatch.setenv("IMUNBAN_SDKAPPID", str(APPID))
    monkeypatch.setenv("IMUNBAN_SECRET_KEY", KEY)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["simulate", "--port", str(taken.getsockname()[1])]) == 2
    assert "cannot listen" in capsys.readouterr().err


def test_cli_serves_official_sigs() -> None:
    """`imunban simulate` prints its URL (never the key), answers 0 to an official sig, exits 0 on SIGTERM."""
    env = {**os.environ, "IMUNBAN_SDKAPPID": str(APPID), "IMUNBAN_SECRET_KEY": KEY, "IMUNBAN_IDENTIFIER": ADMIN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "imunban", "simulate", "--port", "0", "--latency-ms", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, line
        assert KEY not in line
        with Caller(match.group(0)).session as session:
            answer = session.post(match.group(0) + UNBAN_PATH, params=query(), data=body(), timeout=10)
        assert answer.json()["ErrorCode"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert KEY not in out + err
