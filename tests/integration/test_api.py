"""ApiClient over real loopback HTTP against the simulator: results, error classes, failover, redaction."""

from __future__ import annotations

import io
import logging
import socket
import ssl
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import urllib3

from imunban.api import ApiClient, _Urllib3Route
from imunban.apps import AppConfig
from imunban.errors import (
    ConnectError,
    FailoverError,
    GroupGoneError,
    HoldError,
    IsolateError,
    RateLimitedError,
    RenewSigError,
    RetryableError,
    TransportError,
    UnknownApiError,
    ValidationError,
)
from imunban.lean_http import LeanRoute
from imunban.logredact import RedactUserSig, install_redaction, redact
from imunban.secret import Secret
from imunban.sim.server import Simulator, SimulatorServer
from imunban.usersig import UserSigCache

KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
APPID = 1400000000
GROUP = "@TGS#aJRGC4MH6"


def make_app(base_url: str | None = None) -> AppConfig:
    return AppConfig("default", APPID, "administrator", Secret(KEY), base_url=base_url)


def make_client(base_url: str | None = None, *, read_timeout_s: float = 2.0, **options: Any) -> ApiClient:
    """An API client for the test app, with short timeouts and a small pool."""
    return ApiClient(make_app(base_url), connect_timeout_s=1.0, read_timeout_s=read_timeout_s, pool_size=8, **options)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sim() -> Simulator:
    return Simulator(make_app())


@pytest.fixture
def server(sim: Simulator) -> Iterator[SimulatorServer]:
    with SimulatorServer(sim) as srv:
        yield srv


@pytest.fixture
def client(server: SimulatorServer) -> Iterator[ApiClient]:
    with make_client(server.url) as api:
        yield api


@pytest.fixture
def dead_url() -> Iterator[str]:
    """A loopback port that is bound but not listening: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_unban_success(client: ApiClient, sim: Simulator) -> None:
    """A valid call returns None and the simulator records the members as unbanned."""
    client.unban(GROUP, ["u1", "u2"])
    assert sim.unbanned(GROUP) == {"u1", "u2"}
    assert sim.snapshot()["calls_ok"] == 1


def test_members_deduplicated_in_order(client: ApiClient, sim: Simulator) -> None:
    """Duplicate members are sent once, so 20 distinct members plus repeats fit in one call."""
    members = [f"u{i}" for i in range(20)]
    client.unban(GROUP, members + members[:5])
    snap = sim.snapshot()
    assert snap["batch_sizes"] == {"20": 1}
    assert snap["duplicate_unbans"] == 0


@pytest.mark.parametrize(
    ("group", "members", "field"),
    [
        (GROUP, [], "members"),
        (GROUP, [f"u{i}" for i in range(21)], "members"),
        (GROUP, "u1", "members"),
        (GROUP, ["u1", ""], "members"),
        ("", ["u1"], "group_id"),
    ],
    ids=["none", "21", "string", "empty-member", "empty-group"],
)
def test_invalid_input_rejected_before_calling(
    client: ApiClient, sim: Simulator, group: str, members: Any, field: str
) -> None:
    """Zero or more than 20 distinct members, or empty ids, raise ValidationError and make no call."""
    with pytest.raises(ValidationError) as info:
        client.unban(group, members)
    assert info.value.field == field
    assert sim.snapshot()["calls"] == 0


def test_transient_10002(client: ApiClient, sim: Simulator) -> None:
    """An injected 10002 raises a plain RetryableError carrying the code."""
    sim.configure(error_10002_rate=1.0)
    with pytest.raises(RetryableError) as info:
        client.unban(GROUP, ["u1"])
    assert type(info.value) is RetryableError
    assert info.value.code == 10002


def test_rate_limit_burst(client: ApiClient, sim: Simulator) -> None:
    """A burst of 60007 raises RateLimitedError for its length, then calls succeed again."""
    sim.configure(burst_60007=2)
    for _ in range(2):
        with pytest.raises(RateLimitedError) as info:
            client.unban(GROUP, ["u1"])
        assert info.value.code == 60007
    client.unban(GROUP, ["u1"])
    assert sim.snapshot()["rate_limited"] == 2


def test_expired_sig_raises_renew_then_renew_sig_recovers(server: SimulatorServer) -> None:
    """An expired UserSig gives RenewSigError; after renew_sig() a fresh sig succeeds."""
    clock = Clock(time.time() - 3 * 86400)
    cache = UserSigCache(APPID, "administrator", Secret(KEY), clock=clock)
    with make_client(server.url, sig_cache=cache) as api:
        with pytest.raises(RenewSigError) as info:
            api.unban(GROUP, ["u1"])
        assert info.value.code == 70001
        clock.now = time.time()
        api.renew_sig()
        api.unban(GROUP, ["u1"])
    assert cache.generations == 2


def test_global_10007(client: ApiClient, sim: Simulator) -> None:
    """A 10007 answered for every group raises HoldError (the engine weighs the evidence)."""
    sim.configure(global_error=10007)
    with pytest.raises(HoldError) as info:
        client.unban(GROUP, ["u1"])
    assert info.value.code == 10007


def test_poison_member_isolates(client: ApiClient, sim: Simulator) -> None:
    """A batch holding a poison member raises IsolateError naming it; a clean batch succeeds."""
    sim.configure(poison_members=["bad"])
    with pytest.raises(IsolateError) as info:
        client.unban(GROUP, ["u1", "bad", "u2"])
    assert info.value.code == 10004
    assert "bad" in info.value.info
    client.unban(GROUP, ["u1", "u2"])


def test_group_gone(client: ApiClient, sim: Simulator) -> None:
    """An unknown group with unknown_groups_gone raises GroupGoneError (10010)."""
    sim.configure(unknown_groups_gone=True, known_groups={"@TGS#alive": "AVChatRoom"})
    with pytest.raises(GroupGoneError) as info:
        client.unban("@TGS#gone", ["u1"])
    assert info.value.code == 10010
    client.unban("@TGS#alive", ["u1"])


def test_unknown_code(client: ApiClient, sim: Simulator) -> None:
    """A code imunban does not know raises UnknownApiError with the code and ErrorInfo."""
    sim.configure(global_error=12345)
    with pytest.raises(UnknownApiError) as info:
        client.unban(GROUP, ["u1"])
    assert info.value.code == 12345
    assert info.value.info == "unknown error code"


def test_http_502(client: ApiClient, sim: Simulator) -> None:
    """An HTTP 502 raises TransportError with code 0 and the status (not ConnectError: no failover)."""
    sim.configure(http_502_rate=1.0)
    with pytest.raises(TransportError) as info:
        client.unban(GROUP, ["u1"])
    assert type(info.value) is TransportError
    assert info.value.http_status == 502
    assert info.value.code == 0


def test_read_timeout(server: SimulatorServer, sim: Simulator) -> None:
    """A call answered after the read timeout raises TransportError('timeout'), not ConnectError."""
    sim.configure(hang_rate=1.0, hang_s=1.5)
    api = make_client(server.url, read_timeout_s=0.5)
    with api, pytest.raises(TransportError) as info:
        api.unban(GROUP, ["u1"])
    assert type(info.value) is TransportError
    assert (info.value.code, info.value.info) == (0, "timeout")


def test_failover_to_backup_and_back(server: SimulatorServer, dead_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A refused connect raises FailoverError (nothing sent); the backup is then first for failover_s.

    The client never tries the backup within the same call: the caller reserves again first, which
    re-checks the leases (Deliverer._call), so a cancel that returned meanwhile holds.
    """
    mono = Clock(1000.0)
    caplog.set_level(logging.WARNING, logger="imunban.api")
    with make_client(base_urls=[dead_url, server.url], monotonic=mono, failover_s=60) as api:
        with pytest.raises(FailoverError, match=f"next call to {server.url}"):
            api.unban(GROUP, ["u1"])
        assert api.active_base_url == server.url
        api.unban(GROUP, ["u1"])  # the caller's second try goes to the backup
        failures = [r for r in caplog.records if "cannot connect" in r.getMessage()]
        assert len(failures) == 1
        mono.now += 59
        api.unban(GROUP, ["u2"])  # straight to the backup: no new connect failure
        assert len([r for r in caplog.records if "cannot connect" in r.getMessage()]) == 1
        mono.now += 2
        assert api.active_base_url == dead_url
        with pytest.raises(FailoverError):  # primary tried again, fails: the backup is preferred again
            api.unban(GROUP, ["u3"])
        assert len([r for r in caplog.records if "cannot connect" in r.getMessage()]) == 2
        assert api.active_base_url == server.url


def test_connect_error_without_backup_hides_usersig(dead_url: str) -> None:
    """With no domain left, ConnectError is raised and neither it nor its chained cause shows the UserSig."""
    cache = UserSigCache(APPID, "administrator", Secret(KEY))
    sig = cache.get()
    api = make_client(base_urls=[dead_url], sig_cache=cache)
    with api, pytest.raises(ConnectError) as info:
        api.unban(GROUP, ["u1"])
    assert info.value.__cause__ is not None
    text = "".join(traceback.format_exception(info.value))
    for form in (sig, quote(sig), quote_plus(sig)):
        assert form not in text
        assert form not in str(info.value)


def test_fresh_random_per_attempt(server: SimulatorServer, dead_url: str) -> None:
    """random is drawn anew for every attempt, including the failover attempt."""
    drawn: list[int] = []

    def rng() -> int:
        drawn.append(len(drawn) + 7)
        return drawn[-1]

    with make_client(base_urls=[dead_url, server.url], rng=rng) as api:
        with pytest.raises(FailoverError):
            api.unban(GROUP, ["u1"])
        api.unban(GROUP, ["u1"])
        api.unban(GROUP, ["u2"])
    assert drawn == [7, 8, 9]


def test_usersig_never_logged(client: ApiClient, caplog: pytest.LogCaptureFixture) -> None:
    """With DEBUG logging on, the call is logged and the sig never appears (the lean route logs no URL)."""
    caplog.set_level(logging.DEBUG)
    install_redaction()
    client.unban(GROUP, ["u1"])
    sig = client._sigs.get()
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("unban group=") for m in messages)
    for form in (sig, quote(sig), quote_plus(sig)):
        assert all(form not in m for m in messages)
        assert form not in caplog.text


def test_redaction_filter_covers_args_and_tracebacks() -> None:
    """RedactUserSig rewrites usersig values in formatted args and in exception tracebacks."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactUserSig())
    logger = logging.getLogger("test_api.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("GET %s", "/v4/x?sdkappid=1&usersig=eJyr*secret-_&random=5")
        try:
            raise RuntimeError("Max retries exceeded with url: /v4/x?usersig=eJyrTOPSECRET&x=1")
        except RuntimeError:
            logger.exception("failed")
        logger.warning("params %s", {"usersig": "eJyrDICT", "random": 1})
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "secret" not in out and "TOPSECRET" not in out and "eJyrDICT" not in out
    assert out.count("REDACTED") >= 3  # the traceback also quotes the source line
    assert redact("a usersig=x b") == "a usersig=REDACTED b"


def test_redaction_filter_scrubs_the_exception_for_any_formatter() -> None:
    """A formatter that formats exc_info itself (ignoring exc_text) still prints no usersig."""

    class OwnFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            assert record.exc_info is not None
            return record.getMessage() + " " + self.formatException(record.exc_info)

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OwnFormatter())
    handler.addFilter(RedactUserSig())
    logger = logging.getLogger("test_api.redaction_formatter")
    logger.addHandler(handler)
    logger.propagate = False
    secret_url = "/v4/x?usersig=" + "eJyr" + "HIDDEN"
    try:
        try:
            raise ValueError(secret_url)
        except ValueError as exc:
            logger.error("call failed", exc_info=exc)
    finally:
        logger.removeHandler(handler)
    assert "HIDDEN" not in stream.getvalue()
    assert "usersig=REDACTED" in stream.getvalue()


def test_repr_hides_secrets(client: ApiClient) -> None:
    """repr(ApiClient) names the app and domains but neither the key nor the UserSig."""
    text = repr(client)
    assert str(APPID) in text
    assert KEY not in text
    assert client._sigs.get() not in text


class _StubTransport:
    """Answers every POST with a fixed status and body, without any network (ApiClient's transport seam)."""

    def __init__(self, status: int, content: bytes) -> None:
        self.status = status
        self.content = content
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def urlopen(self, method: str, url: str, **kw: Any) -> urllib3.BaseHTTPResponse:
        self.calls.append((method, url, kw))
        return urllib3.HTTPResponse(body=self.content, status=self.status, preload_content=True)


@pytest.mark.parametrize("content", [b"<html>oops</html>", b"[1, 2]", b'{"ActionStatus": "OK"}', b'{"ErrorCode": "0"}'])
def test_unusable_response_body_is_retryable(content: bytes) -> None:
    """A 200 answer that is not JSON or has no integer ErrorCode raises RetryableError(60013)."""
    transport = _StubTransport(200, content)
    with (
        make_client("http://127.0.0.1:9", transport=transport) as api,
        pytest.raises(RetryableError) as info,
    ):
        api.unban(GROUP, ["u1"])
    assert info.value.code == 60013
    ((method, url, kw),) = transport.calls
    assert method == "POST" and url.startswith("http://127.0.0.1:9/v4/group_open_http_svc/unban_group_member?")
    assert kw["redirect"] is False and kw["retries"].total == 0  # no redirect followed, no silent resend


def test_tls_is_verified_against_the_ca_bundle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The default route verifies certificates and host names, against REQUESTS_CA_BUNDLE when set (as requests did)."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with make_client("https://console.tim.qq.com") as api:
        route = api._routes[0]
        assert isinstance(route, LeanRoute) and route.https and route.ca_bundle and Path(route.ca_bundle).is_file()
        context = route.tls_context()
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    with make_client("https://console.tim.qq.com") as api:
        route = api._routes[0]
        assert isinstance(route, LeanRoute) and route.ca_bundle == str(bundle)
        with pytest.raises(TransportError, match="TLS setup failed"):  # an unusable bundle: no call unverified
            api.unban(GROUP, ["u1"])


def test_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY is honoured (read once, when the client is made), and NO_PROXY exempts a host."""
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "adminapisgp.im.qcloud.com")
    urls = ["https://console.tim.qq.com", "https://adminapisgp.im.qcloud.com"]
    with make_client(base_urls=urls) as api:
        via, direct = api._routes
        assert isinstance(via, _Urllib3Route)
        via_proxy = via.transport
        assert isinstance(via_proxy, urllib3.ProxyManager)
        assert via_proxy.proxy is not None and via_proxy.proxy.host == "proxy.example"
        assert "proxy-authorization" in via_proxy.proxy_headers
        assert via.url == "https://console.tim.qq.com/v4/group_open_http_svc/unban_group_member"
        assert isinstance(direct, LeanRoute) and direct.host == "adminapisgp.im.qcloud.com"
