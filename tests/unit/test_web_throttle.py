"""Failed sign-ins throttled per client address and for the whole console (sliding windows on an injected clock)."""

from __future__ import annotations

import logging

import pytest

from imunban.settings import Secret
from imunban.web.auth import Authority
from imunban.web.throttle import Throttle


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_five_failures_from_one_address_block_it_for_the_rest_of_the_minute() -> None:
    """The 5th failure in 60 s blocks the address until the first of them is a minute old; others are not blocked."""
    clock = Clock()
    throttle = Throttle(per_address=5, total=50, window_s=60.0, clock=clock)
    for _ in range(4):
        throttle.failed("10.0.0.1")
        clock.now_s += 1
    assert throttle.blocked_for("10.0.0.1") == 0
    throttle.failed("10.0.0.1")  # at 1004: five failures in 1000..1004
    assert throttle.blocked_for("10.0.0.1") == pytest.approx(56.0)
    assert throttle.blocked_for("10.0.0.2") == 0
    clock.now_s = 1059.9
    assert throttle.blocked_for("10.0.0.1") > 0
    clock.now_s = 1060.0  # the first failure left the window: one more guess
    assert throttle.blocked_for("10.0.0.1") == 0
    throttle.failed("10.0.0.1")
    assert throttle.blocked_for("10.0.0.1") == pytest.approx(1.0)  # blocked until the second one leaves


def test_failures_from_many_addresses_block_everyone() -> None:
    """Past the overall cap in the window, every address waits, also one that never failed."""
    clock = Clock()
    throttle = Throttle(per_address=5, total=10, window_s=60.0, clock=clock)
    for i in range(10):
        throttle.failed(f"10.0.1.{i}")
        clock.now_s += 2
    assert throttle.blocked_for("192.0.2.7") == pytest.approx(40.0)  # 1000 + 60 - 1020
    clock.now_s = 1060.0
    assert throttle.blocked_for("192.0.2.7") == 0


def test_ipv6_addresses_count_by_their_64_prefix() -> None:
    """An IPv6 client counts as its /64 (one host has billions of addresses); IPv4 by the address."""
    throttle = Throttle(per_address=5, total=50, window_s=60.0, clock=Clock())
    for i in range(1, 6):
        throttle.failed(f"2001:db8::{i}")
    assert throttle.blocked_for("2001:db8::ffff") > 0
    assert throttle.blocked_for("2001:db8:0:1::1") == 0
    assert throttle.blocked_for("testclient") == 0  # not an address: counted by its text
    for _ in range(5):
        throttle.failed("::ffff:192.0.2.1")
    assert throttle.blocked_for("192.0.2.1") > 0  # an IPv4 client seen through an IPv6 socket


def test_memory_is_bounded() -> None:
    """At most max_tracked addresses are remembered; the one that failed longest ago is forgotten first."""
    clock = Clock()
    throttle = Throttle(per_address=2, total=1000, window_s=60.0, clock=clock, max_tracked=3)
    for address in ("a", "a", "b", "c", "d"):
        throttle.failed(address)
        clock.now_s += 1
    assert throttle.tracked == 3 and throttle.blocked_for("a") == 0  # "a" was forgotten


def test_weak_tokens_are_warned_about_by_name_never_by_value(caplog: pytest.LogCaptureFixture) -> None:
    """Tokens under 32 characters or with few distinct characters get a warning naming the variable."""
    strong = "Zq7rVx2mKp9sT4wN8bLc3hJd6fGy1aEu"
    auth = Authority(Secret("abababababababababababababababab12"), Secret(strong))
    assert auth.weak_token_warnings() == [
        "IMUNBAN_WEB_VIEWER_TOKEN has little variety (4 distinct characters): anyone who can reach the console may "
        "guess it; use a random one, e.g. `openssl rand -hex 24`"
    ]
    short = Authority(None, Secret("short-but-allowed-16"))
    (warning,) = short.weak_token_warnings()
    assert warning.startswith("IMUNBAN_WEB_OPERATOR_TOKEN is 20 characters (at least 32 recommended)")
    assert Authority(None, None).weak_token_warnings() == []
    with caplog.at_level(logging.WARNING):
        short.warn_weak_tokens()
    assert "short-but-allowed-16" not in caplog.text and "IMUNBAN_WEB_OPERATOR_TOKEN" in caplog.text
