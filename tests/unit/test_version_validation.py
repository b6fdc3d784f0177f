"""The optional instruction ``version``: validated on every intake path, errors naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from imunban.cli.jsonl import read_all
from imunban.errors import ValidationError
from imunban.validation import MAX_VERSION, build_request, request_from_mapping, validate_version


@pytest.mark.parametrize("value", [0, 1, 1_717_171_717_000, MAX_VERSION])
def test_integers_in_int64_range_are_versions(value: int) -> None:
    """0 through 2**63 - 1 are accepted as they are; None means no version."""
    assert validate_version(value) == value
    assert validate_version(None) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, "got a boolean"),
        (False, "got a boolean"),
        (-1, "between 0 and"),
        (MAX_VERSION + 1, "int64"),
        (1.0, "got float"),
        ("5", "got str"),
        ([5], "got list"),
    ],
)
def test_bad_versions_are_rejected_naming_the_field(value: object, reason: str) -> None:
    """A bool, a negative or too large integer, a float or text is refused with a message naming ``version``."""
    with pytest.raises(ValidationError, match=reason) as caught:
        validate_version(value)
    assert caught.value.field == "version"


def test_build_request_carries_and_names_the_version() -> None:
    """build_request keeps the version and prefixes its field name like the others."""
    assert build_request("g", ["m"], version=7).version == 7
    assert build_request("g", ["m"]).version is None
    with pytest.raises(ValidationError) as caught:
        build_request("g", ["m"], version=-3, prefix="requests[2].")
    assert caught.value.field == "requests[2].version"


def test_mapping_accepts_version() -> None:
    """A JSON object (JSON Lines, bulk) may carry "version"; a bad one names the field."""
    assert request_from_mapping({"group_id": "g", "member": "m", "version": 9}).version == 9
    with pytest.raises(ValidationError) as caught:
        request_from_mapping({"group_id": "g", "member": "m", "version": "9"}, line=4)
    assert (caught.value.field, caught.value.line) == ("version", 4)


def test_jsonl_keeps_versions_apart_and_applies_the_default() -> None:
    """Lines with different versions are not merged; a line without one takes --instruction-version."""
    lines: list[Any] = [
        '{"group_id": "g", "member": "a", "version": 1}',
        '{"group_id": "g", "member": "b", "version": 1}',
        '{"group_id": "g", "member": "c", "version": 2}',
        '{"group_id": "g", "member": "d"}',
    ]
    validated = read_all(lines, default_version=5)
    assert [(r.members, r.version) for r in validated.requests] == [(("a", "b"), 1), (("c",), 2), (("d",), 5)]
    assert [r.version for r in read_all(lines[3:]).requests] == [None]
