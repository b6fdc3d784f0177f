"""``imunban enqueue`` and ``imunban cancel``: the producer side of the command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import replace
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from imunban.apps import Apps
from imunban.cli.common import check_app, open_deployment
from imunban.cli.durations import parse_duration
from imunban.cli.jsonl import Validated, read_all
from imunban.connection import server_time_ms
from imunban.errors import StoreError, ValidationError
from imunban.keys import Keys
from imunban.producer import Producer
from imunban.settings import Settings
from imunban.store import ENQUEUE_CHUNK, PIPELINE_DEPTH, EnqueueRefusedError, EnqueueResult
from imunban.validation import (
    UnbanRequest,
    build_request,
    parse_at,
    validate_group_id,
    validate_members,
    validate_version,
)

#: Files at least this big get a progress bar when stderr is a terminal.
PROGRESS_MIN_BYTES = 1 << 20
#: Members per store round (one pipelined burst of enqueue scripts); the bar advances per round.
STORE_ROUND = ENQUEUE_CHUNK * PIPELINE_DEPTH


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "enqueue",
        help="unban members now or later (positional, or JSON Lines with --file)",
        description="Unban MEMBERs of GROUP_ID now, at a time (--at) or after a delay (--in); or read JSON Lines "
        'requests {"group_id": ..., "member"|"members": ..., "at"?, "priority"?, "version"?} from --file PATH or - '
        "(stdin). A file is validated completely before anything is stored (every bad line is reported, with its "
        "number). --at/--in/--priority/"
        "--instruction-version are defaults for lines that do not say.",
    )
    p.add_argument("group_id", nargs="?", metavar="GROUP_ID")
    p.add_argument("members", nargs="*", metavar="MEMBER")
    p.add_argument("--file", "-f", metavar="PATH", help="JSON Lines file, or - for stdin")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--at", metavar="WHEN", help="due time: Unix seconds or ISO-8601 (naive = UTC)")
    when.add_argument("--in", dest="delay", metavar="DURATION", help="due after 90s, 15m, 2h, 3d, 1h30m or seconds")
    p.add_argument("--priority", choices=("high", "normal"), default=None, help="high: a person is waiting")
    _app_option(p)
    _version_option(p)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: for big files when stderr is a terminal)")  # fmt: skip
    p.set_defaults(handler=run_enqueue)

    c = sub.add_parser("cancel", help="cancel unbans", description="End requests: pending (ready or scheduled) "
                       "ones are removed; a copy in flight is not sent unless its call is on the wire; a dead "
                       "letter of the request is removed, so no replay brings it back.")  # fmt: skip
    c.add_argument("group_id", metavar="GROUP_ID")
    c.add_argument("members", nargs="+", metavar="MEMBER")
    _app_option(c)
    _version_option(c)
    c.set_defaults(handler=run_cancel)


def _app_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--app", default=None, help="the app (IMUNBAN_APPS_FILE) it is for; may be left out with one app"
    )


def _version_option(parser: argparse.ArgumentParser) -> None:
    # Not --version: that conventionally prints the program's version.
    parser.add_argument(
        "--instruction-version", dest="instruction_version", metavar="N", default=None,
        help="order between producers: an integer >= 0 (e.g. the ban record's update time in ms); an instruction "
        "with a lower version than one already applied to a member is ignored",
    )  # fmt: skip


def _parse_version(text: str | None) -> int | None:
    """The --instruction-version text as an int64, or None; errors name the option."""
    if text is None:
        return None
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise ValidationError("--instruction-version", f"must be an integer, got {text!r}") from None
    return validate_version(value, "--instruction-version")


def _producer(settings: Settings, catalog: Apps) -> Producer:
    return Producer(open_deployment(settings, apps=catalog))


def _default_at_ms(args: argparse.Namespace, producer: Producer | None) -> int | None:
    if args.at is not None:
        return parse_at(args.at, "--at")
    if args.delay is not None:
        seconds = parse_duration(args.delay, "--in")
        assert producer is not None
        # The Redis server's clock is the one due times are compared with, so --in counts from it (on a
        # cluster, the clock of the node holding the app named, else of the deployment's own keys).
        deployment = producer.deployment
        keys = (
            deployment.app(args.app).keys if args.app or len(deployment) == 1 else Keys(deployment.settings.key_prefix)
        )
        now_ms = server_time_ms(deployment.client, keys.stats)
        return parse_at((now_ms + round(seconds * 1000)) / 1000, "--in")
    return None


def run_enqueue(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if args.file is not None:
        if args.group_id is not None:
            raise ValidationError("GROUP_ID", "give either GROUP_ID MEMBER... or --file, not both")
        return _enqueue_file(args, settings)
    if args.group_id is None or not args.members:
        raise ValidationError("MEMBER", "give GROUP_ID and at least one MEMBER, or --file PATH|-")
    # Everything that needs no server is checked first: bad input never starts the embedded Redis.
    validate_group_id(args.group_id)
    validate_members(args.members)
    version = _parse_version(args.instruction_version)
    if args.at is not None:
        parse_at(args.at, "--at")
    if args.delay is not None:
        parse_duration(args.delay, "--in")
    catalog = settings.apps()
    check_app(catalog, args.app)  # an unknown or missing app is refused before Redis is touched
    producer = _producer(settings, catalog)
    request = build_request(args.group_id, args.members, None, args.priority, app=args.app)
    at_ms = _default_at_ms(args, producer)
    result = producer.deployment.enqueue([replace(request, at_ms=at_ms, version=version)])
    print(_summary(result))
    return 0


def _enqueue_file(args: argparse.Namespace, settings: Settings) -> int:
    default_version = _parse_version(args.instruction_version)
    if args.at is not None:
        parse_at(args.at, "--at")
    if args.delay is not None:
        parse_duration(args.delay, "--in")
    catalog = settings.apps()
    if args.app is not None:
        check_app(catalog, args.app)
    producer = _producer(settings, catalog) if args.delay is not None else None
    default_at_ms = _default_at_ms(args, producer)
    with ExitStack() as stack:
        stream, size = _open_input(args.file, stack)
        progress = _progress(args.progress, size, stack)
        reading = progress.add_task("validating", total=size) if progress else None
        validated = read_all(
            _tracked(stream, progress, reading),
            default_at_ms=default_at_ms,
            default_priority=args.priority or "normal",
            default_version=default_version,
            default_app=args.app,
            check_app=_app_checker(catalog),  # every line's app is checked before anything is stored
        )
        if progress is not None and reading is not None:
            progress.update(reading, completed=size or 0, total=size)
        producer = producer or _producer(settings, catalog)
        result = _store(producer, validated, progress)
    print(_summary(result, lines=validated.lines))
    return 0


def _app_checker(catalog: Apps) -> Callable[[str | None], object]:
    """``catalog.resolve`` remembering the apps it found (a file names the same few apps on every line)."""
    known: set[str | None] = set()

    def check(app: str | None) -> None:
        if app not in known:
            catalog.resolve(app)  # ValidationError naming 'app'; read_all adds the line
            known.add(app)

    return check


def _open_input(path: str, stack: ExitStack) -> tuple[IO[bytes], int | None]:
    if path == "-":
        return sys.stdin.buffer, None
    try:
        stream = stack.enter_context(open(path, "rb"))  # noqa: SIM115  (closed by the ExitStack)
    except OSError as exc:
        raise ValidationError("--file", f"cannot read {path!r}: {exc.strerror}") from None
    try:
        size: int | None = os.fstat(stream.fileno()).st_size
    except OSError:
        size = None
    return stream, size


def _progress(wanted: bool | None, size: int | None, stack: ExitStack) -> Progress | None:
    console = Console(stderr=True)
    if wanted is None:
        wanted = console.is_terminal and (size is None or size >= PROGRESS_MIN_BYTES)
    if not wanted:
        return None
    progress = Progress(
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    stack.enter_context(progress)
    return progress


def _tracked(stream: IO[bytes], progress: Progress | None, task: TaskID | None) -> Iterator[bytes]:
    if progress is None or task is None:
        yield from stream
        return
    done = 0
    for count, line in enumerate(stream, start=1):
        done += len(line)
        if count % 2_000 == 0:
            progress.update(task, completed=done)
        yield line
    progress.update(task, completed=done)


def _store(producer: Producer, validated: Validated, progress: Progress | None) -> EnqueueResult:
    """Store in rounds of about STORE_ROUND members so a progress bar can follow."""
    task = progress.add_task("storing", total=validated.members) if progress is not None else None
    # Few groups per store chunk is several times faster; the sort is stable, so for any one
    # (group, member) the last line still wins. Apps first: a round then mostly touches one app.
    validated.requests.sort(key=lambda request: (request.app or "", request.group_id))
    total = EnqueueResult()
    batch: list[UnbanRequest] = []
    members = 0
    for request in validated.requests:
        batch.append(request)
        members += len(request.members)
        if members >= STORE_ROUND:
            total += _store_round(producer, batch, total, validated)
            if progress is not None and task is not None:
                progress.advance(task, members)
            batch, members = [], 0
    if batch:
        total += _store_round(producer, batch, total, validated)
        if progress is not None and task is not None:
            progress.advance(task, members)
    return total


def _store_round(
    producer: Producer, batch: list[UnbanRequest], done: EnqueueResult, validated: Validated
) -> EnqueueResult:
    """One store round; if Redis refuses part way, the error counts everything the file stored so far."""
    total = EnqueueResult()
    lines = f"{validated.lines} line{'s' if validated.lines != 1 else ''}"
    try:
        for app in dict.fromkeys(request.app for request in batch):
            store = producer.deployment.app(app).store
            total += store.enqueue([request for request in batch if request.app == app])
        return total
    except EnqueueRefusedError as exc:
        raise EnqueueRefusedError(
            done + total + exc.result,
            requested=validated.members,
            source=f" from the file's {lines}",
        ) from exc
    except StoreError as exc:  # Redis away, or WAIT unconfirmed (DurabilityError): say how far the file got
        stored = (done + total).stored
        raise type(exc)(
            f"{exc}; {stored:,} of {validated.members:,} requests from the file's {lines} were stored and "
            "confirmed before it (the round that failed may or may not be stored); sending the file again is "
            "safe (a pending request is replaced, not duplicated)"
        ) from exc


def _summary(result: EnqueueResult, *, lines: int | None = None) -> str:
    source = f" from {lines} line{'s' if lines != 1 else ''}" if lines is not None else ""
    return (
        f"stored {result.stored} request{'s' if result.stored != 1 else ''}{source}: {result.ready} ready, "
        f"{result.scheduled} scheduled ({result.replaced} replaced a pending request)"
        + (f"; {result.stale} ignored: a higher version was already applied" if result.stale else "")
    )


def run_cancel(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    group_id = validate_group_id(args.group_id)
    members: Sequence[str] = validate_members(args.members)
    version = _parse_version(args.instruction_version)
    catalog = settings.apps()
    check_app(catalog, args.app)
    removed = _producer(settings, catalog).cancel(group_id, list(members), version=version, app=args.app)
    # "Pending" here includes a copy in flight: the cancel revoked it.
    print(f"cancelled {removed} of {len(members)} member{'s' if len(members) != 1 else ''} (the rest were not pending)")
    return 0
