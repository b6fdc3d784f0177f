"""Logging set-up: text or JSON lines, with the usersig redacted from every record.

- JSON (``IMUNBAN_LOG_FORMAT=json``) is one object per line and nothing else: Python warnings are
  captured into records, and the worker keeps Celery from printing its banner (cli/run.py). A log
  call's ``extra=`` fields named in :data:`EXTRA_FIELDS` (``app``, ``group_id``, ``code``, ...) become
  fields of the line.
- Celery's two per-task lines ("Task ... received", "Task ... succeeded") are DEBUG, not INFO: a
  worker runs hundreds of internal delivery tasks a minute. The worker's summary line
  (imunban.summary) says what they did, once per interval.
- :func:`effective_config` is what a worker says at start: its version and settings, without any
  secret (no key, no token, URLs without their password).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from imunban.apps import Apps
from imunban.logredact import install_redaction, redact_url
from imunban.settings import Settings
from imunban.version import VERSION

#: ``extra=`` fields a JSON line carries when a log call sets them.
EXTRA_FIELDS = ("app", "group_id", "code", "count", "summary", "interval_s", "config", "version")
#: Celery's loggers of the per-task lines.
TASK_LOGGERS = frozenset({"celery.app.trace", "celery.worker.strategy"})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, process, the :data:`EXTRA_FIELDS` set (+ exc)."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for name in EXTRA_FIELDS:
            if name in record.__dict__:
                payload[name] = record.__dict__[name]
        if record.exc_info:
            payload["exc"] = record.exc_text or self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack"] = record.stack_info
        return json.dumps(payload, default=str)


def json_line(logger: str, level: int, message: str) -> str:
    """One JSON line as a record of ``logger`` would be (for text a library writes straight to a file)."""
    record = logging.LogRecord(logger, level, __file__, 0, message.strip(), None, None)
    return JsonFormatter().format(record) + "\n"


class TaskLinesAtDebug(logging.Filter):
    """Celery's per-task INFO lines become DEBUG records: shown only when the root logger is at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name in TASK_LOGGERS and record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def setup_logging(settings: Settings) -> None:
    """Configure the root logger once per process from IMUNBAN_LOG_FORMAT / IMUNBAN_LOG_LEVEL."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(processName)s %(name)s: %(message)s"))
    handler.addFilter(TaskLinesAtDebug())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # Warnings (a library's deprecation, say) as log records: one line each, JSON in JSON mode.
    logging.captureWarnings(True)
    install_redaction()


def effective_config(settings: Settings, apps: Apps, **more: object) -> dict[str, Any]:
    """What a process runs with, safe to log: the version, each app and the deployment's settings.

    Never a secret: keys and tokens are not read here, and URLs lose their password (logredact.redact_url).
    """
    return {
        "version": VERSION,
        "apps": [
            {
                "app": app.name,
                "sdkappid": app.sdkappid,
                "region": app.region,
                "base_url": app.base_url,
                "identifier": app.identifier,
                "rate_limit_per_s": app.rate_limit_per_s,
            }
            for app in apps
        ],
        "redis": "embedded" if settings.redis_url is None else redact_url(settings.redis_url),
        "broker": None if settings.broker_url is None else redact_url(settings.broker_url),
        "key_prefix": settings.key_prefix,
        "durable_replicas": settings.durable_replicas,
        "metrics": f"{settings.metrics_host}:{settings.metrics_port}" if settings.metrics_port else "off",
        "log": f"{settings.log_format} {settings.log_level}",
        **more,
    }


def config_line(config: dict[str, Any]) -> str:
    """The start-up line's text: ``imunban 0.2.0: apps default (sdkappid ..., region ...), redis ..., ...``."""
    apps = ", ".join(
        f"{a['app']} (sdkappid {a['sdkappid']}, {a['base_url'] or a['region']}, admin {a['identifier']}, "
        f"{a['rate_limit_per_s']:g} calls/s)"
        for a in config["apps"]
    )
    rest = ", ".join(f"{key} {value}" for key, value in config.items() if key not in ("version", "apps") and value)
    return f"imunban {config['version']}: apps {apps}; {rest}"
