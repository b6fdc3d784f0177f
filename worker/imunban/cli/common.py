"""Helpers shared by the producer and operator commands: opening the deployment, printing times."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import redis
from rich.console import Console

from imunban import deployment
from imunban.apps import Apps
from imunban.connection import connect, require_reachable
from imunban.errors import ValidationError
from imunban.ha import failover_retry
from imunban.local import embedded
from imunban.settings import Settings
from imunban.state import two_units


def open_client(settings: Settings) -> redis.Redis:
    """Connect to IMUNBAN_REDIS_URL, or to the embedded server, saying so on stderr if it had to start it.

    A command fails within about a second when Redis is down (workers ride out restarts instead).
    """
    url = settings.redis_url
    if url is None:
        folder, url = embedded.status(settings.data_dir)
        if url is None:
            url = embedded.ensure_running(settings.data_dir)
            print(
                f"imunban: started the embedded Redis server at {url} (data in {folder}); "
                "every imunban command on this machine shares it; stop it with `imunban redis stop`",
                file=sys.stderr,
            )
    client = connect(settings, url=url)
    client.set_retry(failover_retry(cap_s=0.5, retries=4))
    require_reachable(client, "IMUNBAN_REDIS_URL" if settings.redis_url else "the embedded Redis")
    return client


def open_deployment(settings: Settings | None = None, *, apps: Apps | None = None) -> deployment.Deployment:
    """The deployment of ``settings`` (default: the environment) on :func:`open_client`; reads no secret key."""
    settings = settings or Settings.from_env()
    return deployment.open_deployment(settings, client=open_client(settings), apps=apps)


def open_app(name: str | None, settings: Settings | None = None) -> deployment.AppEngine:
    """The app ``--app`` names (None: the only one), on its opened deployment.

    The name is checked before Redis is touched (an unknown app never starts the embedded server):
    an error names ``--app`` and the choices.
    """
    settings = settings or Settings.from_env()
    catalog = settings.apps()
    check_app(catalog, name)
    return open_deployment(settings, apps=catalog).app(name)


def check_app(catalog: Apps, name: object) -> str:
    """The name of the app ``name`` resolves to in ``catalog``; ValidationError naming ``--app`` otherwise."""
    try:
        return catalog.resolve(name).name
    except ValidationError as exc:
        raise ValidationError("--app", exc.reason) from None


#: The width tables are laid out for when stdout is not a terminal: wide enough that no column is cut.
PIPED_WIDTH = 10_000


def out_console(*, highlight: bool = True) -> Console:
    """A console on stdout: a terminal's width, or piped, wide enough that no column is cut to ``…`` or wrapped."""
    console = Console(soft_wrap=True, highlight=highlight)
    return console if console.is_terminal else Console(soft_wrap=True, highlight=highlight, width=PIPED_WIDTH)


def print_json(data: object) -> None:
    print(json.dumps(data, indent=2))


def fmt_ms(ms: int | None) -> str:
    """Epoch milliseconds as ISO-8601 UTC (to the millisecond), '-' for None."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fmt_relative(ms: int | None, now_ms: int) -> str:
    """``fmt_ms`` plus how far from now, e.g. ``2026-01-01T00:00:00.000Z (in 2h 5m)``."""
    if ms is None:
        return "-"
    span = _span(abs(ms - now_ms) / 1000)
    return f"{fmt_ms(ms)} ({'in ' + span if ms >= now_ms else span + ' ago'})"


def _span(seconds: float) -> str:
    """1.5s, 12m 3s, 2h 5m, 3d 4h: the two largest units."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    return two_units(int(seconds))


def bounded_int(low: int, high: int | None = None, *, what: str = "an integer") -> Callable[[str], int]:
    """An argparse ``type`` accepting integers in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


def bounded_float(low: float, high: float, *, low_open: bool = False, what: str = "a number") -> Callable[[str], float]:
    """An argparse ``type`` accepting finite numbers in [low, high] (or (low, high] with ``low_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        too_low = value <= low if low_open else value < low
        if not math.isfinite(value) or too_low or value > high:
            opening = "(" if low_open else "["
            raise argparse.ArgumentTypeError(f"must be in {opening}{low:g}, {high:g}], got {text}")
        return value

    return parse
