"""Where the embedded Redis lives and when it is used: pure decisions, nothing started."""

from __future__ import annotations

from pathlib import Path

import pytest

from imunban.local import embedded
from imunban.settings import Settings


def test_default_data_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without IMUNBAN_DATA_DIR the data lives under $XDG_DATA_HOME/imunban, else ~/.local/share/imunban."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert embedded.data_dir(None) == tmp_path / "imunban"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert embedded.data_dir(None) == tmp_path / "home" / ".local" / "share" / "imunban"
    assert embedded.data_dir("~/x") == tmp_path / "home" / "x"


def test_configured_data_dir_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """IMUNBAN_DATA_DIR (Settings.data_dir) is used as given, whatever XDG_DATA_HOME says."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert embedded.data_dir(str(tmp_path / "mine")) == tmp_path / "mine"


def test_a_configured_url_never_starts_the_embedded_server() -> None:
    """With IMUNBAN_REDIS_URL set, resolving the settings changes nothing (and starts no process)."""
    settings = Settings.from_env({"IMUNBAN_REDIS_URL": "redis://redis.internal:6379/0"})
    assert embedded.resolve_settings(settings) is settings
