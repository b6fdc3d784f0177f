"""Property-based tests: validators, the JSON Lines import and the Celery payload path never crash,
and nothing is stored for invalid input."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import string
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import redis
from celery import Celery
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from imunban.cli import main
from imunban.errors import ValidationError
from imunban.keys import Keys
from imunban.local.redis_server import RedisServer
from imunban.settings import Settings
from imunban.stats import status, status_of_apps
from imunban.validation import (
    MAX_AT_S,
    MIN_AT_S,
    UnbanRequest,
    build_request,
    parse_at,
    request_from_mapping,
    validate_group_id,
    validate_member,
    validate_members,
    validate_priority,
)
from imunban_celery.app import create_celery
from imunban_celery.guard import envelope_problem, transport_problem
from imunban_celery.unban import cancel, unban

KEYS = Keys("imunban")
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

# -- generators that know whether what they produce is valid (an oracle independent of the code) --

_ascii = "".join(chr(c) for c in range(0x20, 0x7F))
_junk = _ascii + "\x00\x1f\x7f\t\né€😀"


@st.composite
def ids(draw: st.DrawFn, limit: int) -> tuple[Any, bool]:
    value = draw(
        st.one_of(
            st.text(alphabet=_ascii, min_size=1, max_size=limit + 4),
            st.text(alphabet=_junk, max_size=limit + 4),
            st.sampled_from(["", " ", "   ", None, 7, 1.5, True, ["a"], {"a": 1}]),
        )
    )
    ok = (
        isinstance(value, str)
        and 1 <= len(value) <= limit
        and all(0x20 <= ord(c) <= 0x7E for c in value)
        and value.strip(" ") != ""
    )
    return value, ok


@st.composite
def member_lists(draw: st.DrawFn) -> tuple[Any, bool]:
    if draw(st.integers(0, 9)) == 0:
        value = draw(st.sampled_from(["alice", None, 5, {"alice": 1}, ("a", "b")]))
        return value, isinstance(value, tuple)
    items = draw(st.lists(ids(32), max_size=5))
    return [v for v, _ in items], bool(items) and all(ok for _, ok in items)


@st.composite
def times(draw: st.DrawFn) -> tuple[Any, bool]:
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return None, True
    if kind == 1:
        seconds = draw(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**12), 10**14))
        ok = not isinstance(seconds, bool) and math.isfinite(seconds) and MIN_AT_S <= seconds < MAX_AT_S
        return seconds, ok
    if kind == 2:
        seconds = draw(st.integers(MIN_AT_S - 10**9, MAX_AT_S + 10**9))
        return str(seconds), MIN_AT_S <= seconds < MAX_AT_S
    if kind == 3:
        moment = draw(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2300, 1, 1)))
        aware = draw(st.booleans())
        text = (moment.replace(tzinfo=UTC) if aware else moment).isoformat()
        ok = MIN_AT_S <= moment.replace(tzinfo=UTC).timestamp() < MAX_AT_S
        return (text.replace("+00:00", "Z") if aware and draw(st.booleans()) else text), ok
    if kind == 4:  # letters only: never a number, never ISO-8601 (or nan/inf, refused anyway)
        return draw(st.text(alphabet=string.ascii_letters + " ", max_size=12)), False
    if kind == 5:
        return draw(st.sampled_from([True, False, [], {}, [1]])), False
    moment = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=draw(st.integers(0, 10**8)))
    return moment.isoformat(), True


priorities = st.sampled_from([(None, True), ("normal", True), ("high", True), ("urgent", False), ("", False),
                              (1, False), ("HIGH", False)])  # fmt: skip


# -- 1. validators -----------------------------------------------------------------------------


VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "group_id": validate_group_id,
    "member": validate_member,
    "members": validate_members,
    "at": parse_at,
    "priority": validate_priority,
}


def _valid_id(value: Any, limit: int) -> bool:
    return (
        isinstance(value, str)
        and 1 <= len(value) <= limit
        and all(0x20 <= ord(c) <= 0x7E for c in value)
        and value.strip(" ") != ""
    )


@PROPS
@given(json_values)
def test_validators_raise_only_validation_error(value: Any) -> None:
    """On any JSON value each validator raises ValidationError naming its field, or returns the value normalised."""
    accepted: dict[str, Any] = {}
    for field, check in VALIDATORS.items():
        try:
            accepted[field] = check(value)
        except ValidationError as exc:
            assert exc.field.split("[")[0] == field, exc
    if "group_id" in accepted:
        assert accepted["group_id"] == value and _valid_id(value, 48)
    if "member" in accepted:
        assert accepted["member"] == value and _valid_id(value, 32)
    if "members" in accepted:  # a JSON array of valid ids, deduplicated in first-seen order
        assert isinstance(value, list) and all(_valid_id(v, 32) for v in value)
        assert accepted["members"] == tuple(dict.fromkeys(value)) != ()
    if "at" in accepted:  # None is "now"; anything else epoch ms within the accepted years
        at_ms = accepted["at"]
        assert (at_ms is None) == (value is None)
        if at_ms is not None:
            assert isinstance(at_ms, int) and MIN_AT_S * 1000 <= at_ms <= MAX_AT_S * 1000
        if isinstance(value, int | float) and not isinstance(value, bool):
            assert abs(at_ms - value * 1000) <= 0.5
    if "priority" in accepted:
        assert accepted["priority"] == ("normal" if value is None else value) in ("normal", "high")
    try:
        request = request_from_mapping(value)
    except ValidationError:
        pass
    else:
        assert isinstance(value, dict)
        members = [value["member"]] if "member" in value else value["members"]
        assert (request.group_id, request.members) == (value["group_id"], tuple(dict.fromkeys(members)))
        assert request.at_ms == parse_at(value.get("at"))
        assert request.priority == validate_priority(value.get("priority"))
    # No value is both a group id (a string) and a members list (not a string): always refused.
    with pytest.raises(ValidationError):
        request_from_mapping({"group_id": value, "members": value, "at": value, "priority": value})


@PROPS
@given(ids(48), member_lists(), times(), priorities)
@example(("g", True), ({"alice": 1}, False), (None, True), (None, True))  # an object is not a list of members
def test_build_request_matches_the_oracle(
    group: tuple[Any, bool], members: tuple[Any, bool], at: tuple[Any, bool], priority: tuple[Any, bool]
) -> None:
    """build_request accepts exactly the inputs the independent oracle calls valid, and keeps their meaning."""
    expected = group[1] and members[1] and at[1] and priority[1]
    try:
        request = build_request(group[0], members[0], at[0], priority[0])
    except ValidationError as exc:
        assert not expected, exc
        assert exc.field.split("[")[0] in ("group_id", "members", "at", "priority")
        return
    assert expected
    assert request.group_id == group[0]
    assert list(request.members) == list(dict.fromkeys(members[0]))
    assert request.priority == (priority[0] or "normal")
    if request.at_ms is not None:
        assert MIN_AT_S * 1000 <= request.at_ms <= MAX_AT_S * 1000


# -- shared Redis for the stored-or-not properties ---------------------------------------------


@pytest.fixture(scope="module")
def server(redis_server: RedisServer) -> RedisServer:
    """The session's redis-server (hypothesis needs module-scoped fixtures, not per-test ones)."""
    return redis_server


@pytest.fixture(scope="module")
def client(server: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(server.url, decode_responses=True)
    yield c
    c.close()


def stored(client: redis.Redis) -> int:
    """Requests pending in any state (counts only; the rejection counter is not a request)."""
    snapshot = status(client, KEYS)
    return int(snapshot["queued"] + snapshot["scheduled"] + snapshot["in_flight"] + snapshot["counters"]["enqueued"])


# -- 2. the JSON Lines import ------------------------------------------------------------------


def run_cli(url: str, *args: str) -> tuple[int, str]:
    """``imunban ARGS`` in-process on ``url`` (the conftest already cleared every other IMUNBAN_* variable)."""
    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.dict(os.environ, {"IMUNBAN_REDIS_URL": url}),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        rc = main(list(args))
    return rc, err.getvalue()


@PROPS
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_arbitrary_text_file_never_crashes_and_stores_all_or_nothing(
    server: RedisServer, client: redis.Redis, tmp_path: Path, text: str
) -> None:
    """Any file content: exit 0 with every line stored, or exit 2 naming a line and nothing stored."""
    client.flushdb()
    path = tmp_path / "in.jsonl"
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    rc, err = run_cli(server.url, "enqueue", "--file", str(path))
    if rc == 2:
        # One bad line: "line N: field: reason"; several: a count, then each as "  line N: field: reason".
        several = re.fullmatch(r"imunban: error: --file: \d+ bad lines; nothing was stored:(\n  line \d+: .*)+\n", err)
        assert err.startswith("imunban: error: line ") or several, err
        assert stored(client) == 0
    else:
        assert rc == 0, err
        assert stored(client) == sum(1 for line in text.split("\n") if line.strip())


@PROPS
@given(
    st.lists(st.tuples(ids(48), ids(32)).filter(lambda p: p[0][1] and p[1][1]), min_size=1, max_size=20),
    st.tuples(ids(48), member_lists(), times(), priorities),
    st.data(),
)
def test_one_bad_line_among_good_ones_stores_nothing(
    server: RedisServer,
    client: redis.Redis,
    tmp_path: Path,
    good: list[tuple[tuple[Any, bool], tuple[Any, bool]]],
    bad: tuple[tuple[Any, bool], tuple[Any, bool], tuple[Any, bool], tuple[Any, bool]],
    data: st.DataObject,
) -> None:
    """Good lines plus one line the oracle calls invalid: exit 2 naming that line; nothing stored."""
    group, members, at, priority = bad
    assume(not (group[1] and members[1] and at[1] and priority[1]))
    client.flushdb()
    lines = [json.dumps({"group_id": g, "member": m}) for (g, _), (m, _) in good]
    position = data.draw(st.integers(0, len(lines)))
    bad_line = {"group_id": group[0], "members": members[0], "at": at[0], "priority": priority[0]}
    lines.insert(position, json.dumps(bad_line, default=list))
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines))
    rc, err = run_cli(server.url, "enqueue", "-f", str(path))
    assert rc == 2
    assert err.startswith(f"imunban: error: line {position + 1}: "), err
    assert stored(client) == 0


# -- 3. the Celery payload path ----------------------------------------------------------------


@pytest.fixture(scope="module")
def app(server: RedisServer) -> Celery:
    env = {
        "IMUNBAN_REDIS_URL": server.url,
        "IMUNBAN_SDKAPPID": "1400000000",
        "IMUNBAN_SECRET_KEY": "not-a-real-key",
        "IMUNBAN_BASE_URL": "http://127.0.0.1:1",
    }
    return create_celery(Settings.from_env(env))


def _payload_keys() -> st.SearchStrategy[str]:
    return st.sampled_from(["group_id", "members", "at", "priority"]) | st.text(min_size=1, max_size=8)


@PROPS
@given(st.dictionaries(_payload_keys(), json_values, max_size=5), st.lists(json_values, max_size=2))
def test_arbitrary_celery_payload_never_raises(
    app: Celery, client: redis.Redis, kwargs: dict[str, Any], args: list[Any]
) -> None:
    """Any kwargs/args reach the task bodies without an exception; a rejection stores nothing."""
    for task in (unban, cancel):
        client.flushdb()
        result = task(app, *args, **kwargs)
        assert isinstance(result, dict)
        if "rejected" in result:
            assert stored(client) == 0
            assert status_of_apps(client, [KEYS])["counters"]["rejected_messages"] == 1


@PROPS
@given(ids(48), member_lists(), times(), priorities, st.booleans())
def test_celery_unban_stores_exactly_the_valid_payloads(
    app: Celery,
    client: redis.Redis,
    group: tuple[Any, bool],
    members: tuple[Any, bool],
    at: tuple[Any, bool],
    priority: tuple[Any, bool],
    omit_optional: bool,
) -> None:
    """imunban.unban stores a payload iff the oracle calls it valid; otherwise it is rejected and counted."""
    client.flushdb()
    kwargs: dict[str, Any] = {"group_id": group[0], "members": members[0]}
    if not omit_optional:
        kwargs.update(at=at[0], priority=priority[0])
    valid = group[1] and members[1] and (omit_optional or (at[1] and priority[1]))
    result = unban(app, **kwargs)
    if valid:
        assert "rejected" not in result, result
        assert result["ready"] + result["scheduled"] == len(set(members[0]))
        assert status_of_apps(client, [KEYS])["counters"]["rejected_messages"] == 0
    else:
        assert "rejected" in result
        assert stored(client) == 0
        assert status_of_apps(client, [KEYS])["counters"]["rejected_messages"] == 1


# -- 4. the message guards ---------------------------------------------------------------------


@PROPS
@given(json_values, json_values)
def test_envelope_checks_never_raise(headers: Any, payload: Any) -> None:
    """The envelope checks answer None or a reason for any decoded JSON, never an exception."""
    for problem in (envelope_problem(headers, payload), transport_problem(payload)):
        assert problem is None or isinstance(problem, str)


def test_guards_accept_what_celery_sends() -> None:
    """The envelope Celery itself produces passes both checks."""
    raw = {
        "body": "W1tdLCB7fSwge31d",
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"task": "imunban.unban", "id": "x", "eta": None},
        "properties": {"delivery_tag": "t", "body_encoding": "base64",
                       "delivery_info": {"exchange": "", "routing_key": "imunban"}},
    }  # fmt: skip
    assert transport_problem(raw) is None
    assert envelope_problem(raw["headers"], [[], {"group_id": "g", "members": ["a"]}, {}]) is None
    assert envelope_problem({"id": "x", "eta": "2030-01-01"}, [[], {}, None]) is not None
    assert UnbanRequest("g", ("a",)).priority == "normal"
