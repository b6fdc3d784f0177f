"""UserSig v2: known answers, verification outcomes, the official package, and the renewing cache."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import types
import zlib

import pytest
import TLSSigAPIv2
from hypothesis import given
from hypothesis import strategies as st

from imunban.settings import Secret
from imunban.usersig import UserSigCache, UserSigError, decode_usersig, gen_usersig, verify_usersig

KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
APPID = 1400000000
T0 = 1700000000

#: Full UserSigs made by other implementations at T0 (research doc §3c): PyPI 1.1 and the Node library.
PYPI_SIG = (
    "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkKjIT87NK82CSxSnZiQUFmSlAKUMTAyiAyqVWFGQWpYJkTE1NjRDiJZm5YFFz"
    "NPXFmekgG3zKHM1T9D3LzdODi-OKs8vCqpxcAvydnV2SSv2cy03cPcpDnA2SMgu0nUxslWoBHdYzUg__"
)
NODE_SIG = (
    "eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwhWZiflZpXlQqeKU7MSCgswUJStDEwMogMiUZOamKlkZmqOKplYUZBaBxE1NTY3g"
    "osWZ6UpWSj5ljuYp*p7l5unBxXnF2WVhVU4uAf7Ozi5JpX7O5SbuHuUhzgZJmQXaTia2SrUAohcx8g__"
)


def _encode(doc: dict[str, object]) -> str:
    """Pack a UserSig document the way the libraries do (zlib + URL-safe base64)."""
    raw = zlib.compress(json.dumps(doc).encode())
    return base64.b64encode(raw).decode().replace("+", "*").replace("/", "-").replace("=", "_")


def test_known_answer_xiaojun() -> None:
    """The SPEC §1 vector for xiaojun / 15552000 s gives the published TLS.sig and fields."""
    doc = decode_usersig(gen_usersig(APPID, "xiaojun", KEY, 15552000, T0))
    assert doc == {
        "TLS.ver": "2.0",
        "TLS.identifier": "xiaojun",
        "TLS.sdkappid": APPID,
        "TLS.expire": 15552000,
        "TLS.time": T0,
        "TLS.sig": "LvA7d/Iw7gSsnskvVzBDPOCCDbuNCw4GHwTC0bip+B4=",
    }
    content = b"TLS.identifier:xiaojun\nTLS.sdkappid:1400000000\nTLS.time:1700000000\nTLS.expire:15552000\n"
    digest = hmac.new(KEY.encode(), content, hashlib.sha256).hexdigest()
    assert digest == "2ef03b77f230ee04ac9ec92f5730433ce0820dbb8d0b0e061f04c2d1b8a9f81e"


def test_known_answer_administrator() -> None:
    """The SPEC §1 vector for administrator / 86400 s gives the published TLS.sig."""
    doc = decode_usersig(gen_usersig(APPID, "administrator", KEY, 86400, T0))
    assert doc["TLS.sig"] == "yLAe+w7WUeUuqbV9h/TX78u21oTGi+i9Zp1u3PpnY60="
    assert (doc["TLS.identifier"], doc["TLS.expire"], doc["TLS.time"]) == ("administrator", 86400, T0)


@pytest.mark.parametrize("sig", [PYPI_SIG, NODE_SIG], ids=["pypi-1.1", "node"])
def test_verifies_sigs_from_other_libraries(sig: str) -> None:
    """Full UserSigs made by the official Python and Node libraries verify, whatever their JSON layout."""
    verify_usersig(sig, APPID, "xiaojun", KEY, T0 + 10)
    assert decode_usersig(sig)["TLS.sig"] == "LvA7d/Iw7gSsnskvVzBDPOCCDbuNCw4GHwTC0bip+B4="


def test_sig_uses_url_safe_alphabet() -> None:
    """A generated UserSig only uses the characters [A-Za-z0-9*_-]."""
    for expire in range(86400, 86400 + 50):
        sig = gen_usersig(APPID, "administrator", KEY, expire, T0)
        assert set(sig) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*_-")


@given(
    appid=st.integers(min_value=1, max_value=2**32),
    identifier=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=32),
    expire_s=st.integers(min_value=1, max_value=50 * 365 * 86400),
    now_s=st.integers(min_value=0, max_value=2**33),
)
def test_round_trip(appid: int, identifier: str, expire_s: int, now_s: int) -> None:
    """A generated UserSig verifies for its own app, identifier and key until its expiry."""
    sig = gen_usersig(appid, identifier, KEY, expire_s, now_s)
    verify_usersig(sig, appid, identifier, KEY, now_s)
    verify_usersig(sig, appid, identifier, KEY, now_s + expire_s)
    with pytest.raises(UserSigError) as info:
        verify_usersig(sig, appid, identifier + "x", KEY, now_s)
    assert info.value.code == 70013


def test_expired() -> None:
    """A UserSig is rejected with 70001 once now > time + expire, and accepted up to that second."""
    sig = gen_usersig(APPID, "administrator", KEY, 100, T0)
    verify_usersig(sig, APPID, "administrator", KEY, T0 + 100)
    with pytest.raises(UserSigError) as info:
        verify_usersig(sig, APPID, "administrator", KEY, T0 + 101)
    assert info.value.code == 70001


def test_tampered_fields_fail_the_hmac() -> None:
    """Extending the validity or changing the signature inside the document gives 70009."""
    doc = decode_usersig(gen_usersig(APPID, "administrator", KEY, 100, T0))
    longer = _encode({**doc, "TLS.expire": 10**9})
    with pytest.raises(UserSigError) as info:
        verify_usersig(longer, APPID, "administrator", KEY, T0 + 1000)
    assert info.value.code == 70009
    flipped = doc["TLS.sig"][:-2] + ("A=" if doc["TLS.sig"][-2] != "A" else "B=")
    with pytest.raises(UserSigError) as info:
        verify_usersig(_encode({**doc, "TLS.sig": flipped}), APPID, "administrator", KEY, T0)
    assert info.value.code == 70009


def test_wrong_key() -> None:
    """A UserSig made with another key is rejected with 70009."""
    sig = gen_usersig(APPID, "administrator", "another-key", 86400, T0)
    with pytest.raises(UserSigError) as info:
        verify_usersig(sig, APPID, "administrator", KEY, T0)
    assert info.value.code == 70009


def test_appid_and_identifier_mismatch() -> None:
    """The request's SDKAppID and identifier must match the UserSig's: 70014 and 70013."""
    sig = gen_usersig(APPID, "administrator", KEY, 86400, T0)
    with pytest.raises(UserSigError) as info:
        verify_usersig(sig, APPID + 1, "administrator", KEY, T0)
    assert info.value.code == 70014
    with pytest.raises(UserSigError) as info:
        verify_usersig(sig, APPID, "someone", KEY, T0)
    assert info.value.code == 70013


@pytest.mark.parametrize(
    "sig",
    [
        "",
        "abc",
        "!!!notbase64!!!",
        base64.b64encode(b"not zlib").decode(),
        base64.b64encode(zlib.compress(b"not json")).decode(),
        _encode([1, 2]),  # type: ignore[arg-type]
        _encode({"TLS.identifier": "administrator", "TLS.sdkappid": APPID}),
        _encode({"TLS.identifier": "administrator", "TLS.sdkappid": APPID, "TLS.time": True, "TLS.expire": 1}),
        gen_usersig(APPID, "administrator", KEY, 86400, T0)[:-12],
        "A" * 5000,
    ],
    ids=["empty", "short", "alphabet", "zlib", "json", "list", "fields", "bool", "truncated", "huge"],
)
def test_unparseable(sig: str) -> None:
    """Anything that is not a complete, well-typed UserSig document is rejected with 70003."""
    with pytest.raises(UserSigError) as info:
        verify_usersig(sig, APPID, "administrator", KEY, T0)
    assert info.value.code == 70003


def test_cross_check_with_official_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """At one clock, the official TLSSigAPIv2 package and gen_usersig give the same fields and TLS.sig."""
    monkeypatch.setattr(TLSSigAPIv2, "time", types.SimpleNamespace(time=lambda: T0 + 0.75))
    theirs = TLSSigAPIv2.TLSSigAPIv2(APPID, KEY).gen_sig("administrator", 86400)
    ours = gen_usersig(APPID, "administrator", KEY, 86400, T0)
    assert decode_usersig(theirs) == decode_usersig(ours)
    verify_usersig(theirs, APPID, "administrator", KEY, T0)


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_cache_reuses_then_renews_before_expiry() -> None:
    """The cache returns the same sig until renew_after_s, then a fresh one that is still valid later."""
    clock = _Clock(T0)
    cache = UserSigCache(APPID, "administrator", Secret(KEY), clock=clock, ttl_s=86400, renew_after_s=43200)
    first = cache.get()
    clock.now = T0 + 43199
    assert cache.get() == first
    clock.now = T0 + 43200
    second = cache.get()
    assert second != first
    assert decode_usersig(second)["TLS.time"] == T0 + 43200
    verify_usersig(second, APPID, "administrator", KEY, T0 + 43200 + 86400)
    assert cache.generations == 2


def test_cache_invalidate_and_clock_going_back() -> None:
    """invalidate() forces a new sig, and so does a clock that moved backwards."""
    clock = _Clock(T0)
    cache = UserSigCache(APPID, "administrator", Secret(KEY), clock=clock)
    cache.get()
    cache.invalidate()
    clock.now = T0 + 1
    assert decode_usersig(cache.get())["TLS.time"] == T0 + 1
    clock.now = T0 - 3600
    assert decode_usersig(cache.get())["TLS.time"] == T0 - 3600
    assert cache.generations == 3


def test_cache_is_thread_safe_and_hides_the_key() -> None:
    """Many threads get one sig generated once, and the cache's repr shows no key."""
    cache = UserSigCache(APPID, "administrator", Secret(KEY))
    seen: list[str] = []
    threads = [threading.Thread(target=lambda: seen.append(cache.get())) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1
    assert cache.generations == 1
    assert KEY not in repr(cache)
    assert seen[0] not in repr(cache)
