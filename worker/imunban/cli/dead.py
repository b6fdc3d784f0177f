"""``imunban dead list|replay|purge``: dead letters, all of them or chosen by ErrorCode, group or member.

The filters are the console's (:class:`~imunban.deadletter.DeadFilter`, the same scan). Exit codes: 0 done
(also ``--all`` with nothing to do), 1 a selection (GROUP_ID MEMBER..., ``--code``, ``--group``) that matched no
dead letter, 2 bad input or an error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence

from rich.table import Table

from imunban.cli.common import fmt_ms, open_app, out_console, print_json
from imunban.deadletter import DeadFilter, DeadLetter, DeadLetters, ReplayResult
from imunban.errors import StoreError, ValidationError
from imunban.validation import validate_group_id, validate_members

#: ErrorCodes are int32 (transport failures are 0 or minus the HTTP status).
CODE_LOW, CODE_HIGH = -(2**31), 2**31 - 1
#: Dead letters per replay script call when replaying a selection.
REPLAY_CHUNK = 1_000
#: What "nothing matched" exits with: the selection named something that is not (or no longer) a dead letter.
NO_MATCH = 1

Pair = tuple[str, str]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = sub.add_parser(
        "dead",
        help="dead letters: list, replay, purge (all, or by ErrorCode, group or member)",
        description="Dead letters: requests that ended dead. Choose them by --code and/or --group (the console's "
        "filters), by GROUP_ID MEMBER..., or all with --all. Exit 1 when a selection matches no dead letter.",
    )
    dsub = d.add_subparsers(dest="dead_action", metavar="ACTION", required=True)
    dl = dsub.add_parser("list", help="dead letters, oldest first", description="List dead letters, oldest first.")
    dl.add_argument("--json", action="store_true", help="machine-readable output")
    dl.add_argument("--limit", type=_bounded(1), default=100, help="at most this many (default 100)")
    dl.add_argument("--offset", type=_bounded(0), default=0, help="skip this many first (of those that match)")
    _filter_options(dl)
    _app_option(dl)
    dl.set_defaults(handler=run_dead_list)
    dr = dsub.add_parser(
        "replay",
        help="schedule dead letters again, due now, with a fresh attempt budget",
        description="Schedule dead letters again, due now, with a fresh attempt budget: --all, those matching "
        "--code/--group, or GROUP_ID MEMBER...",
    )
    _selection(dr, "replay every dead letter")
    dr.set_defaults(handler=run_dead_replay)
    dp = dsub.add_parser(
        "purge",
        help="delete dead letters for good (requires --yes)",
        description="Delete dead letters for good: --all, those matching --code/--group, or GROUP_ID MEMBER...; "
        "--yes confirms.",
    )
    _selection(dp, "delete every dead letter")
    dp.add_argument("--yes", action="store_true", help="really delete them")
    dp.set_defaults(handler=run_dead_purge)


def _selection(parser: argparse.ArgumentParser, all_text: str) -> None:
    parser.add_argument("--all", action="store_true", help=all_text)
    parser.add_argument("group_id", nargs="?", metavar="GROUP_ID")
    parser.add_argument("members", nargs="*", metavar="MEMBER")
    _filter_options(parser)
    _app_option(parser)


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--code", type=_code, default=None, help="only dead letters of this ErrorCode")
    parser.add_argument("--group", metavar="GROUP_ID", default=None, help="only dead letters of this group")


def _app_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app", default=None, help="the app (IMUNBAN_APPS_FILE); may be left out with one app")


def _bounded(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {text!r}")
        return value

    return parse


def _code(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an ErrorCode (an integer), got {text!r}") from None
    if not CODE_LOW <= value <= CODE_HIGH:
        raise argparse.ArgumentTypeError(f"must be an integer from {CODE_LOW:,} to {CODE_HIGH:,}")
    return value


def dead_filter(args: argparse.Namespace) -> DeadFilter:
    """The --code/--group filter of ``args`` (the group validated, naming --group)."""
    group = None if args.group is None else validate_group_id(args.group, "--group")
    return DeadFilter(args.code, group)


# -- list -------------------------------------------------------------------------------------


def run_dead_list(args: argparse.Namespace) -> int:
    flt = dead_filter(args)
    dead = open_app(args.app).dead
    if flt.active:
        # The scan goes newest first; listed oldest first, as without a filter.
        matching = dead.matching(flt)[::-1]
        letters, total = matching[args.offset : args.offset + args.limit], len(matching)
    else:
        letters, total = dead.list(offset=args.offset, limit=args.limit), dead.count()
    if args.json:
        print_json([letter.as_dict() for letter in letters])
        return 0
    what = f"dead letters{_filter_text(flt)}"
    if not letters:
        print(f"no {what}{' at this offset' if total else ''} ({total:,} in all)")
        return 0
    table = Table(title=f"{what}: {total:,} (showing {len(letters)} from {args.offset})", title_justify="left")
    for column in ("group", "member", "code", "info", "attempts", "dead since"):
        table.add_column(column)
    for letter in letters:
        table.add_row(
            letter.group_id, letter.member, str(letter.code), letter.info, str(letter.attempts), fmt_ms(letter.at_ms)
        )
    out_console().print(table)
    return 0


def _filter_text(flt: DeadFilter) -> str:
    parts = ([f"ErrorCode {flt.code}"] if flt.code is not None else []) + (
        [f"group {flt.group_id}"] if flt.group_id else []
    )
    return f" of {' and '.join(parts)}" if parts else ""


# -- selection --------------------------------------------------------------------------------


def _chosen(args: argparse.Namespace, verb: str) -> DeadFilter | list[Pair] | None:
    """What the arguments choose: None for --all, a filter, or the named (group, member) pairs."""
    flt = dead_filter(args)
    given = [args.all, args.group_id is not None, flt.active]
    if sum(given) != 1:
        raise ValidationError(verb, "give one of --all, --code/--group, or GROUP_ID MEMBER [MEMBER ...]")
    if args.all:
        return None
    if flt.active:
        return flt
    if not args.members:
        raise ValidationError("MEMBER", "give at least one MEMBER after GROUP_ID")
    group_id = validate_group_id(args.group_id)
    return [(group_id, member) for member in validate_members(args.members)]


def _pairs(letters: Iterable[DeadLetter]) -> list[Pair]:
    return [(letter.group_id, letter.member) for letter in letters]


def _no_match(what: str) -> int:
    # Nothing of what was named is a dead letter: a typo, or replayed or purged already.
    print(f"imunban: no dead letter matched: {what}; nothing done", file=sys.stderr)
    return NO_MATCH


def _plural(n: int, word: str = "dead letter") -> str:
    return f"{n:,} {word}{'s' if n != 1 else ''}"


# -- replay -----------------------------------------------------------------------------------


def run_dead_replay(args: argparse.Namespace) -> int:
    chosen = _chosen(args, "replay")
    dead = open_app(args.app).dead
    if chosen is None:
        result = _replay_rounds(dead.replay_rounds())
        if not result.matched:
            print("no dead letters to replay")
            return 0
    else:
        pairs = _pairs(dead.matching(chosen)) if isinstance(chosen, DeadFilter) else chosen
        result = _replay_rounds(dead.replay(pairs[i : i + REPLAY_CHUNK]) for i in range(0, len(pairs), REPLAY_CHUNK))
        if not result.matched:
            if isinstance(chosen, DeadFilter):
                return _no_match(f"none is{_filter_text(chosen)}")
            return _no_match(f"none of the {_plural(len(chosen), 'request')} given is a dead letter")
    line = f"replayed {_plural(result.replayed)} (due now)"
    if result.not_dead:
        line += f"; {result.not_dead} of those given {'was' if result.not_dead == 1 else 'were'} not a dead letter"
    print(line)
    if result.skipped:
        print(result.skipped_text())
    return 0


def _replay_rounds(rounds: Iterable[ReplayResult]) -> ReplayResult:
    """Replay round by round (each atomic); a Redis error part way says what the rounds before it did."""
    total = ReplayResult()
    try:
        for step in rounds:
            total += step
    except StoreError as exc:
        done = f"{_plural(total.replayed)} replayed ({total.skipped} skipped)"
        raise StoreError(f"{exc}; stopped part way: {done} before the error") from exc
    return total


# -- purge ------------------------------------------------------------------------------------


def run_dead_purge(args: argparse.Namespace) -> int:
    chosen = _chosen(args, "purge")
    dead = open_app(args.app).dead
    if chosen is None:
        if not args.yes:
            raise ValidationError("--yes", f"purge deletes all {dead.count():,} dead letters for good; add --yes")
        purged = dead.purge()
    else:
        pairs = _pairs(dead.matching(chosen)) if isinstance(chosen, DeadFilter) else chosen
        if isinstance(chosen, DeadFilter) and not pairs:
            return _no_match(f"none is{_filter_text(chosen)}")
        if not args.yes:
            many = f"{len(pairs):,} dead letter{'s' if len(pairs) != 1 else ''}"
            what = f"the {many}{_filter_text(chosen)}" if isinstance(chosen, DeadFilter) else f"up to {many} given"
            raise ValidationError("--yes", f"purge deletes {what} for good; add --yes")
        purged = _purge(dead, pairs)
        if not purged:
            return _no_match(f"none of the {_plural(len(pairs), 'request')} given is a dead letter")
    print(f"purged {_plural(purged)}")
    return 0


def _purge(dead: DeadLetters, pairs: Sequence[Pair]) -> int:
    total = 0
    try:
        for step in dead.purge_some(pairs):
            total += step
    except StoreError as exc:
        raise StoreError(f"{exc}; stopped part way: {_plural(total)} purged before the error") from exc
    return total
