"""Logs: JSON lines with their fields, Celery's per-task lines at DEBUG, warnings captured, the start-up line safe."""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from imunban.apps import AppConfig, Apps
from imunban.cli import build_parser
from imunban.logredact import redact_url
from imunban.logs import JsonFormatter, TaskLinesAtDebug, config_line, effective_config, json_line, setup_logging
from imunban.settings import Secret, Settings
from imunban.summary import Counts, Tally, summary_line
from imunban.version import VERSION


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Whatever a test does to the root logger and warning capture is undone after it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    logging.captureWarnings(False)
    root.handlers[:] = handlers
    root.setLevel(level)


def record(name: str, level: int, message: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord(name, level, __file__, 1, message, None, None)
    rec.__dict__.update(extra)
    return rec


def test_json_line_carries_app_group_and_code() -> None:
    """extra= fields app, group_id, code become fields of the JSON line; unknown extras do not."""
    line = JsonFormatter().format(
        record("imunban.delivery", logging.WARNING, "dead-lettered", app="cn", group_id="@TGS#1", code=10004, x=1)
    )
    doc = json.loads(line)
    assert (doc["app"], doc["group_id"], doc["code"], doc["level"]) == ("cn", "@TGS#1", 10004, "WARNING")
    assert "x" not in doc
    assert "\n" not in line


def test_celery_task_lines_are_debug() -> None:
    """Celery's "Task ... received/succeeded" INFO lines become DEBUG: dropped at INFO, shown as DEBUG at DEBUG."""
    flt, root = TaskLinesAtDebug(), logging.getLogger()
    level = root.level
    try:
        root.setLevel(logging.INFO)
        for name in ("celery.app.trace", "celery.worker.strategy"):
            assert flt.filter(record(name, logging.INFO, "Task imunban.deliver[1] received")) is False
        assert flt.filter(record("celery.app.trace", logging.ERROR, "Task failed")) is True
        assert flt.filter(record("imunban.summary", logging.INFO, "summary")) is True
        root.setLevel(logging.DEBUG)
        shown = record("celery.app.trace", logging.INFO, "Task imunban.deliver[1] succeeded")
        assert flt.filter(shown) is True and shown.levelname == "DEBUG"
    finally:
        root.setLevel(level)


def test_json_mode_captures_warnings_as_json_lines(root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    """With IMUNBAN_LOG_FORMAT=json a Python warning is one JSON line, like every other record."""
    setup_logging(Settings(log_format="json"))
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("something old\nover two lines", DeprecationWarning, stacklevel=1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["logger"] == "py.warnings" and "something old" in doc["message"]
    assert capsys.readouterr().err == ""


def test_json_line_of_a_library_notice() -> None:
    """json_line turns text a library writes straight to a file (Celery's shutdown notice) into a JSON line."""
    doc = json.loads(json_line("celery.apps.worker", logging.INFO, "\nworker: Warm shutdown (MainProcess)\n"))
    assert doc["message"] == "worker: Warm shutdown (MainProcess)" and doc["level"] == "INFO"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2secret@redis:6379/0", "redis://:REDACTED@redis:6379/0"),
        ("redis://user:p@ss@h:1/0", "redis://user:REDACTED@h:1/0"),
        ("redis+sentinel://:hunter2secret@h1:26379,h2:26379/svc", "redis+sentinel://:REDACTED@h1:26379,h2:26379/svc"),
        ("unix:///run/redis.sock?password=hunter2secret&db=1", "unix:///run/redis.sock?password=REDACTED&db=1"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("rediss://user@h:6380/0", "rediss://user@h:6380/0"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    """A URL's password (user info or password= option) is redacted; the rest is kept."""
    assert redact_url(url) == shown


def test_start_up_line_has_the_configuration_and_no_secret(tmp_path: Path) -> None:
    """The start-up line names version, apps, region or base URL, rate limit and Redis; no key, token or password."""
    secrets = ["k" * 64, "viewer-token-0123456789", "operator-token-0123456789", "redispass123", "sentinelpass9"]
    settings = Settings(
        redis_url=f"redis://:{secrets[3]}@redis.internal:6379/0",
        broker_url=f"redis+sentinel://:{secrets[3]}@s1:26379/mymaster",
        sentinel_password=Secret(secrets[4]),
        web_viewer_token=Secret(secrets[1]),
        web_operator_token=Secret(secrets[2]),
        metrics_port=9464,
    )
    apps = Apps(
        [
            AppConfig("cn", 1400000001, secret_key=Secret(secrets[0]), region="china", rate_limit_per_s=150),
            AppConfig("intl", 1400000002, secret_key_file=tmp_path / "k", base_url="http://sim:8080"),
        ]
    )
    config = effective_config(settings, apps, worker="w1@host")
    text = config_line(config) + json.dumps(config)
    for secret in secrets:
        assert secret not in text
    line = config_line(config)
    assert line.startswith(f"imunban {VERSION}: apps cn (sdkappid 1400000001, china, admin administrator, 150 calls/s)")
    assert "intl (sdkappid 1400000002, http://sim:8080" in line
    assert "redis redis://:REDACTED@redis.internal:6379/0" in line and "metrics 127.0.0.1:9464" in line
    assert config["version"] == VERSION


def test_version_option(capsys: pytest.CaptureFixture[str]) -> None:
    """`imunban --version` prints `imunban X.Y.Z` and exits 0."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"imunban {VERSION}"


def test_tally_counts_per_app_and_starts_afresh() -> None:
    """The tally counts each bound app's events apart; take() hands them over (idle apps at zero) and resets."""
    tally = Tally()
    cn, intl = tally.bind("cn"), tally.bind("intl")
    cn.api_call(0, 20, 0.01)
    cn.api_call(0, 5, 0.5, "transport")
    cn.delivered([1, 2, 3])
    intl.retried(4)
    intl.dead(1, 10004)
    tally.rejected("imunban.unban")
    taken = tally.take(["cn", "intl", "idle"])
    assert taken["cn"] == Counts(delivered=3, calls=2, transport_failures=1)
    assert taken["intl"] == Counts(retries=4, dead=1)
    assert taken["idle"] == Counts() and taken["-"] == Counts(rejected=1)
    assert tally.take(["cn"]) == {"cn": Counts()}


def test_summary_line() -> None:
    """One app: its counts; several: one part per app; rejected messages when there were any."""
    one = summary_line({"default": Counts(delivered=1200, calls=61, retries=3)}, 60)
    assert one == (
        "summary (last 60 s): delivered 1,200 in 61 calls, 3 retries, 0 dead, 0 group gone, 0 transport failures"
    )
    two = summary_line({"intl": Counts(dead=2), "cn": Counts(), "-": Counts(rejected=1)}, 30)
    assert two.startswith("summary (last 30 s): app cn: delivered 0")
    assert "; app intl: delivered 0 in 0 calls, 0 retries, 2 dead" in two and two.endswith("1 messages rejected")
