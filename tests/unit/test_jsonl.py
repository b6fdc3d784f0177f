"""The JSON Lines reader: one request per line, errors with line number and field, runs merged."""

from __future__ import annotations

import json

import pytest

from imunban.cli.jsonl import MERGE_LIMIT, parse_line, read_all, read_requests, to_request
from imunban.errors import ValidationError
from imunban.validation import UnbanRequest

AT_ISO = "2030-01-01T00:00:00Z"
AT_MS = 1_893_456_000_000


def lines(*objects: object) -> list[str]:
    return [o if isinstance(o, str) else json.dumps(o) for o in objects]


def test_single_member_and_member_list_lines() -> None:
    """Both line shapes give validated requests with their line numbers."""
    got = list(
        read_requests(
            lines(
                {"group_id": "g1", "member": "a"},
                {"group_id": "g2", "members": ["b", "c"], "at": AT_ISO, "priority": "high"},
            )
        )
    )
    assert got == [
        (1, UnbanRequest("g1", ("a",))),
        (2, UnbanRequest("g2", ("b", "c"), AT_MS, "high")),
    ]


def test_at_as_unix_seconds_number_and_string() -> None:
    """'at' may be Unix seconds as a number or a numeric string."""
    got = [r for _, r in read_requests(lines({"group_id": "g", "member": "a", "at": 1_893_456_000}))]
    got += [r for _, r in read_requests(lines({"group_id": "g", "member": "a", "at": "1893456000.5"}))]
    assert [r.at_ms for r in got] == [AT_MS, AT_MS + 500]


def test_blank_lines_skipped_and_numbering_kept() -> None:
    """Blank and whitespace-only lines are skipped; line numbers still count them."""
    got = list(read_requests(["", "  \n", json.dumps({"group_id": "g", "member": "a"}) + "\n", "\t"]))
    assert [n for n, _ in got] == [3]


def test_bytes_lines_and_bom() -> None:
    """Byte lines are decoded as UTF-8; a BOM on the first line is ignored."""
    raw = [b"\xef\xbb\xbf" + json.dumps({"group_id": "g", "member": "a"}).encode() + b"\n"]
    assert [r for _, r in read_requests(raw)] == [UnbanRequest("g", ("a",))]


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ("{not json", "line", "is not valid JSON"),
        ("[1, 2]", "line", "must be a JSON object, got an array"),
        ('"text"', "line", "must be a JSON object, got a string"),
        ("42", "line", "must be a JSON object, got a number"),
        ("null", "line", "must be a JSON object, got null"),
        ("[" * 100_000, "line", "nested too deeply"),
        ('{"group_id": "g", "member": 1' + "1" * 5000 + "}", "line", "is not valid JSON"),
        ('{"member": "a"}', "group_id", "is required"),
        ('{"group_id": "g"}', "member", "exactly one of"),
        ('{"group_id": "g", "member": "a", "members": ["b"]}', "member", "exactly one of"),
        ('{"group_id": "g", "member": "a", "colour": "red"}', "colour", "is not a known field"),
        ('{"group_id": "", "member": "a"}', "group_id", "must not be empty"),
        ('{"group_id": "g", "member": "' + "x" * 33 + '"}', "member", "at most 32 bytes"),
        ('{"group_id": "' + "g" * 49 + '", "member": "a"}', "group_id", "at most 48 bytes"),
        ('{"group_id": "g", "member": "caf\\u00e9"}', "member", "printable ASCII"),
        ('{"group_id": "g", "member": "a\\tb"}', "member", "printable ASCII"),
        ('{"group_id": "g", "member": 7}', "member", "must be a string"),
        ('{"group_id": "g", "members": "abc"}', "members", "must be a list"),
        ('{"group_id": "g", "members": {"a": 1}}', "members", "must be a list"),
        ('{"group_id": "g", "members": []}', "members", "must not be empty"),
        ('{"group_id": "g", "members": ["a", 5]}', "members[1]", "must be a string"),
        ('{"group_id": "g", "member": "a", "at": "tomorrow"}', "at", "neither Unix seconds nor ISO-8601"),
        ('{"group_id": "g", "member": "a", "at": 1893456000000}', "at", "milliseconds? In seconds that is 1893456000"),
        ('{"group_id": "g", "member": "a", "at": NaN}', "at", "finite"),
        ('{"group_id": "g", "member": "a", "at": 1e999}', "at", "finite"),
        ('{"group_id": "g", "member": "a", "at": true}', "at", "boolean"),
        ('{"group_id": "g", "member": "a", "priority": "urgent"}', "priority", "'high' or 'normal'"),
    ],
)
def test_bad_line_names_line_and_field(line: str, field: str, reason: str) -> None:
    """A bad line raises ValidationError carrying its line number, the field and the reason."""
    good = json.dumps({"group_id": "g", "member": "ok"})
    with pytest.raises(ValidationError) as info:
        list(read_requests([good, "", line, good]))
    assert (info.value.line, info.value.field) == (3, field)
    assert reason in info.value.reason
    assert str(info.value).startswith(f"line 3: {field}: ")


def test_invalid_utf8_is_a_line_error() -> None:
    """Bytes that are not UTF-8 are reported as a bad line, not a crash."""
    with pytest.raises(ValidationError) as info:
        list(read_requests([b'{"group_id": "g", "member": "\xff"}']))
    assert (info.value.line, info.value.field) == (1, "line")
    assert "not UTF-8" in info.value.reason


def test_too_many_members_on_one_line() -> None:
    """More than 10,000 members on one line is refused."""
    line = json.dumps({"group_id": "g", "members": [f"u{i}" for i in range(10_001)]})
    with pytest.raises(ValidationError, match="at most 10000 members"):
        list(read_requests([line]))


def test_defaults_apply_only_where_the_line_is_silent() -> None:
    """default_at_ms and default_priority fill in 'at'/'priority' only when a line omits them."""
    got = [
        r
        for _, r in read_requests(
            lines(
                {"group_id": "g", "member": "a"},
                {"group_id": "g", "member": "b", "at": None, "priority": "normal"},
                {"group_id": "g", "member": "c", "at": AT_ISO},
            ),
            default_at_ms=1_000_000_000_000,
            default_priority="high",
        )
    ]
    assert [(r.at_ms, r.priority) for r in got] == [
        (1_000_000_000_000, "high"),
        (None, "normal"),
        (AT_MS, "high"),
    ]


def test_bad_default_priority_is_named() -> None:
    """An unknown default priority is an error for --priority."""
    with pytest.raises(ValidationError) as info:
        list(read_requests([], default_priority="urgent"))
    assert info.value.field == "--priority"


def test_read_all_merges_consecutive_runs_and_keeps_duplicates() -> None:
    """Consecutive lines with equal group, due time and priority become one request, in order."""
    validated = read_all(
        lines(
            {"group_id": "g", "member": "a"},
            {"group_id": "g", "members": ["b", "a"]},
            {"group_id": "g", "member": "c", "priority": "high"},
            {"group_id": "h", "member": "d"},
            {"group_id": "g", "member": "e"},
        )
    )
    assert validated.requests == [
        UnbanRequest("g", ("a", "b", "a")),
        UnbanRequest("g", ("c",), None, "high"),
        UnbanRequest("h", ("d",)),
        UnbanRequest("g", ("e",)),
    ]
    assert (validated.lines, validated.members) == (5, 6)


def test_read_all_caps_merged_runs() -> None:
    """A long run of one group is split into requests of at most MERGE_LIMIT members."""
    n = 2 * MERGE_LIMIT + 7
    validated = read_all(json.dumps({"group_id": "g", "member": f"u{i}"}) for i in range(n))
    assert [len(r.members) for r in validated.requests] == [MERGE_LIMIT, MERGE_LIMIT, 7]
    assert [m for r in validated.requests for m in r.members] == [f"u{i}" for i in range(n)]


def test_read_all_raises_before_returning_anything() -> None:
    """read_all validates everything: a bad last line raises, so a caller stores nothing."""
    source = lines(*({"group_id": "g", "member": f"u{i}"} for i in range(100)), {"group_id": "g"})
    with pytest.raises(ValidationError) as info:
        read_all(source)
    assert info.value.line == 101


def test_parse_line_and_to_request_directly() -> None:
    """The two steps are usable alone: blank -> None; an object -> a request."""
    assert parse_line("   ", 1) is None
    data = parse_line('{"group_id": "g", "member": "a"}', 9)
    assert data is not None
    assert to_request(data, 9) == UnbanRequest("g", ("a",))
