"""Console sign-in pieces without I/O: token roles, signed sessions, loopback binding, token settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from imunban.errors import ConfigError
from imunban.settings import Secret, Settings
from imunban.web.auth import LOCAL, OPERATOR, VIEWER, Authority, check_bind, is_loopback

V, OP = "v" * 20, "o" * 20


def test_roles_by_token() -> None:
    """Each token grants its role; anything else, including a prefix, grants none."""
    auth = Authority(Secret(V), Secret(OP))
    assert auth.role_for_token(V) == VIEWER and auth.role_for_token(OP) == OPERATOR
    assert auth.role_for_token(V[:-1]) is None and auth.role_for_token("") is None
    assert not auth.open and Authority(None, None).open


def test_sessions_are_signed_and_expire() -> None:
    """A session reads back with its role and CSRF token; a tampered, foreign or expired one is refused."""
    auth = Authority(Secret(V), Secret(OP), key=b"k" * 32)
    cookie, csrf = auth.new_session(OPERATOR, now=1000.0)
    session = auth.read_session(cookie, now=1001.0)
    assert session is not None and session.role == OPERATOR and session.csrf == csrf and session.via == "session"
    assert OP not in cookie
    assert auth.read_session(cookie.replace(".", "x."), now=1001.0) is None
    assert Authority(Secret(V), Secret(OP), key=b"j" * 32).read_session(cookie, now=1001.0) is None
    assert auth.read_session(cookie, now=1000.0 + 13 * 3600) is None
    local, _ = auth.new_session(LOCAL, now=1000.0)
    assert auth.read_session(local, now=1001.0) is None  # a token-less session is void once tokens exist


def test_loopback_binding() -> None:
    """Loopback names and addresses may be bound without a token; anything else needs one."""
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.1", "example.com"))
    with pytest.raises(ConfigError, match=r"refusing to listen on '10\.0\.0\.1'"):
        check_bind("10.0.0.1", Settings())
    check_bind("0.0.0.0", Settings(web_operator_token=Secret(OP)))


def test_token_settings(tmp_path: Path) -> None:
    """Tokens come inline or from *_FILE, are hidden from repr, must be long enough and must differ."""
    path = tmp_path / "op"
    path.write_text(OP + "\n")
    s = Settings.from_env({"IMUNBAN_WEB_VIEWER_TOKEN": V, "IMUNBAN_WEB_OPERATOR_TOKEN_FILE": str(path)})
    assert s.web_viewer_token == Secret(V) and s.web_operator_token == Secret(OP)
    assert V not in repr(s) and OP not in repr(s)
    with pytest.raises(ConfigError, match="IMUNBAN_WEB_VIEWER_TOKEN: the token must be at least 16"):
        Settings.from_env({"IMUNBAN_WEB_VIEWER_TOKEN": "short"})
    with pytest.raises(ConfigError, match="must differ"):
        Settings.from_env({"IMUNBAN_WEB_VIEWER_TOKEN": V, "IMUNBAN_WEB_OPERATOR_TOKEN": V})
    with pytest.raises(ConfigError, match="set only one of IMUNBAN_WEB_OPERATOR_TOKEN and"):
        Settings.from_env({"IMUNBAN_WEB_OPERATOR_TOKEN": OP, "IMUNBAN_WEB_OPERATOR_TOKEN_FILE": str(path)})
