"""Pure request validation: every error names its field; random input never crashes a validator."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imunban.errors import ValidationError
from imunban.validation import (
    MAX_AT_S,
    MAX_GROUP_ID_BYTES,
    MAX_MEMBER_BYTES,
    MAX_MEMBERS_PER_REQUEST,
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

T = 1_700_000_000  # 2023-11-14T22:13:20Z

# -- ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("a\x1fb", "printable"),
        ("tab\there", "printable"),
        ("caf\u00e9", "printable"),
        ("x\x7f", "printable"),
        ("g" * (MAX_GROUP_ID_BYTES + 1), "at most"),
        (123, "string"),
        (None, "string"),
        (b"bytes", "string"),
    ],
)
def test_bad_group_id_is_rejected_naming_the_field(value: object, reason: str) -> None:
    """Empty, non-printable, over-long or non-string group ids are rejected with the field named."""
    with pytest.raises(ValidationError) as info:
        validate_group_id(value)
    assert info.value.field == "group_id"
    assert reason in info.value.reason
    assert str(info.value).startswith("group_id: ")


def test_group_id_limits() -> None:
    """48 printable bytes and auto-assigned @TGS# ids are valid group ids."""
    assert validate_group_id("g" * MAX_GROUP_ID_BYTES) == "g" * MAX_GROUP_ID_BYTES
    assert validate_group_id("@TGS#2J4SZEAEL") == "@TGS#2J4SZEAEL"


@pytest.mark.parametrize("value", ["", "u\x00", "m" * (MAX_MEMBER_BYTES + 1), 7, ["m"], "\u00fc"])
def test_bad_member_is_rejected_naming_the_field(value: object) -> None:
    """A bad member id is rejected with the field named."""
    with pytest.raises(ValidationError) as info:
        validate_member(value)
    assert info.value.field == "member"


def test_member_limits() -> None:
    """32 printable bytes is a valid member id."""
    assert validate_member("u" * MAX_MEMBER_BYTES) == "u" * MAX_MEMBER_BYTES


def test_members_names_the_bad_index() -> None:
    """A bad member inside a list names its index."""
    with pytest.raises(ValidationError) as info:
        validate_members(["ok", "fine", 3])
    assert info.value.field == "members[2]"


@pytest.mark.parametrize("value", ["abc", b"abc", 5, None, [], (), {"alice": 1}, {}])
def test_members_must_be_a_non_empty_list(value: object) -> None:
    """Members must be a non-empty list of strings (a bare string or a mapping is not a list)."""
    with pytest.raises(ValidationError) as info:
        validate_members(value)
    assert info.value.field == "members"


def test_members_are_deduplicated_in_order() -> None:
    """Duplicate members collapse to the first occurrence, order kept."""
    assert validate_members(["b", "a", "b", "c", "a"]) == ("b", "a", "c")


def test_too_many_members_rejected() -> None:
    """More than the sane maximum of distinct members in one request is rejected."""
    assert len(validate_members([f"m{i}" for i in range(MAX_MEMBERS_PER_REQUEST)])) == MAX_MEMBERS_PER_REQUEST
    with pytest.raises(ValidationError, match="at most"):
        validate_members(f"m{i}" for i in range(MAX_MEMBERS_PER_REQUEST + 1))


# -- at ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected_ms"),
    [
        (None, None),
        (T, T * 1000),
        (T + 0.25, T * 1000 + 250),
        (str(T), T * 1000),
        (" 1700000000.5 ", T * 1000 + 500),
        ("2023-11-14T22:13:20Z", T * 1000),
        ("2023-11-14T22:13:20+00:00", T * 1000),
        ("2023-11-15T06:13:20+08:00", T * 1000),
        ("2023-11-14T22:13:20.123Z", T * 1000 + 123),
        ("2023-11-14T22:13:20", T * 1000),
        ("2023-11-14 22:13:20", T * 1000),
        (datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), T * 1000),
        (datetime(2023, 11, 14, 22, 13, 20), T * 1000),
        (datetime(2023, 11, 14, 17, 13, 20, tzinfo=timezone(timedelta(hours=-5))), T * 1000),
    ],
)
def test_parse_at_accepts_seconds_and_iso8601(value: object, expected_ms: int | None) -> None:
    """Ints, floats, numeric text, ISO-8601 with or without zone (naive = UTC), 'Z' and datetimes parse to ms."""
    assert parse_at(value) == expected_ms


@pytest.mark.parametrize(
    "value",
    [
        math.nan,
        math.inf,
        -math.inf,
        "nan",
        "inf",
        "-Infinity",
        "1e400",
        10**400,
        True,
        False,
        0,
        T * 1000,
        MAX_AT_S,
        MIN_AT_S - 1,
        "1999-12-31T23:59:59Z",
        "2200-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "tomorrow",
        "",
        "2023-13-01",
        [T],
        {"at": T},
        b"1700000000",
    ],
)
def test_parse_at_rejects_bad_times_naming_the_field(value: object) -> None:
    """NaN, infinities, out-of-range (ms by mistake), booleans and garbage raise ValidationError for 'at'."""
    with pytest.raises(ValidationError) as info:
        parse_at(value)
    assert info.value.field == "at"


@pytest.mark.parametrize(("value", "seconds"), [(1796280070766, "1796280070.766"), ("1893456000000", "1893456000")])
def test_parse_at_names_milliseconds_and_suggests_the_seconds(value: object, seconds: str) -> None:
    """Epoch milliseconds where seconds are expected: the error says so and gives the seconds, not 1.79628e+12."""
    with pytest.raises(ValidationError) as info:
        parse_at(value, "--at")
    assert info.value.field == "--at"
    assert info.value.reason.endswith(f"milliseconds? In seconds that is {seconds}")
    assert "e+" not in info.value.reason


def test_parse_at_uses_the_given_field_name() -> None:
    """The field name is the caller's (e.g. a CLI option)."""
    with pytest.raises(ValidationError) as info:
        parse_at("soon", "--at")
    assert info.value.field == "--at"


# -- priority and whole requests ---------------------------------------------------------------


def test_priority_values() -> None:
    """priority is 'normal' by default, 'high' or 'normal' when given, anything else is an error."""
    assert validate_priority(None) == "normal"
    assert validate_priority("high") == "high"
    for bad in ("HIGH", "urgent", 1, True):
        with pytest.raises(ValidationError) as info:
            validate_priority(bad)
        assert info.value.field == "priority"


def test_build_request_prefixes_field_names() -> None:
    """build_request qualifies every field name with the given prefix."""
    assert build_request("g", ["a", "b"], T, "high") == UnbanRequest("g", ("a", "b"), T * 1000, "high")
    for args, field in [
        (("", ["a"]), "requests[3].group_id"),
        (("g", []), "requests[3].members"),
        (("g", ["a", ""]), "requests[3].members[1]"),
        (("g", ["a"], "never"), "requests[3].at"),
        (("g", ["a"], None, "low"), "requests[3].priority"),
    ]:
        with pytest.raises(ValidationError) as info:
            build_request(*args, prefix="requests[3].")
        assert info.value.field == field


def test_request_from_mapping_member_or_members() -> None:
    """A JSON object takes 'member' or 'members', plus optional 'at' and 'priority'."""
    assert request_from_mapping({"group_id": "g", "member": "u"}) == UnbanRequest("g", ("u",))
    assert request_from_mapping({"group_id": "g", "members": ["u", "v"], "at": T, "priority": "high"}) == (
        UnbanRequest("g", ("u", "v"), T * 1000, "high")
    )


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (["g", "u"], "request"),
        ({"group_id": "g"}, "member"),
        ({"group_id": "g", "member": "u", "members": ["v"]}, "member"),
        ({"member": "u"}, "group_id"),
        ({"group_id": "g", "member": "u", "colour": "red"}, "colour"),
        ({"group_id": "g", "member": 5}, "member"),
        ({"group_id": "g", "members": "u"}, "members"),
        ({"group_id": "g", "member": "u", "at": "later"}, "at"),
        ({"group_id": "g", "member": "u", "priority": "low"}, "priority"),
    ],
)
def test_request_from_mapping_errors_name_the_field_and_line(data: Any, field: str) -> None:
    """Every malformed JSON Lines record is rejected naming the field, and the line when given."""
    with pytest.raises(ValidationError) as info:
        request_from_mapping(data, line=7)
    assert (info.value.field, info.value.line) == (field, 7)
    assert str(info.value).startswith(f"line 7: {field}: ")


# -- property tests ----------------------------------------------------------------------------

ANY_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
ANY_OBJECT = (
    ANY_JSONISH
    | st.datetimes(timezones=st.timezones() | st.none())
    | st.dictionaries(st.integers() | st.text(max_size=3), ANY_JSONISH, max_size=4)
)
VALIDATORS = [validate_group_id, validate_member, validate_members, parse_at, validate_priority, request_from_mapping]


@settings(deadline=None)  # a loaded CI machine must not turn slowness into failures
@given(ANY_OBJECT)
def test_random_objects_never_crash_the_validators(value: object) -> None:
    """Whatever object arrives, each validator either accepts it or raises ValidationError."""
    for validator in VALIDATORS:
        try:
            validator(value)  # type: ignore[operator]
        except ValidationError as exc:
            assert exc.field


@settings(deadline=None)  # a loaded CI machine must not turn slowness into failures
@given(st.text())
def test_random_text_never_crashes_the_validators(value: str) -> None:
    """Any text is either a valid value or a ValidationError for every validator."""
    for validator in (validate_group_id, validate_member, parse_at, validate_priority):
        try:
            validator(value)
        except ValidationError as exc:
            assert exc.field


@settings(deadline=None)  # a loaded CI machine must not turn slowness into failures
@given(st.dictionaries(st.sampled_from(["group_id", "member", "members", "at", "priority"]), ANY_JSONISH))
def test_random_request_objects_never_crash(data: dict[str, Any]) -> None:
    """Random objects with the known keys validate or raise ValidationError, never anything else."""
    try:
        request = request_from_mapping(data)
    except ValidationError as exc:
        assert exc.field
    else:
        assert request.members and request.group_id


PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


@settings(deadline=None)  # a loaded CI machine must not turn slowness into failures
@given(
    st.text(PRINTABLE, min_size=1, max_size=MAX_GROUP_ID_BYTES).filter(str.strip),
    st.lists(st.text(PRINTABLE, min_size=1, max_size=MAX_MEMBER_BYTES).filter(str.strip), min_size=1, max_size=30),
)
def test_valid_ids_round_trip(group_id: str, members: list[str]) -> None:
    """Valid printable ids come back unchanged (members deduplicated in order)."""
    request = request_from_mapping({"group_id": group_id, "members": members})
    assert request.group_id == group_id
    assert request.members == tuple(dict.fromkeys(members))


@settings(deadline=None)  # a loaded CI machine must not turn slowness into failures
@given(st.integers(MIN_AT_S, MAX_AT_S - 1) | st.floats(MIN_AT_S, MAX_AT_S - 1))
def test_in_range_times_round_trip(seconds: float) -> None:
    """Any in-range Unix time, as a number, a string or an ISO-8601 text, parses to the same ms."""
    expected = round(seconds * 1000)
    assert parse_at(seconds) == expected
    assert parse_at(repr(seconds)) == expected
    iso = datetime.fromtimestamp(int(seconds), UTC).isoformat()
    assert parse_at(iso) == int(seconds) * 1000


def test_unknown_keys_of_any_type_are_named() -> None:
    """Unknown keys that are not plain strings (a Python caller's dict) are named by their repr."""
    for key, name in [(0, "0"), ("", "''"), (b"x", "b'x'")]:
        with pytest.raises(ValidationError) as info:
            request_from_mapping({key: 1, "group_id": "g", "member": "u"})
        assert info.value.field == name
